#!/usr/bin/env python3
"""An independent reference of the W1 answer, in plain Python.

    reference.py W1.ndjson MODEL.json > expected.txt
    check_output.py RESULTS --expect expected.txt

Reads a W1 file (tagged lines), applies DESIGN.md section 2 by definition (latest
profile join, every day kept, window sums by summing days, the model's formula term by
term), and prints the five figures in the format of check_output.py. Shares no code
with tenantflow. Slow (about a minute per 10M lines) and memory-hungry for large
states: a cross-check, not a benchmark. Events more than 90 days behind their tenant's
newest event are dropped, as tenantflow's default --allowed-lateness does.
"""
import json
import math
import sys
from collections import defaultdict

DAY = 86_400_000


def main():
    path, model_path = sys.argv[1], sys.argv[2]
    with open(model_path) as f:
        model = json.load(f)
    intercept, threshold = model["intercept"], model["threshold"]
    features = [(f["name"], f["mean"], f["std"], f["weight"]) for f in model["features"]]
    industries = model.get("categorical", {}).get("industry", {})
    profiles = {}
    days = defaultdict(dict)
    newest_day = {}
    lines = job30s = job90s = churn = 0
    scores = []
    with open(path) as f:
        for raw in f:
            o = json.loads(raw)
            cid = o["companyID"]
            if o["type"] == "company":
                profiles[cid] = o
                continue
            p = profiles.get(cid)
            if p is None:
                continue
            day = o["creationDate"] // DAY
            d = days[cid]
            newest = newest_day.get(cid, day)
            if newest - day > 90:
                continue
            newest_day[cid] = max(newest, day)
            d[day] = d.get(day, 0) + o["nbJobs"]
            s30 = sum(d.get(k, 0) for k in range(day - 29, day + 1))
            s90 = s30 + sum(d.get(k, 0) for k in range(day - 89, day - 29))
            j30, j90 = p["job30"] + s30, p["job90"] + s90
            x = {"revenu": p["revenu"], "employees": p["employees"], "job30": j30,
                 "job90": j90, "monthlyFee": p["monthlyFee"], "totalFee": p["totalFee"]}
            z = intercept
            for name, mean, std, weight in features:
                z += weight * (x[name] - mean) / std
            z += industries.get(p["industry"], 0.0)
            try:
                score = 1.0 / (1.0 + math.exp(-z))
            except OverflowError:
                score = 0.0
            lines += 1
            job30s += j30
            job90s += j90
            churn += score >= threshold
            scores.append(score)
    print("lines %d\nsum_job30 %d\nsum_job90 %d\nchurn_true %d\nsum_churn_score %r"
          % (lines, job30s, job90s, churn, math.fsum(scores)))


if __name__ == "__main__":
    main()
