"""A Python Lambda function reading ssm-flags through the layer, with OpenFeature's published
Python SDK and OFREP provider (`openfeature-sdk`, `openfeature-provider-ofrep`): the extension in
the layer serves the flags on 127.0.0.1:2774, and every request carries the function's token
(`AWS_SESSION_TOKEN`, set by Lambda; or `SSM_FLAGS_TOKEN` when the function sets one; or,
with neither, the token file the extension writes).

Package `openfeature-sdk` and `openfeature-provider-ofrep` with the function (or in a layer of
their own), add the ssm-flags layer, set `SSM_FLAGS_PATH`, and set the handler to `app.handler`.
The event: `{"user_id": "alice", "region": "us-east-1", "flags": ["dark-mode", …]}`; the answer:
each flag's value, variant and reason.
"""

from __future__ import annotations

import os
from typing import Any

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

PORT = os.environ.get("SSM_FLAGS_PORT", "2774")


def _token() -> str:
    """`SSM_FLAGS_TOKEN`, else `AWS_SESSION_TOKEN` (on-demand Lambda), else the token file the
    extension writes where there is no session token (Managed Instances, SnapStart)."""
    token = os.environ.get("SSM_FLAGS_TOKEN") or os.environ.get("AWS_SESSION_TOKEN")
    if token:
        return token
    path = os.environ.get("SSM_FLAGS_TOKEN_FILE", "/tmp/ssm-flags/token")
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except OSError:
        return ""


# Once per execution environment: the provider keeps its connection to the extension.
api.set_provider(
    OFREPProvider(
        f"http://127.0.0.1:{PORT}",
        headers_factory=lambda: {"X-SSM-Flags-Token": _token()},
    )
)
client = api.get_client()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    evaluation = EvaluationContext(
        targeting_key=event.get("user_id"),
        attributes={"region": event.get("region", os.environ.get("AWS_REGION", ""))},
    )
    answers = {}
    for flag in event.get("flags", []):
        details = client.get_boolean_details(flag, False, evaluation)
        answers[flag] = {
            "value": details.value,
            "variant": details.variant,
            "reason": str(details.reason.value if hasattr(details.reason, "value") else details.reason),
        }
    return {"runtime": "python", "flags": answers}
