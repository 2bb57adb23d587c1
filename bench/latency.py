#!/usr/bin/env python3
"""End-to-end latency of a running job: from a Kinesis put to the result.

Puts C company profiles on the input stream, then job events at a steady R records a
second for D seconds, each event's `creationDate` the wall clock (milliseconds) just
before its PutRecords call. Meanwhile it reads every shard of the output stream
(each shard polled at most 5 times a second, the Kinesis limit) and, if --output-dir is given, lists the
job's committed result files every 100 ms. A result's latency is when it was read (or
its file was first seen committed) minus its `creationDate`. Prints p50, p90, p99 and
the maximum of the events put after the warm-up, and how many results were missing.

Run by bench/latency.sh, which starts the local Kinesis server and the job.
"""
import argparse
import json
import os
import random
import sys
import threading
import time

import boto3


def now_ms():
    return int(time.time() * 1000)


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def put_all(kinesis, stream, records):
    """PutRecords in requests of 500, retrying what was refused."""
    for i in range(0, len(records), 500):
        batch = records[i : i + 500]
        while batch:
            answer = kinesis.put_records(StreamName=stream, Records=batch)
            batch = [r for r, a in zip(batch, answer["Records"]) if "ErrorCode" in a]
            if batch:
                time.sleep(0.2)


def company(i, rng):
    return {
        "type": "company",
        "companyID": f"lat-{i:05d}",
        "industry": rng.choice(["retail", "media", "finance", "health"]),
        "revenu": rng.randint(10_000, 20_000_000),
        "employees": rng.randint(1, 5000),
        "job30": rng.randint(0, 60),
        "job90": rng.randint(60, 200),
        "monthlyFee": round(rng.uniform(10, 3000), 2),
        "totalFee": round(rng.uniform(100, 40000), 2),
    }


def logged(target):
    """A thread's target that reports its exception instead of dying silently."""

    def run(*args):
        try:
            target(*args)
        except Exception as e:  # noqa: BLE001 - shown, then the thread ends
            print(f"{target.__name__} failed: {e!r}", file=sys.stderr)
            raise

    return run


class Results:
    """Arrival times of results, by (companyID, userID): each event has its own userID."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stream = {}
        self.files = {}

    def add(self, table, key, created, seen):
        with self.lock:
            table.setdefault(key, seen - created)


def read_stream(kinesis, stream, results, stop):
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    iterators = {
        s["ShardId"]: kinesis.get_shard_iterator(
            StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for s in shards
    }
    while not stop.is_set():
        polled = time.time()
        for shard, iterator in list(iterators.items()):
            if iterator is None:
                continue
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            seen = now_ms()
            iterators[shard] = answer.get("NextShardIterator")
            for record in answer["Records"]:
                row = json.loads(record["Data"])
                results.add(results.stream, (row["companyID"], row["userID"]), row["creationDate"], seen)
        # Each shard at most five times a second, as on Kinesis.
        time.sleep(max(0.0, 0.2 - (time.time() - polled)))


def watch_files(folder, results, stop):
    """Reads each committed result file once, when it is first seen."""
    done = set()
    while not stop.is_set():
        seen = now_ms()
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
            for name in files:
                path = os.path.join(root, name)
                if name.startswith(".") or not name.endswith(".ndjson") or path in done:
                    continue
                done.add(path)
                with open(path) as f:
                    for line in f:
                        row = json.loads(line)
                        results.add(results.files, (row["companyID"], row["userID"]), row["creationDate"], seen)
        time.sleep(0.1)


def report(name, table, keys):
    values = sorted(table[k] for k in keys if k in table)
    missing = sum(1 for k in keys if k not in table)
    print(
        f"{name}: {len(values)} results, p50 {percentile(values, 50)} ms, "
        f"p90 {percentile(values, 90)} ms, p99 {percentile(values, 99)} ms, "
        f"max {values[-1] if values else 'n/a'} ms, missing {missing}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--input-stream", required=True)
    parser.add_argument("--output-stream", required=True)
    parser.add_argument("--output-dir", help="the job's --output folder, to time file commits")
    parser.add_argument("--rate", type=int, default=1000, help="events a second")
    parser.add_argument("--seconds", type=int, default=60, help="how long events are put")
    parser.add_argument("--warmup", type=int, default=10, help="seconds not counted")
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--drain", type=int, default=30, help="seconds to wait for the last results")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    kinesis = boto3.client(
        "kinesis",
        endpoint_url=args.endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )
    rng = random.Random(args.seed)
    companies = [company(i, rng) for i in range(args.companies)]
    put_all(
        kinesis,
        args.input_stream,
        [{"Data": json.dumps(c).encode(), "PartitionKey": c["companyID"]} for c in companies],
    )
    # The job joins events only with profiles it holds: give it a moment to read them.
    time.sleep(3)

    results = Results()
    stop = threading.Event()
    threads = [threading.Thread(target=logged(read_stream), args=(kinesis, args.output_stream, results, stop))]
    if args.output_dir:
        threads.append(threading.Thread(target=logged(watch_files), args=(args.output_dir, results, stop)))
    for t in threads:
        t.daemon = True
        t.start()

    counted = []
    # Every tick, the events due by then (rate x time since the start) are put in one
    # PutRecords call (a few if over 500): a slow call delays a tick, not the rate.
    tick = 0.02
    start = time.time()
    n = 0
    calls = 0
    while time.time() - start < args.seconds:
        due = int(args.rate * (time.time() - start)) - n
        batch = []
        created = now_ms()
        counting = time.time() - start >= args.warmup
        for _ in range(due):
            c = companies[rng.randrange(len(companies))]
            user = f"u-{n}"
            n += 1
            batch.append(
                {
                    "Data": json.dumps(
                        {
                            "type": "job",
                            "companyID": c["companyID"],
                            "userID": user,
                            "nbJobs": 1 + rng.randrange(4),
                            "creationDate": created,
                        }
                    ).encode(),
                    "PartitionKey": c["companyID"],
                }
            )
            if counting:
                counted.append((c["companyID"], user))
        if batch:
            put_all(kinesis, args.input_stream, batch)
            calls += 1
        time.sleep(max(0.0, tick - (time.time() - start) % tick))
    elapsed = time.time() - start
    print(
        f"put {n} events in {elapsed:.1f} s ({n / elapsed:.0f}/s, {n / max(calls, 1):.0f} a call), "
        f"{len(counted)} after the {args.warmup} s warm-up counted"
    )
    deadline = time.time() + args.drain
    want = [results.stream] + ([results.files] if args.output_dir else [])
    while time.time() < deadline:
        with results.lock:
            if all(all(k in table for k in counted) for table in want):
                break
        time.sleep(0.2)
    stop.set()
    with results.lock:
        report("output stream", results.stream, counted)
        if args.output_dir:
            report("committed files", results.files, counted)


if __name__ == "__main__":
    sys.exit(main())
