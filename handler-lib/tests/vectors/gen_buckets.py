#!/usr/bin/env python3
"""Generates buckets.json: rollout buckets computed with Python's hashlib, exactly as the seed
article does, so the Rust `flags::bucket` is checked against the reference implementation.

    bucket = (int(hashlib.md5(text.encode()).hexdigest(), 16) % 100) + 1
    text   = user_id, or f"{salt}:{user_id}" for a flag with a `salt`

Run: python3 gen_buckets.py > buckets.json   (`make test` checks the committed file is current)
"""
import hashlib
import json
import uuid


def bucket(user_id, salt=None):
    text = user_id if salt is None else f"{salt}:{user_id}"
    return (int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 100) + 1


def user_ids():
    yield from ["user-123", "user-456", "alice", "bob", "", " ", "user-123 "]
    yield from (f"user-{i}" for i in range(1000))
    yield from (str(uuid.uuid5(uuid.NAMESPACE_URL, f"ssm-flags/{i}")) for i in range(200))
    yield from (f"customer{i}@example.com" for i in range(100))
    yield from ["Zoë", "用户-42", "пользователь", "🚀-launch", "a" * 1000, "tab\there", "new\nline"]


def main():
    vectors = [[uid, None, bucket(uid)] for uid in user_ids()]
    for salt in ["new-payment-processor", "checkout-2026", "ü"]:
        vectors += [[f"user-{i}", salt, bucket(f"user-{i}", salt)] for i in range(100)]
    print(json.dumps(vectors, ensure_ascii=False, indent=0))


if __name__ == "__main__":
    main()
