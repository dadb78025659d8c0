#!/usr/bin/env python3
"""Reference side of the Powertools differential test (`handler-lib/tests/powertools_differential.rs`).

It generates seeded Feature Flags documents in the schema of Powertools for AWS Lambda (Python)
and has the published package (`aws-lambda-powertools==3.37.0`, pinned in requirements-dev.txt)
validate and evaluate them, so that the Rust re-implementation can be checked against it:

    .venv/bin/python handler-lib/tests/powertools_reference.py --seed 1 --documents 300 --out ref.jsonl

One JSON line per generated document goes to --out:

    {"document": {<feature name>: <feature>, ...},
     "rejected": [<names of the features Powertools' SchemaValidator rejects>],
     "cases": [{"feature": name, "context": {...}, "value": <FeatureFlags.evaluate's answer>}, ...]}

- "rejected": each feature is validated on its own, as `SchemaValidator(schema={name: feature})`;
  any exception it raises (SchemaValidationError, or a TypeError on an odd shape) rejects it.
- "cases": evaluated by one `FeatureFlags` whose store holds the document's valid features only,
  called as `evaluate(name=..., context=..., default=ABSENT)`. A few cases name a feature the
  document does not have; their value is ABSENT (the sentinel string below). Rejected features
  are never evaluated.
- The order of keys in a JSON object matters: rules are tried in document order and the first
  that matches wins, so the reader must keep object order.
- Every document and context goes through a JSON round trip before Powertools sees it, so the
  reference evaluates exactly the values the file holds (1.0 stays a float, 1 an int, true a bool).

Nothing in here re-implements Powertools: this file only generates inputs and records what the
package answers. The semantics worth knowing when reading a difference (Powertools 3.37.0):
conditions compare with Python's `==`, `<`, `in` (so `true == 1 == 1.0`; mixed types that Python
cannot order raise, and any exception in a condition makes it a non-match, including for NOT_IN
and friends); a key absent from the context never matches; `boolean_type` is read for its
truthiness; a boolean feature answers `bool(when_match)`; datetime strings are parsed by the
running Python's `datetime.fromisoformat` (this venv's Python is 3.11, whose parser accepts
basic, ISO-week and comma-fraction forms).

Determinism: the same seed gives the same file, except for the schedule conditions, which are
drawn relative to the current time. They are kept far from every boundary (a time of day at
least 45 minutes from now, and from 20 minutes later; no weekday set that splits a midnight
within the next hour either side; datetimes at least two days away), so the Rust side, run up to
about 20 minutes later, must give the same answers. Their draws come from a per-condition RNG
seeded from the main one, so the rest of the file does not depend on the clock.

Prints one JSON summary to stdout:
    {"documents": D, "cases": n, "rejected": n, "per_action": {ACTION: cases}, "boolean": n,
     "non_boolean": n}
where "per_action" counts the evaluated cases whose feature uses that action (in any rule), and
"boolean"/"non_boolean" split the cases of existing features by the feature's kind (cases of an
absent feature are in neither).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone

from dateutil import tz

from aws_lambda_powertools.utilities.feature_flags import FeatureFlags, schema
from aws_lambda_powertools.utilities.feature_flags.base import StoreProvider

ABSENT = "__ssm_flags_absent__"
NO_KEY = object()  # a member left out

ACTIONS = [action.value for action in schema.RuleAction]
SCHEDULE_TIME = "SCHEDULE_BETWEEN_TIME_RANGE"
SCHEDULE_DATETIME = "SCHEDULE_BETWEEN_DATETIME_RANGE"
SCHEDULE_DAYS = "SCHEDULE_BETWEEN_DAYS_OF_WEEK"
SCHEDULE_KEYS = {
    SCHEDULE_TIME: "CURRENT_TIME",
    SCHEDULE_DATETIME: "CURRENT_DATETIME",
    SCHEDULE_DAYS: "CURRENT_DAY_OF_WEEK",
}
COMPARISONS = [
    "KEY_GREATER_THAN_VALUE",
    "KEY_GREATER_THAN_OR_EQUAL_VALUE",
    "KEY_LESS_THAN_VALUE",
    "KEY_LESS_THAN_OR_EQUAL_VALUE",
]
CONTAINERS = ["IN", "NOT_IN", "KEY_IN_VALUE", "KEY_NOT_IN_VALUE"]
MEMBERS = ["VALUE_IN_KEY", "VALUE_NOT_IN_KEY"]
LIST_ACTIONS = ["ALL_IN_VALUE", "ANY_IN_VALUE", "NONE_IN_VALUE"]

VALID_ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Asia/Tokyo",
    "Etc/GMT+3",
    "EST5EDT",
]
INVALID_ZONES = ["Mars/Olympus", "utc", "Europe/london", 5, ["UTC"]]
DAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]

# The shared pool that condition values and context values are drawn from.
SCALARS = [
    0, 1, -1, 2, 3, 5, 7, -7, 10, 42, -100, 1000, 2**53, -(2**53),
    1.0, 0.0, -0.5, 0.5, 2.5, 1.5, 3.0, -2.0, 1e10,
    True, False,
    "", "a", "ab", "abc", "b", "bc", "premium", "Premium", "é", "日本", "日", "1", "true", "0", "False",
]
NUMBERS = [v for v in SCALARS if isinstance(v, (int, float)) and not isinstance(v, bool)]
STRINGS = [v for v in SCALARS if isinstance(v, str)]
LISTS = [
    [], ["a"], ["a", "b"], ["ab", "abc"], [1, 2, 3], [1.0], [True], [0, False], ["premium", "Premium"],
    [["a"]], [[]], ["abc", 1, None], [{"a": 1}], ["日本", "é"], [1, "1", 1.0], [None], [2.5, -1],
]
OBJECTS = [
    {}, {"a": 1}, {"a": 1.0}, {"premium": True}, {"a": "b", "c": [1]}, {"ab": None}, {"1": 1},
    {"日本": "é"}, {"abc": {"a": []}},
]
CONTEXT_KEYS = ["tier", "user_id", "count", "tags", "region", "score", "日本", "CURRENT_TIME", "targetingKey"]


def pool_value(rng: random.Random, allow_null: bool = True):
    """Any value of the pool: mostly scalars, some lists and objects, sometimes null."""
    r = rng.random()
    if r < 0.6:
        value = rng.choice(SCALARS)
    elif r < 0.8:
        value = rng.choice(LISTS)
    elif r < 0.92 or not allow_null:
        value = rng.choice(OBJECTS)
    else:
        value = None
    return copy.deepcopy(value)


def small_list(rng: random.Random) -> list:
    if rng.random() < 0.5:
        return copy.deepcopy(rng.choice(LISTS))
    return [pool_value(rng) if rng.random() < 0.2 else rng.choice(SCALARS) for _ in range(rng.randint(0, 4))]


def twin(rng: random.Random, value):
    """A value equal (or nearly) to `value` under Python's ==, of another JSON type or case."""
    if isinstance(value, bool):
        return rng.choice([int(value), float(value), value])
    if isinstance(value, int):
        return rng.choice([float(value), value, value + 1]) if abs(value) < 2**53 else value
    if isinstance(value, float):
        return int(value) if value.is_integer() else rng.choice([value, value + 1])
    if isinstance(value, str):
        return rng.choice([value, value.swapcase(), value + " "])
    if isinstance(value, list):
        return [twin(rng, item) for item in value]
    if isinstance(value, dict):
        return {k: twin(rng, v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# The clock: what "far from every boundary" means for each time zone.
# ---------------------------------------------------------------------------------------------


class Clock:
    """Evaluated here within seconds and on the Rust side up to ~20 minutes later: no time of day
    is drawn within 45 minutes of that span ([now - 45 min, now + 65 min], minute by minute, so a
    DST jump inside it is covered too), and no weekday set splits a midnight within 60 minutes of
    it ([now - 60 min, now + 80 min])."""

    def __init__(self):
        self.now = datetime.now(timezone.utc)
        self._cache: dict = {}

    def _local(self, zone: str, minutes: range) -> list[datetime]:
        zone_info = tz.gettz(zone)
        return [(self.now + timedelta(minutes=m)).astimezone(zone_info).replace(tzinfo=None) for m in minutes]

    def zone_facts(self, zone: str):
        """(minutes of the day allowed for START/END, weekdays seen near now, now as local time)."""
        if zone not in self._cache:
            forbidden = {t.hour * 60 + t.minute for t in self._local(zone, range(-45, 66))}
            weekdays = []
            for t in self._local(zone, range(-60, 81)):
                day = DAYS[t.weekday()]
                if day not in weekdays:
                    weekdays.append(day)
            allowed = [m for m in range(1440) if m not in forbidden]
            now_local = self.now.astimezone(tz.gettz(zone)).replace(tzinfo=None)
            self._cache[zone] = (allowed, weekdays, now_local)
        return self._cache[zone]


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def datetime_string(rng: random.Random, moment: datetime) -> str:
    """`moment` in one of the forms Python 3.11's datetime.fromisoformat accepts."""
    iso_year, iso_week, iso_day = moment.isocalendar()
    form = rng.randrange(11)
    if form == 0:
        return moment.strftime("%Y-%m-%d")
    if form == 1:
        return moment.strftime("%Y%m%d")
    if form == 2:
        return moment.strftime("%Y-%m-%dT%H:%M")
    if form == 3:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if form == 4:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if form == 5:
        return moment.strftime("%Y%m%dT%H%M")
    if form == 6:
        return f"{iso_year:04d}-W{iso_week:02d}-{iso_day}T{moment:%H:%M}"
    if form == 7:
        return moment.strftime("%Y-%m-%dT%H")
    if form == 8:
        return moment.isoformat(timespec="milliseconds")
    if form == 9:
        return f"{iso_year:04d}-W{iso_week:02d}-{iso_day}"
    return f"{moment:%Y-%m-%dT%H:%M:%S},{moment.microsecond // 1000:03d}"


def schedule_value(rng: random.Random, clock: Clock, action: str, zones: list[str]) -> dict:
    """A valid value for a schedule action, far from its boundaries. `rng` is private to the
    condition (its draws depend on the clock)."""
    zone = rng.choice(zones) if rng.random() < 0.85 else None
    allowed, weekdays, now_local = clock.zone_facts(zone or "UTC")
    value: dict = {}
    if action == SCHEDULE_TIME:
        start = rng.choice(allowed)
        end = start if rng.random() < 0.1 else rng.choice(allowed)
        value = {"START": hhmm(start), "END": hhmm(end)}
    elif action == SCHEDULE_DAYS:
        days = [d for d in DAYS if rng.random() < 0.45]
        if len(weekdays) == 2 and (weekdays[0] in days) != (weekdays[1] in days):
            # A midnight is near: both days of it or neither.
            if rng.random() < 0.5:
                days = [d for d in days if d not in weekdays]
            else:
                days = [d for d in DAYS if d in days or d in weekdays]
        if rng.random() < 0.1:
            days = days + days[:1]  # a repeated day
        if rng.random() < 0.05:
            days = days + ["DAYS"]  # a member of Powertools' day enum: valid, never today
        if rng.random() < 0.3:
            rng.shuffle(days)
        value = {"DAYS": days}
    else:
        strings = []
        shape = rng.choice(["around", "past", "future", "inverted"])
        for which in ("START", "END"):
            while True:
                if shape == "around":
                    days = -rng.randint(2, 400) if which == "START" else rng.randint(2, 400)
                elif shape == "past":
                    days = -rng.randint(2, 400)
                elif shape == "future":
                    days = rng.randint(2, 400)
                else:
                    days = rng.randint(2, 400) if which == "START" else -rng.randint(2, 400)
                moment = now_local + timedelta(days=days, seconds=rng.randrange(86400),
                                               microseconds=rng.randrange(1_000_000))
                text = datetime_string(rng, moment)
                if abs(datetime.fromisoformat(text) - now_local) >= timedelta(days=2):
                    strings.append(text)
                    break
        value = {"START": strings[0], "END": strings[1]}
    if zone is not None:
        value["TIMEZONE"] = zone
    return value


# ---------------------------------------------------------------------------------------------
# Valid features.
# ---------------------------------------------------------------------------------------------


def condition_value(rng: random.Random, action: str):
    if action in ("EQUALS", "NOT_EQUALS"):
        return pool_value(rng, allow_null=False)
    if action in COMPARISONS:
        r = rng.random()
        if r < 0.6:
            return rng.choice(NUMBERS + [True, False])
        if r < 0.8:
            return rng.choice(STRINGS)
        if r < 0.9:
            return small_list(rng)
        return pool_value(rng, allow_null=False)
    if action in ("STARTSWITH", "ENDSWITH"):
        return rng.choice(STRINGS) if rng.random() < 0.75 else pool_value(rng, allow_null=False)
    if action in CONTAINERS:
        r = rng.random()
        if r < 0.5:
            return small_list(rng)
        if r < 0.75:
            return rng.choice(STRINGS)
        if r < 0.9:
            return copy.deepcopy(rng.choice(OBJECTS))
        return rng.choice(SCALARS)
    if action in MEMBERS:
        return rng.choice(SCALARS) if rng.random() < 0.8 else pool_value(rng, allow_null=False)
    if action in LIST_ACTIONS:
        return small_list(rng)
    if action == "MODULO_RANGE":
        r = rng.random()
        if r < 0.75:
            base = rng.choice([1, 2, 3, 4, 5, 7, 10, 100, 1000, 2**31])
            start = rng.randrange(base)
            end = rng.randint(start, min(base - 1, start + rng.choice([0, 1, 3, base])))
            return {"BASE": base, "START": start, "END": end}
        if r < 0.85:
            return rng.choice([
                {"BASE": True, "START": False, "END": False},
                {"BASE": 2, "START": True, "END": True},
                {"BASE": 3, "START": False, "END": True},
                {"BASE": 2, "START": 0, "END": True},
            ])
        # Keys in another order, extra keys: still valid.
        return {"END": 4, "START": 1, "BASE": 6, "NOTE": "extra"}
    raise AssertionError(action)


def make_condition(rng: random.Random, clock: Clock, zones: list[str]) -> dict:
    action = rng.choice(ACTIONS)
    if action in SCHEDULE_KEYS:
        private = random.Random(rng.random())
        return {"action": action, "key": SCHEDULE_KEYS[action],
                "value": schedule_value(private, clock, action, zones)}
    condition = {"action": action, "key": rng.choice(CONTEXT_KEYS), "value": condition_value(rng, action)}
    if rng.random() < 0.15:
        # Members in another order: the order of a condition's members means nothing.
        condition = dict(reversed(list(condition.items())))
    return condition


def feature_value(rng: random.Random, boolean: bool, for_rule: bool):
    if boolean:
        return rng.random() < 0.5
    if for_rule and rng.random() < 0.08:
        return None
    return pool_value(rng, allow_null=False)


def make_feature(rng: random.Random, clock: Clock, zones: list[str]) -> dict:
    r = rng.random()
    if r < 0.35:
        boolean_type, boolean = (NO_KEY, True)
    elif r < 0.45:
        boolean_type, boolean = (True, True)
    elif r < 0.85:
        boolean_type, boolean = (False, False)
    else:
        # Loose values: Powertools reads boolean_type for its truthiness.
        boolean_type = copy.deepcopy(rng.choice([0, 1, "", "yes", None, [], {}, [0], 2.5]))
        boolean = bool(boolean_type)

    feature: dict = {"default": feature_value(rng, boolean, for_rule=False)}
    if boolean_type is not NO_KEY:
        feature["boolean_type"] = boolean_type

    r = rng.random()
    if r < 0.1:
        pass  # no rules at all
    elif r < 0.16:
        feature["rules"] = copy.deepcopy(rng.choice([{}, {}, [], None, "", 0, False]))
    else:
        rules = {}
        for i in range(rng.choice([1, 1, 2, 2, 3, 4])):
            name = rng.choice([f"rule {i}", f"r{i}", f"規則 {i}"])
            when_match = feature_value(rng, boolean, for_rule=True)
            if boolean and rng.random() < 0.5:
                when_match = not feature["default"]  # mostly a rule that changes the answer
            rule = {"when_match": when_match,
                    "conditions": [make_condition(rng, clock, zones) for _ in range(rng.choice([1, 1, 2, 3]))]}
            if not boolean and rule["when_match"] is None and rng.random() < 0.5:
                del rule["when_match"]  # a missing when_match answers null
            if rng.random() < 0.15:
                rule = {"conditions": rule.pop("conditions"), **rule}
            rules[name] = rule
        feature["rules"] = rules

    if rng.random() < 0.2:
        feature = dict(reversed(list(feature.items())))
    return feature


# ---------------------------------------------------------------------------------------------
# Invalid features: one mutation across every rule of Powertools' validator.
# ---------------------------------------------------------------------------------------------


def bad_condition(rng: random.Random, clock: Clock, zones: list[str]):
    key = rng.choice(CONTEXT_KEYS)
    kind = rng.randrange(16)
    if kind == 0:
        return copy.deepcopy(rng.choice(["EQUALS", 5, None, [], ["EQUALS", "k", "v"], True, {}]))
    if kind == 1:
        condition = {"action": rng.choice(["equals", "EQUAL", "", "STARTS_WITH", "in", 1, None, ["EQUALS"]]),
                     "key": key, "value": "a"}
        if rng.random() < 0.2:
            del condition["action"]
        return condition
    if kind == 2:
        condition = {"action": rng.choice(["EQUALS", "IN", "MODULO_RANGE"]),
                     "key": copy.deepcopy(rng.choice(["", 5, None, ["k"], {}, True])), "value": [1]}
        if rng.random() < 0.3:
            del condition["key"]
        return condition
    if kind == 3:
        condition = {"action": rng.choice(["EQUALS", "NOT_EQUALS", "IN", "ALL_IN_VALUE"]), "key": key, "value": None}
        if rng.random() < 0.5:
            del condition["value"]
        return condition
    if kind == 4:
        bad = copy.deepcopy(rng.choice(["7:00", "24:00", "12:60", "1200", "12:00:00", " 12:00", "ab:cd", 1200, None, ""]))
        value = {"START": bad, "END": "10:00"} if rng.random() < 0.5 else {"START": "10:00", "END": bad}
        if rng.random() < 0.15:
            value = rng.choice([{"END": "10:00"}, "10:00-12:00", ["10:00", "12:00"]])
        return {"action": SCHEDULE_TIME, "key": "CURRENT_TIME", "value": value}
    if kind == 5:
        value = rng.choice([{"DAYS": ["monday"]}, {"DAYS": ["FUNDAY"]}, {"DAYS": [1]}, {"DAYS": "MONDAY"},
                            {"DAYS": ["MONDAY", None]}, {"TIMEZONE": "UTC"}, ["MONDAY"], "MONDAY"])
        return {"action": SCHEDULE_DAYS, "key": "CURRENT_DAY_OF_WEEK", "value": copy.deepcopy(value)}
    if kind in (6, 7):
        bad = rng.choice(["2026-13-01", "2026/12/01", "", "2026-12-01T24:00", "2027-02-29", "tomorrow",
                          "2026-12-1", "2026-12-01T10:00+02:00", "2026-12-01T10:00Z", "2026-12-01T10:00:00-05:00",
                          "20261201T1000Z", 20261201, None])
        value = {"START": bad, "END": "2030-01-01"} if rng.random() < 0.5 else {"START": "2020-01-01", "END": bad}
        if rng.random() < 0.1:
            value = "2026-12-01/2027-01-01"
        return {"action": SCHEDULE_DATETIME, "key": "CURRENT_DATETIME", "value": value}
    if kind == 8:
        action = rng.choice(list(SCHEDULE_KEYS))
        private = random.Random(rng.random())
        value = schedule_value(private, clock, action, zones)
        wrong = rng.choice([k for k in SCHEDULE_KEYS.values() if k != SCHEDULE_KEYS[action]] +
                           [SCHEDULE_KEYS[action].lower(), "tier"])
        return {"action": action, "key": wrong, "value": value}
    if kind == 9:
        action = rng.choice(list(SCHEDULE_KEYS))
        private = random.Random(rng.random())
        value = schedule_value(private, clock, action, zones)
        value["TIMEZONE"] = copy.deepcopy(rng.choice(INVALID_ZONES))
        return {"action": action, "key": SCHEDULE_KEYS[action], "value": value}
    if kind in (10, 11):
        value = copy.deepcopy(rng.choice(["abc", "", {"a": 1}, {}, 5, True, 2.5]))
        return {"action": rng.choice(LIST_ACTIONS), "key": key, "value": value}
    if kind in (12, 13):
        value = copy.deepcopy(rng.choice([
            {"BASE": 5, "START": 3, "END": 2}, {"BASE": 5, "START": 0, "END": 5}, {"BASE": 5, "START": -1, "END": 2},
            {"BASE": 0, "START": 0, "END": 0}, {"BASE": 5.0, "START": 0, "END": 2}, {"BASE": "5", "START": 0, "END": 2},
            {"BASE": 5, "START": 0.5, "END": 2}, {"BASE": 5, "END": 2}, {"BASE": 5, "START": None, "END": 2},
            [5, 0, 2], "5:0:2", 5, {"BASE": -5, "START": 0, "END": 0},
        ]))
        return {"action": "MODULO_RANGE", "key": key, "value": value}
    if kind == 14:
        return {}
    return {"action": "EQUALS", "key": key}


def break_feature(rng: random.Random, clock: Clock, zones: list[str], feature: dict):
    """`feature` with one thing wrong (a fresh object; `feature` is left as it was)."""
    feature = copy.deepcopy(feature)
    boolean = bool(feature.get("boolean_type", True))
    rules = feature.get("rules")
    if not isinstance(rules, dict) or not rules:
        rules = {"r0": {"when_match": feature_value(rng, boolean, True),
                        "conditions": [make_condition(rng, clock, zones)]}}
        feature["rules"] = rules
    rule_name = rng.choice(list(rules))
    rule = rules[rule_name]

    kind = rng.randrange(16)  # half of them in a condition
    if kind == 0:
        return copy.deepcopy(rng.choice([[], [1], "x", 5, True, None, 0, "", {}]))
    if kind == 1:
        if rng.random() < 0.5:
            del feature["default"]
        else:
            feature["default"] = None
    elif kind == 2:
        feature["default"] = copy.deepcopy(rng.choice([1, 0, "true", "", [], {}, [True], 1.0]))
        if rng.random() < 0.5:
            feature["boolean_type"] = rng.choice([True, 1, "yes"])
        else:
            feature.pop("boolean_type", None)
    elif kind == 3:
        feature["rules"] = copy.deepcopy(rng.choice([[rule], ["r0"], "abc", 5, True, 2.5]))
    elif kind == 4:
        rules[rule_name] = copy.deepcopy(rng.choice([{}, "x", [1], None, 5, False, [], True]))
    elif kind == 5:
        rules[""] = rules.pop(rule_name)
    elif kind == 6:
        feature["boolean_type"] = rng.choice([True, 1])
        feature["default"] = rng.random() < 0.5
        if rng.random() < 0.2:
            rule.pop("when_match", None)
        else:
            rule["when_match"] = copy.deepcopy(rng.choice([1, 0, "true", None, [True], {}, 1.0]))
    elif kind == 7:
        if rng.random() < 0.25:
            rule.pop("conditions", None)
        else:
            rule["conditions"] = copy.deepcopy(rng.choice([[], {}, "x", None, 0,
                                                           {"action": "EQUALS", "key": "tier", "value": "a"}]))
    else:
        conditions = rule.get("conditions")
        if not isinstance(conditions, list) or not conditions:
            conditions = rule["conditions"] = [make_condition(rng, clock, zones)]
        conditions.insert(rng.randrange(len(conditions) + 1), bad_condition(rng, clock, zones))
    return feature


# ---------------------------------------------------------------------------------------------
# Contexts.
# ---------------------------------------------------------------------------------------------


def near_value(rng: random.Random, action: str, value):
    """A context value likely to make `action` against `value` match, or come close."""
    if action in ("EQUALS", "NOT_EQUALS"):
        return copy.deepcopy(value) if rng.random() < 0.5 else twin(rng, value)
    if action in COMPARISONS:
        if isinstance(value, (int, float)):  # bools too
            step = rng.choice([-1, 1, -0.5, 0.5])
            if abs(value) >= 2**52:
                step = -1 if value > 0 else 1  # integers stay within ±2^53, floats exact
            return rng.choice([value, value + step, twin(rng, value)])
        if isinstance(value, str):
            return rng.choice([value, value + "a", value[:-1], rng.choice(STRINGS)])
        if isinstance(value, list):
            return rng.choice([copy.deepcopy(value), value + [rng.choice(SCALARS)], value[:-1]])
        return twin(rng, value)
    if action in ("STARTSWITH", "ENDSWITH"):
        if isinstance(value, str):
            return rng.choice([value, value + "x", "x" + value, value[:1], value.upper(), "x" + value + "y"])
        return twin(rng, value)
    if action in CONTAINERS:
        if isinstance(value, list) and value:
            return twin(rng, rng.choice(value)) if rng.random() < 0.3 else copy.deepcopy(rng.choice(value))
        if isinstance(value, str):
            i = rng.randint(0, len(value))
            return value[i:rng.randint(i, len(value))]
        if isinstance(value, dict) and value:
            return rng.choice(list(value))
        return pool_value(rng)
    if action in MEMBERS:
        r = rng.random()
        if isinstance(value, str) and r < 0.4:
            return rng.choice(["x" + value + "y", value, {value: 1}, value.upper()])
        if r < 0.8:
            return [twin(rng, value), rng.choice(SCALARS)] if rng.random() < 0.5 else [copy.deepcopy(value)]
        return pool_value(rng)
    if action in LIST_ACTIONS:
        items = [copy.deepcopy(v) for v in value if rng.random() < 0.6] if isinstance(value, list) else []
        r = rng.random()
        if r < 0.55:
            return items
        if r < 0.8:
            return items + [rng.choice(SCALARS)]
        return pool_value(rng)
    if action == "MODULO_RANGE":
        return rng.choice([
            rng.randint(-50, 150), rng.randint(-50, 150), rng.randint(0, 2**53), -rng.randint(0, 2**53),
            rng.randint(-20, 20) + 0.5, rng.choice([True, False]), float(rng.randint(-9, 9)),
            rng.choice(STRINGS), small_list(rng), None,
        ])
    return pool_value(rng)


def make_context(rng: random.Random, feature: dict) -> dict:
    conditions = []
    rules = feature.get("rules")
    if isinstance(rules, dict):
        for rule in rules.values():
            for condition in rule.get("conditions", []):
                if condition["action"] not in SCHEDULE_KEYS:
                    conditions.append(condition)
    if rng.random() < 0.04:
        return {}
    context = {}
    for key in rng.sample(CONTEXT_KEYS, len(CONTEXT_KEYS)):
        relevant = [c for c in conditions if c["key"] == key]
        r = rng.random()
        if relevant and r < 0.55:
            condition = rng.choice(relevant)
            context[key] = near_value(rng, condition["action"], condition["value"])
        elif r < (0.85 if relevant else 0.5):
            context[key] = pool_value(rng)
        # else: the key is absent
    return context


# ---------------------------------------------------------------------------------------------
# The reference: Powertools itself.
# ---------------------------------------------------------------------------------------------


class DictStore(StoreProvider):
    """A store that serves one fixed document."""

    def __init__(self, config: dict):
        self._config = config

    @property
    def get_raw_configuration(self) -> dict:
        return self._config

    def get_configuration(self) -> dict:
        return self._config


def rejected_by_powertools(name: str, feature) -> bool:
    try:
        schema.SchemaValidator(schema={name: feature}).validate()
    except Exception:  # noqa: BLE001 - any exception at all is a rejection
        return True
    return False


def feature_actions(feature: dict) -> set[str]:
    actions = set()
    rules = feature.get("rules")
    if isinstance(rules, dict):
        for rule in rules.values():
            for condition in rule["conditions"]:
                actions.add(condition["action"])
    return actions


def generate_document(rng: random.Random, clock: Clock, index: int):
    zones = rng.sample(VALID_ZONES, rng.randint(3, 5))
    document = {}
    count = rng.randint(10, 13)
    odd_names = ["", " ", "日本", "a.b", "CURRENT_TIME", "Feature", "feature"]
    for i in range(count):
        name = f"f{index}_{i}" if rng.random() < 0.9 else rng.choice(odd_names)
        while name in document:
            name += "_"
        feature = make_feature(rng, clock, zones)
        if rng.random() < 0.11:
            feature = break_feature(rng, clock, zones, feature)
        document[name] = feature
    # What Rust reads is what Powertools evaluates.
    return json.loads(json.dumps(document))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--documents", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    warnings.simplefilter("ignore")
    started = time.monotonic()
    rng = random.Random(args.seed)
    clock = Clock()

    summary = {"documents": args.documents, "cases": 0, "rejected": 0,
               "per_action": {action: 0 for action in ACTIONS}, "boolean": 0, "non_boolean": 0}
    with open(args.out, "w", encoding="utf-8") as out:
        for index in range(args.documents):
            document = generate_document(rng, clock, index)
            rejected = [name for name, feature in document.items() if rejected_by_powertools(name, feature)]
            valid = {name: feature for name, feature in document.items() if name not in rejected}
            flags = FeatureFlags(store=DictStore(valid))

            targets = []
            for name, feature in valid.items():
                targets += [name] * rng.randint(3, 5)
            absent_names = [f"absent_{index}", "F0", f"f{index}_99", " f0", "ＣＵＲＲＥＮＴ"]
            targets += [n for n in rng.sample(absent_names, rng.randint(1, 3)) if n not in valid]
            rng.shuffle(targets)

            cases = []
            for name in targets:
                feature = valid.get(name)
                context = json.loads(json.dumps(make_context(rng, feature or {})))
                value = flags.evaluate(name=name, context=context, default=ABSENT)
                cases.append({"feature": name, "context": context, "value": value})
                if feature is not None:
                    summary["boolean" if feature.get("boolean_type", True) else "non_boolean"] += 1
                    for action in feature_actions(feature):
                        summary["per_action"][action] += 1

            summary["cases"] += len(cases)
            summary["rejected"] += len(rejected)
            out.write(json.dumps({"document": document, "rejected": rejected, "cases": cases},
                                 ensure_ascii=False) + "\n")

    print(json.dumps(summary))
    print(f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
