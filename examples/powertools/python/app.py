"""The product catalogue's feature flags, read with Powertools for AWS Lambda's `FeatureFlags`.

The Python half of a pair: `examples/powertools-catalogue` is the same handler in Rust, reading the
same AppConfig document (`examples/powertools/features.json`) through the `ssm-flags` extension.
Both answer the same event with the same response (`extension/tests/powertools_examples.rs`).

Event: `{"context": {"tier": "premium", "tenant_id": "acme-corp", "customer_number": 1042, ...}}`,
the Powertools evaluation context (a missing or `null` `context` is an empty one).
Response: `{"features": {"premium_features": true, ..., "checkout_banner": {...}}}`: every
feature of `FEATURES`, a boolean feature as true or false, `checkout_banner` as the value its
first matching rule (or its `default`) holds.

Configuration (environment): `APPCONFIG_APPLICATION`, `APPCONFIG_ENVIRONMENT`,
`APPCONFIG_PROFILE` name the AppConfig profile; `FEATURES_MAX_AGE_SECONDS` (default 5) is how long
Powertools keeps the document before asking AppConfig again; `FEATURES_ENVELOPE` (optional) is a
JMESPath expression selecting the features inside the document.

Pinned: aws-lambda-powertools==3.37.0 (`requirements-dev.txt`).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.feature_flags import AppConfigStore, FeatureFlags

# Each feature the handler reads, with the answer when the document lacks it or AppConfig cannot
# be read: false for the boolean features, null for `checkout_banner` (the caller's own default).
FEATURES: dict[str, Any] = {
    "premium_features": False,
    "ten_percent_off_campaign": False,
    "checkout_banner": None,
    "night_maintenance": False,
    "weekend_specials": False,
}

store = AppConfigStore(
    environment=os.environ["APPCONFIG_ENVIRONMENT"],
    application=os.environ["APPCONFIG_APPLICATION"],
    name=os.environ["APPCONFIG_PROFILE"],
    max_age=int(os.environ.get("FEATURES_MAX_AGE_SECONDS", "5")),
    envelope=os.environ.get("FEATURES_ENVELOPE", ""),
)
feature_flags = FeatureFlags(store=store)


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    context = event.get("context") or {}
    return {
        "features": {
            name: feature_flags.evaluate(name=name, context=context, default=default)
            for name, default in FEATURES.items()
        }
    }
