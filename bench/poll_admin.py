#!/usr/bin/env python3
# Polls a job's admin server (port: the first argument) 10 times a second over one
# kept-alive connection, alternating /metrics and the riskiest tenants, until the
# server has been gone for 2 s (or never came within 30 s); prints how many requests
# were answered 200 and its own CPU time. Used by bench/README.md's measurement of the
# admin server's cost.
import http.client
import resource
import sys
import time

port = int(sys.argv[1])
paths = ["/metrics", "/tenants?risk=high&limit=50"]
conn = None
n = ok = 0
deadline = time.time() + 30
while True:
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", paths[n % 2])
        r = conn.getresponse(); r.read()
        ok += r.status == 200
        deadline = time.time() + 2
    except Exception:
        conn = None
        if time.time() > deadline:
            break
    n += 1
    time.sleep(0.1)
ru = resource.getrusage(resource.RUSAGE_SELF)
print(f"polls={ok} poller_cpu={ru.ru_utime + ru.ru_stime:.2f}", file=sys.stderr)
