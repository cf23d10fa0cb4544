"""Checks a Prometheus text exposition (format 0.0.4) and prints its samples.

Reads the exposition from the file named as the first argument (or stdin),
parses it with prometheus_client's own parser, and on top of that checks what
that parser is lax about: every line has the grammar of the format, every
family has HELP and TYPE before its samples, no sample is untyped, counters
end in _total, histogram buckets are cumulative, sorted by `le`, end with
le="+Inf" and agree with _count. On success prints one JSON object a line,
{"name": ..., "labels": {...}, "value": ...}, and exits 0; otherwise prints
what is wrong to stderr and exits 1.
"""

import json
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
# A label value: any character but an unescaped quote, backslash or newline.
LABEL_VALUE = r'(?:[^"\\\n]|\\\\|\\"|\\n)*'
LABEL = rf'{LABEL_NAME}="{LABEL_VALUE}"'
VALUE = r"(?:[+-]?(?:Inf|NaN)|[+-]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)"
SAMPLE_RE = re.compile(
    rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? ({VALUE})$")
HELP_RE = re.compile(rf"^# HELP ({NAME}) ((?:[^\\\n]|\\\\|\\n)*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary)$")
LABEL_RE = re.compile(rf'({LABEL_NAME})="({LABEL_VALUE})"')


def fail(message):
    print(f"check_exposition: {message}", file=sys.stderr)
    sys.exit(1)


def check_grammar(text):
    if text and not text.endswith("\n"):
        fail("the exposition does not end with a newline")
    helped, typed = set(), {}
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        if line.startswith("# HELP "):
            match = HELP_RE.match(line)
            if not match:
                fail(f"line {number}: malformed HELP: {line!r}")
            if match.group(1) in helped:
                fail(f"line {number}: second HELP for {match.group(1)}")
            helped.add(match.group(1))
        elif line.startswith("# TYPE "):
            match = TYPE_RE.match(line)
            if not match:
                fail(f"line {number}: malformed TYPE: {line!r}")
            name = match.group(1)
            if name in typed:
                fail(f"line {number}: second TYPE for {name}")
            if name not in helped:
                fail(f"line {number}: TYPE before HELP for {name}")
            typed[name] = match.group(2)
        elif line.startswith("#") or not line:
            fail(f"line {number}: unexpected line {line!r}")
        else:
            match = SAMPLE_RE.match(line)
            if not match:
                fail(f"line {number}: malformed sample: {line!r}")
            name = match.group(1)
            family = next((f for f in (name, name.rsplit("_", 1)[0])
                           if f in typed), None)
            if family is None:
                fail(f"line {number}: sample {name} has no TYPE before it")
            labels = LABEL_RE.findall(match.group(2) or "")
            names = [label for label, _ in labels]
            if len(set(names)) != len(names):
                fail(f"line {number}: repeated label in {line!r}")
            if any(label.startswith("__") for label in names):
                fail(f"line {number}: reserved label name in {line!r}")
    for name, kind in typed.items():
        if kind == "counter" and not name.endswith("_total"):
            fail(f"counter {name} does not end in _total")


def check_histogram(family):
    series = {}
    for sample in family.samples:
        key = tuple(sorted((k, v) for k, v in sample.labels.items()
                           if k != "le"))
        series.setdefault(key, {"buckets": []})
        entry = series[key]
        if sample.name.endswith("_bucket"):
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_count"):
            entry["count"] = sample.value
        elif sample.name.endswith("_sum"):
            entry["sum"] = sample.value
    for key, entry in series.items():
        buckets = entry["buckets"]
        bounds = [b for b, _ in buckets]
        if not buckets or bounds[-1] != math.inf:
            fail(f"{family.name}{dict(key)}: no le=\"+Inf\" bucket last")
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            fail(f"{family.name}{dict(key)}: buckets not sorted by le")
        counts = [c for _, c in buckets]
        if counts != sorted(counts):
            fail(f"{family.name}{dict(key)}: buckets not cumulative")
        if "count" not in entry or "sum" not in entry:
            fail(f"{family.name}{dict(key)}: _count or _sum missing")
        if entry["count"] != counts[-1]:
            fail(f"{family.name}{dict(key)}: _count differs from +Inf bucket")


def main():
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as f:
            text = f.read()
    else:
        text = sys.stdin.read()
    check_grammar(text)
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as error:  # the parser raises several kinds
        fail(f"prometheus_client could not parse it: {error}")
    for family in families:
        if family.type == "untyped":
            fail(f"untyped family {family.name}")
        if family.type == "histogram":
            check_histogram(family)
        for sample in family.samples:
            print(json.dumps({"name": sample.name, "labels": sample.labels,
                              "value": sample.value}, ensure_ascii=False))


if __name__ == "__main__":
    main()
