#!/usr/bin/env python3
"""Check Prometheus text exposition on stdin with the prometheus_client
parser, plus the rules the parser leaves to linters: counters end in
_total, histogram buckets are cumulative and end at +Inf == _count.
Prints one line and exits 0 when the text is valid."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    families = list(text_string_to_metric_families(text))
    problems = []
    for f in families:
        if f.type == "counter":
            for s in f.samples:
                if not (s.name.endswith("_total") or s.name.endswith("_created")):
                    problems.append("counter sample %s lacks _total" % s.name)
        if f.type == "histogram":
            series = {}
            for s in f.samples:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(key, {"buckets": [], "count": None})
                if s.name.endswith("_bucket"):
                    series[key]["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    series[key]["count"] = s.value
            for key, h in series.items():
                b = h["buckets"]
                if not b or b[-1][0] != float("inf"):
                    problems.append("%s%s: no +Inf bucket" % (f.name, key))
                    continue
                if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                    problems.append("%s%s: buckets not cumulative" % (f.name, key))
                if h["count"] != b[-1][1]:
                    problems.append("%s%s: +Inf %s != count %s" % (f.name, key, b[-1][1], h["count"]))
    if problems:
        print("invalid exposition:\n  " + "\n  ".join(problems))
        return 1
    print("valid exposition: %d metric families" % len(families))
    return 0


if __name__ == "__main__":
    sys.exit(main())
