#!/usr/bin/env python3
"""Compare row counts of the flagd-testbed feature files with our case files.

Usage: check_counts.py [path to a flagd-testbed git dir, default: the local mirror]
Counts every plain Scenario plus every Examples data row per feature file and
checks that the case files hold the same number of cases per file stem.
"""
import collections, json, pathlib, subprocess, sys

REPO = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/open-feature+flagd-testbed/repo"
HERE = pathlib.Path(__file__).parent
git = lambda *a: subprocess.run(["git", "-C", REPO, *a], capture_output=True, text=True, check=True).stdout


def source_rows(path):
    rows, in_examples, header_seen = 0, False, False
    for line in git("show", "HEAD:" + path).splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("@"):
            continue
        if s.startswith("Examples:") or s.startswith("Scenarios:"):
            in_examples, header_seen = True, False
        elif s.startswith("|"):
            if in_examples:
                rows += header_seen
                header_seen = True
        else:
            in_examples = False
            rows += s.startswith("Scenario:") or s.startswith("Example:")
    return rows


ok = True
for suite, paths in [("evaluator", git("ls-tree", "--name-only", "HEAD", "evaluator/gherkin/").split()),
                     ("provider", ["gherkin/targeting.feature"])]:
    json.loads((HERE / f"{suite}-flags.json").read_text(encoding="utf-8"))
    cases = json.loads((HERE / f"{suite}-cases.json").read_text(encoding="utf-8"))["cases"]
    names = [c["name"] for c in cases]
    if len(set(names)) != len(names):
        ok = False
        print(f"{suite}: duplicate case names")
    ours = collections.Counter(n.split(":", 1)[0] for n in names)
    for p in paths:
        stem = p.rsplit("/", 1)[1][: -len(".feature")]
        src = source_rows(p)
        print(f"{suite:9} {stem:20} source={src:4} cases={ours[stem]:4} {'OK' if src == ours[stem] else 'MISMATCH'}")
        ok &= src == ours[stem]
    print(f"{suite:9} total cases={len(cases)}")
sys.exit(0 if ok else 1)
