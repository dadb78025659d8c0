"""A minimal Lambda Runtime API loop (standard library only) for running a Python handler where
no Python runtime interface client is installed: under the Lambda emulator in the tests (the
examples `powertools/python` and `python-function`), or as a custom runtime's `bootstrap`. On
Lambda's managed Python runtimes, set the handler (`app.handler`) instead; this file is not
needed there.

`_HANDLER` names the handler (`module.function`, default `app.handler`), the module looked up
in `LAMBDA_TASK_ROOT` (the function's code, as on Lambda), else next to this file. The loop follows the Runtime API (2018-06-01): `GET invocation/next`, call
the handler, `POST invocation/{id}/response`, or `.../error` when it raised; an import failure
is reported to `init/error` and ends the process.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import urllib.request
from typing import Any

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"


class LambdaContext:
    """The context object Lambda passes to a Python handler (the fields handlers read)."""

    def __init__(self, request_id: str, deadline_ms: int, function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


def post(path: str, body: Any, headers: dict[str, str] | None = None) -> None:
    request = urllib.request.Request(
        f"{API}/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        response.read()


def error_body(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(exc),
    }


def load_handler() -> Any:
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT") or os.path.dirname(os.path.abspath(__file__)))
    module, _, function = os.environ.get("_HANDLER", "app.handler").rpartition(".")
    return getattr(importlib.import_module(module), function)


def main() -> None:
    try:
        handler = load_handler()
    except Exception as exc:
        post("init/error", error_body(exc), {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
        raise
    while True:
        with urllib.request.urlopen(f"{API}/invocation/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline_ms = int(response.headers.get("Lambda-Runtime-Deadline-Ms") or 0)
            function_arn = response.headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
            trace_id = response.headers.get("Lambda-Runtime-Trace-Id")
            event = json.loads(response.read() or b"null")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        try:
            result = handler(event, LambdaContext(request_id, deadline_ms, function_arn))
        except Exception as exc:
            traceback.print_exc()
            post(
                f"invocation/{request_id}/error",
                error_body(exc),
                {"Lambda-Runtime-Function-Error-Type": "Unhandled"},
            )
            continue
        post(f"invocation/{request_id}/response", result)


if __name__ == "__main__":
    main()
