"""Every zone name of this host's zoneinfo, and variants, as `dateutil.tz.gettz` resolves them:
the reference of `flags`' schedule zones (`src/flagd/powertools/schedule.rs`, test
`zones_agree_with_dateutil`). Prints {"stamps": [...], "zones": {name: null (rejected) |
"error" (accepted, but evaluating raises) | [UTC offset in seconds at each stamp]}}."""

import json, os, sys
from datetime import datetime, timezone
from dateutil import tz
names = []
root = "/usr/share/zoneinfo"
for d, _, files in os.walk(root):
    for f in files:
        names.append(os.path.relpath(os.path.join(d, f), root))
names.sort()
extra = [n.lower() for n in names[:40]] + [n.replace("_", " ") for n in names if "_" in n][:40] + [
    "UTC+3", "GMT-5", "UTC-03:30", "JST-9", "XYZ+3", "XYZ+3ABC", "EST5EDT,M3.2.0,M11.1.0",
    "CET-1CEST,M3.5.0,M10.5.0/3", "<+03>-3", "iso3166.tab", "Mars/Olympus", ":UTC",
    ":Europe/Paris", "Europe/London ", "UTC", "GMT", "UTC0", "ABC", "A1", "EST+5", "EST-14",
    "EST+25", "NZST-12NZDT,M9.5.0,M4.1.0/3"]
stamps = [0, 1_780_000_000, 1_798_000_000, 1_900_000_000, int(datetime.now(timezone.utc).timestamp())]
out = {}
for n in names + extra:
    try:
        z = tz.gettz(n)
    except Exception:
        z = None
    if z is None:
        out[n] = None
        continue
    try:
        out[n] = [int(datetime.fromtimestamp(t, z).utcoffset().total_seconds()) for t in stamps]
    except Exception as e:
        out[n] = "error"
print(json.dumps({"stamps": stamps, "zones": out}))
