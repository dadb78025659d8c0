"""A Python service beside Rust ones, in an experiment: OpenFeature's published Python SDK and
OFREP provider (PyPI `openfeature-sdk`, `openfeature-provider-ofrep`) evaluate the experiment flag
for each customer (each single evaluation an exposure), and the README's `track` snippet (plain
HTTP, `POST /v1/track`) reports the orders that complete. Prints what it did, as JSON, for
tests/experiments.rs to compare with the metrics the extension writes.
Run: experiments_python.py <base-url> <token>."""
import json
import sys
import urllib.request

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.contrib.provider.ofrep import OFREPProvider

BASE_URL, token = sys.argv[1], sys.argv[2]
api.set_provider(OFREPProvider(BASE_URL, headers_factory=lambda: {"X-SSM-Flags-Token": token}))
client = api.get_client()


# The README's snippet, with the base URL of this run.
def track(event, user_id, value=None):
    body = {"event": event, "context": {"targetingKey": user_id}}
    if value is not None:
        body["value"] = value
    request = urllib.request.Request(BASE_URL + "/v1/track", json.dumps(body).encode(),
                                     {"X-SSM-Flags-Token": token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=1) as answer:
        return json.load(answer)["attributed"]     # [{"flag", "variant", "counted"}]


exposures, conversions = {}, {}
for i in range(90):
    user = f"py-{i}"
    details = client.get_string_details("checkout-flow", "classic",
                                        EvaluationContext(targeting_key=user))
    assert details.reason == "SPLIT", details
    flow = details.variant
    # A second read of the same customer: not a second exposure.
    assert client.get_string_value("checkout-flow", "classic",
                                   EvaluationContext(targeting_key=user)) == details.value
    exposures[flow] = exposures.get(flow, 0) + 1
    if i % 3 == 0:
        attributed = track("checkout-completed", user, 10.0 + i)
        assert attributed == [{"flag": "checkout-flow", "variant": flow, "counted": True}], attributed
        conversions[flow] = conversions.get(flow, 0) + 1
print(json.dumps({"exposures": exposures, "conversions": conversions}))
