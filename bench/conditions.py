"""What conditions cost: parsing (once per condition, at load) and evaluating (per check).

Run:  .venv/bin/python bench/conditions.py [--repeat R]

  parse      probe.conditions.parse_condition without its cache, per condition: what
             loading a config pays once per distinct condition text
  evaluate   the ten conditions below over a 100 KB JSON body, per check: one JSON parse
             of the body (shared by the conditions) plus ten comparisons, as the runner does
             after every check of such a probe
  body only  json.loads of the same body, the floor of the evaluation
The medians of R runs; the figures depend on the machine, so compare them within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from probe.conditions import failed_conditions, parse_condition

CONDITIONS = [
    "[STATUS] == 200",
    "[RESPONSE_TIME] < 300",
    "[BODY].status == UP",
    "[BODY].items[42].name == item-42",
    "len([BODY].items) > 100",
    "has([BODY].errors) == false",
    '[BODY]."build.info".version == pat(2.*)',
    "[HEADERS].content-type == pat(application/json*)",
    "[CERTIFICATE_EXPIRATION] > 7d",
    "[STATUS] == any(200, 204)",
]


def body_of_100kb() -> str:
    items = [{"name": f"item-{i}", "value": i * 1.5, "tags": ["a", "b"]} for i in range(1750)]
    body = json.dumps({"status": "UP", "build.info": {"version": "2.3.1"}, "items": items})
    return body


def median_us(fn: Callable[[], object], repeat: int, inner: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - began) / inner)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    parse = parse_condition.__wrapped__  # the parser itself, not its cache

    def parse_all() -> None:
        for text in CONDITIONS:
            parse(text)

    parse_us = median_us(parse_all, args.repeat, 200) / len(CONDITIONS)
    body = body_of_100kb()
    conditions = [parse_condition(text) for text in CONDITIONS]
    facts = {
        "STATUS": 200,
        "RESPONSE_TIME": 42.0,
        "BODY": body,
        "HEADERS": {"content-type": "application/json; charset=utf-8"},
        "CERTIFICATE_EXPIRATION": 30 * 86400 * 1000.0,
        "CONNECTED": True,
    }
    assert failed_conditions(conditions, facts) == []
    evaluate_us = median_us(lambda: failed_conditions(conditions, facts), args.repeat, 20)
    floor_us = median_us(lambda: json.loads(body), args.repeat, 20)
    print(f"parse       {parse_us:9.1f} us per condition (once, at load)")
    print(
        f"evaluate    {evaluate_us:9.1f} us per check: {len(conditions)} conditions over a"
        f" {len(body) / 1024:.0f} KB JSON body"
    )
    print(f"body only   {floor_us:9.1f} us (json.loads of that body)")


if __name__ == "__main__":
    main()
