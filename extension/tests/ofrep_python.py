"""OpenFeature's published Python SDK and OFREP provider (PyPI `openfeature-sdk`,
`openfeature-provider-ofrep`), not our code, as the client of the running extension: the seed's
flags for a few hundred users must match the seed article's semantics (md5 buckets) exactly.
Run by tests/ofrep.rs: ofrep_python.py <base-url> <token>."""
import hashlib
import logging
import sys
import time

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

BASE_URL, TOKEN = sys.argv[1], sys.argv[2]
api.set_provider(OFREPProvider(BASE_URL, headers_factory=lambda: {"X-SSM-Flags-Token": TOKEN}))
client = api.get_client()


def bucket(user_id, salt=None):
    text = user_id if salt is None else f"{salt}:{user_id}"
    return (int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 100) + 1


def seed_expected(flag, user, region):
    """The seed article's evaluation of its three JSON flags."""
    if flag == "new-analytics":
        return (user not in ("user-123", "user-456") and region in ("us-east-1", "us-west-2")
                and bucket(user) <= 25)
    if flag == "new-payment-processor":
        return bucket(user) <= 5
    if flag == "new-checkout-flow":
        return user in ("alice", "user-123")
    raise KeyError(flag)


checked = 0
users = ["alice", "user-123", "user-456"] + [f"user-{i}" for i in range(300)]
for user in users:
    for region in ("us-east-1", "eu-west-1"):
        context = EvaluationContext(targeting_key=user, attributes={"region": region})
        for flag in ("new-analytics", "new-payment-processor", "new-checkout-flow"):
            details = client.get_boolean_details(flag, False, context)
            expected = seed_expected(flag, user, region)
            assert details.value == expected, (flag, user, region, details)
            assert details.error_code is None, details
            assert details.variant == ("on" if expected else "off"), details
            checked += 1

# Reasons as the README's table says.
alice = EvaluationContext(targeting_key="alice", attributes={"region": "us-east-1"})
assert client.get_boolean_details("dark-mode", False, alice).reason == Reason.STATIC
assert client.get_boolean_details("new-checkout-flow", False, alice).reason == Reason.TARGETING_MATCH
assert client.get_boolean_details("new-payment-processor", True, alice).reason == Reason.SPLIT
payment = client.get_boolean_details("new-payment-processor", True, alice)
assert payment.flag_metadata["fallback_on_error"] is True, payment
assert payment.flag_metadata["reason_code"] == "rollout", payment

# No user: evaluated as the library does (off for a rollout or an allow-list), never an error
# that would hand back the caller's default (True here).
anonymous = client.get_boolean_details("new-checkout-flow", True, EvaluationContext(attributes={"region": "us-east-1"}))
assert anonymous.value is False and anonymous.error_code is None, anonymous

# A missing flag: FLAG_NOT_FOUND, the caller's default. An invalid one: PARSE_ERROR, the default.
missing = client.get_boolean_details("no-such-flag", True, alice)
assert missing.value is True and missing.error_code == ErrorCode.FLAG_NOT_FOUND, missing
broken = client.get_boolean_details("broken", True, alice)
assert broken.value is True and broken.error_code == ErrorCode.PARSE_ERROR, broken

# A type the caller did not ask for: TYPE_MISMATCH on the client side, the default.
mismatch = client.get_string_details("dark-mode", "fallback", alice)
assert mismatch.value == "fallback" and mismatch.error_code == ErrorCode.TYPE_MISMATCH, mismatch

# One kept-alive connection across pauses longer than the server's header deadline (2 s): a POST's
# body must not count as the next request's headers (the server once cut such connections, and
# a POST on a cut connection fails: the SDK then silently returns the caller's default).
# urllib3 logs each connection it opens (and each dropped one it reopens): none may be opened.
class Opened(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.seen = []

    def emit(self, record):
        message = record.getMessage()
        if "new HTTP connection" in message or "dropped connection" in message:
            self.seen.append(message)


opened = Opened()
pool_log = logging.getLogger("urllib3.connectionpool")
pool_log.setLevel(logging.DEBUG)
pool_log.addHandler(opened)
for pause in range(3):
    time.sleep(3)
    details = client.get_boolean_details("new-checkout-flow", False, alice)
    assert details.value is True and details.error_code is None, (pause, details)
assert not opened.seen, f"the kept-alive connection was not kept across a pause: {opened.seen}"

print(f"openfeature python: {checked} evaluations matched the seed's semantics; one connection held across 3 pauses of 3 s")
