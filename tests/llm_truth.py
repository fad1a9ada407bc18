#!/usr/bin/env python3
"""Ground truth for tests/llm.rs, computed apart from the daemon's code: the
llm section's figures over LiteLLM spend-log rows (1.108.7's /spend/logs/v2
row shape), as of an instant, by the definitions in the README:

- a row is in a window when its startTime is at or after (as_of - window);
- LiteLLM's own health checks (its internal api keys) are not users' requests;
- failure rate = failures / requests; p50/p95 by nearest rank over the last
  hour's request_duration_ms;
- each request_id counts once.

Usage: llm_truth.py ROWS.json AS_OF_RFC3339 RECENT_SECONDS  -> JSON on stdout
"""
import json, math, sys
from datetime import datetime, timedelta

INTERNAL = {"litellm-internal-health-check"}


def parse(t):
    return datetime.fromisoformat(t.replace("Z", "+00:00"))


rows = json.load(open(sys.argv[1]))
as_of = parse(sys.argv[2])
recent = timedelta(seconds=int(sys.argv[3]))
seen, kept = set(), []
for r in rows:
    if r["api_key"] in INTERNAL or r["request_id"] in seen:
        continue
    seen.add(r["request_id"])
    kept.append(r)


def tally(rs):
    out = {}
    for name, span in (("recent", recent), ("1h", timedelta(hours=1)), ("24h", timedelta(hours=24))):
        win = [r for r in rs if parse(r["startTime"]) >= as_of - span]
        out["requests_" + name] = len(win)
        out["failures_" + name] = sum(1 for r in win if r["status"] == "failure")
    hour = sorted(r["request_duration_ms"] for r in rs if parse(r["startTime"]) >= as_of - timedelta(hours=1))
    for q, key in ((0.5, "p50_ms_1h"), (0.95, "p95_ms_1h")):
        out[key] = hour[min(max(math.ceil(q * len(hour)), 1), len(hour)) - 1] if hour else None
    day = [r for r in rs if parse(r["startTime"]) >= as_of - timedelta(hours=24)]
    out["spend_24h"] = sum(r["spend"] for r in day)
    classes = {}
    for r in day:
        if r["status"] == "failure":
            c = r["metadata"]["error_information"]["error_class"]
            classes[c] = classes.get(c, 0) + 1
    out["classes_24h"] = classes
    return out


day = [r for r in kept if parse(r["startTime"]) >= as_of - timedelta(hours=24)]
result = {"all": tally(day), "model_groups": {}, "providers": {}}
for key, field in (("model_groups", "model_group"), ("providers", "custom_llm_provider")):
    for name in sorted({r[field] for r in day}):
        result[key][name] = tally([r for r in day if r[field] == name])
print(json.dumps(result))
