"""OpenFeature's published Python SDK and OFREP provider (PyPI `openfeature-sdk`,
`openfeature-provider-ofrep`), not our code, reading flagd flags the extension serves without a
value (`DISABLED`; no default variant), as flagd's OFREP serves them: the caller's default must
come back, for any default. A flag with a value must come back as served.
Run by tests/flagd.rs: flagd_providers.py <base-url> <token>."""
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

BASE_URL, TOKEN = sys.argv[1], sys.argv[2]
api.set_provider(OFREPProvider(BASE_URL, headers_factory=lambda: {"X-SSM-Flags-Token": TOKEN}))
client = api.get_client()
user = EvaluationContext(targeting_key="user-1")

for default in (False, True):
    disabled = client.get_boolean_details("disabled-flag", default, user)
    assert disabled.value is default, disabled
for default in ("fallback", "other"):
    no_default = client.get_string_details("no-default", default, user)
    assert no_default.value == default, no_default
served = client.get_string_details("served", "fallback", user)
assert (served.value, served.variant, served.reason) == ("#00f", "blue", "STATIC"), served
assert served.error_code is None, served

print(
    "python: callers' defaults returned "
    f"(disabled: reason {disabled.reason}, error {disabled.error_code}; "
    f"no default variant: reason {no_default.reason}, error {no_default.error_code})"
)
