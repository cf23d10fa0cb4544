#!/usr/bin/env python3
"""Writes vegeta targets (JSON lines) to stdout until vegeta stops reading.

Usage: vegeta_targets.py URL SAMPLE_FILE...

The spec's samples in a round-robin mix, each made unique (its createdAt
carries a counter, as bench/e2e/mix.lua does for wrk) so that the gateway's
de-duplication streams every one. For `vegeta attack -lazy -format=json`,
which then offers an exact rate whatever the response times.
"""

import base64
import json
import re
import sys
import time


def main():
    url, paths = sys.argv[1], sys.argv[2:]
    parts = []
    for path in paths:
        with open(path, "rb") as f:
            body = f.read()
        m = re.search(rb'"createdAt": \d+', body)
        if not m:
            sys.exit(f"no createdAt in {path}")
        parts.append((body[:m.start()] + b'"createdAt": ', body[m.end():]))
    head = json.dumps({"method": "POST", "url": url,
                       "header": {"Content-Type": ["application/json"]}})[:-1]
    # Milliseconds in 2024, as in the samples; distinct from an earlier run's.
    counter = 1718035200000 + (time.time_ns() // 1000) % 10**10
    out = sys.stdout.buffer
    try:
        while True:
            lines = []
            for _ in range(256):
                counter += 1
                before, after = parts[counter % len(parts)]
                body = before + str(counter).encode() + after
                lines.append(f'{head},"body":"{base64.b64encode(body).decode()}"}}\n')
            out.write("".join(lines).encode())
            out.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
