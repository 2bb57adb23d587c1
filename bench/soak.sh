#!/usr/bin/env bash
# Soak: W1 at full rate through Kinesis into S3 for a while, checkpoints every 10 s; the
# job's memory and open files over time, and how it catches up after a pause.
#
#   bench/soak.sh [--bin TENANTFLOW] [--minutes M] [--shards K] [--events N]
#                 [--companies C] [--pause-seconds P]
#
# Defaults: 10 minutes, 4 shards, W1 of 10,000,000 events over 10,000 companies (put
# again from the start whenever it is all put), a 30 s pause. Not part of the test
# command. Starts kinesis-local and moto on free loopback ports (installed in
# .cache/test-tools by scripts/test.sh), creates the stream and the bucket, then:
#   - `tenantflow produce` puts W1 as fast as the server takes it, for the whole run;
#   - `tenantflow run --input kinesis://soak --output s3://soak/out
#     --checkpoint-interval 10s` reads it, its admin server on a free port;
#   - every 10 s: the job's RSS, its open files, records read and results, and the
#     largest shard lag (`tenantflow_shard_lag_milliseconds`);
#   - at half time the job is paused (SIGSTOP) for P seconds and continued (SIGCONT):
#     the lag right after, and how long until it is back under 5 s;
#   - at the end SIGTERM (a final checkpoint) and the job's summary.
# Prints the samples and a summary: peak RSS at start (first minute), middle and end
# (last minute), most open files, records/s of the job over the run.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
shared="$(cd "$root/../shared" 2>/dev/null && pwd || true)"
bin="$root/target/release/tenantflow" minutes=10 shards=4 events=10000000 companies=10000 pause=30
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --shards) shards="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --companies) companies="$2"; shift 2 ;;
    --pause-seconds) pause="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
tools="$root/.cache/test-tools"
python="$tools/venv/bin/python"
kinesis_js="$tools/node_modules/kinesis-local/main.js"
[ -x "$bin" ] || { echo "no tenantflow binary at $bin (cargo build --release)" >&2; exit 2; }
[ -f "$kinesis_js" ] && [ -x "$python" ] || {
  echo "kinesis-local or the test tools' Python is missing: run scripts/test.sh once" >&2; exit 2; }
[ -n "$shared" ] && [ -f "$shared/bench/gen_workload.py" ] || {
  echo "../shared/bench/gen_workload.py (the W1 generator) is not beside the repository" >&2; exit 2; }

work=$(mktemp -d /tmp/tenantflow-soak.XXXXXX)
w1="$root/bench/out/w1-$events-$companies-42.ndjson"
if [ ! -f "$w1" ]; then
  mkdir -p "$root/bench/out"
  echo "generating $w1 ..." >&2
  python3 "$shared/bench/gen_workload.py" --events "$events" --companies "$companies" \
    --seed 42 --out "$w1" >&2
fi
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
kport=$(free_port) tport=$(free_port) sport=$(free_port) aport=$(free_port)
KINESIS_MOCK_PLAIN_PORT="$kport" KINESIS_MOCK_TLS_PORT="$tport" SHARD_LIMIT=200 \
  KINESIS_MOCK_CERT_PATH="$tools/node_modules/kinesis-local/server.json" LOG_LEVEL=WARN \
  node --require "$root/scripts/loopback-only.cjs" "$kinesis_js" > "$work/kinesis.log" 2>&1 &
kinesis_pid=$!
"$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$sport" > "$work/moto.log" 2>&1 &
moto_pid=$!
job="" producer=""
cleanup() {
  [ -n "$producer" ] && kill "$producer" 2>/dev/null || true
  [ -n "$job" ] && kill -CONT "$job" 2>/dev/null && kill "$job" 2>/dev/null || true
  kill "$kinesis_pid" "$moto_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for port in "$kport" "$sport"; do
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done
export AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$kport" AWS_ENDPOINT_URL_S3="http://127.0.0.1:$sport" \
  AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
"$python" -c "import boto3, os; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3']).create_bucket(Bucket='soak')"
"$bin" streams create --name soak --shards "$shards" >/dev/null

# The producer: W1 again and again, as fast as the server takes it.
( while true; do "$bin" produce --stream soak --input "$w1" >> "$work/produce.log" 2>&1 || exit 0; done ) &
producer=$!
"$bin" run --input kinesis://soak --output s3://soak/out --checkpoint-interval 10s \
  --admin "127.0.0.1:$aport" --summary-json "$work/summary.json" > "$work/run.txt" 2> "$work/job.log" &
job=$!

metric() { # the sum (or, with max, the largest) of a metric family on the admin server
  "$python" - "$aport" "$1" "${2:-sum}" <<'PY'
import sys, urllib.request
port, name, how = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
except Exception:
    print("?"); sys.exit()
values = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
          if l.startswith(name) and not l.startswith("#") and l[len(name)] in " {_"]
print(int(max(values) if how == "max" and values else sum(values)))
PY
}
sample() { # seconds rss_mib open_files records_read results max_lag_ms
  local rss fds
  rss=$(awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$job/status")
  fds=$(ls "/proc/$job/fd" | wc -l)
  printf '%5d s  RSS %5s MiB  open files %4s  read %10s  results %10s  lag %8s ms\n' \
    "$1" "$rss" "$fds" "$(metric tenantflow_records_read)" "$(metric tenantflow_results_total)" \
    "$(metric tenantflow_shard_lag_milliseconds max)"
}
total=$((minutes * 60))
half=$((total / 2))
echo "soak: W1 $events/$companies, $shards shards, $minutes min, checkpoints every 10 s, pause $pause s at ${half} s"
start=$(date +%s)
paused=0
while true; do
  now=$(( $(date +%s) - start ))
  [ "$now" -ge "$total" ] && break
  if [ "$paused" = 0 ] && [ "$now" -ge "$half" ]; then
    sample "$now" | tee -a "$work/samples.txt"
    echo "pause: SIGSTOP for $pause s" | tee -a "$work/samples.txt"
    kill -STOP "$job"; sleep "$pause"; kill -CONT "$job"
    paused=$(date +%s)
    sleep 2
    echo "continued: $(sample $(( $(date +%s) - start )))" | tee -a "$work/samples.txt"
    continue
  fi
  if [ "$paused" -gt 1 ]; then
    lag=$(metric tenantflow_shard_lag_milliseconds max)
    if [ "$lag" != "?" ] && [ "$lag" -lt 5000 ]; then
      echo "caught up (lag under 5 s) $(( $(date +%s) - paused )) s after the pause ended" | tee -a "$work/samples.txt"
      paused=1
    fi
  fi
  sample "$now" | tee -a "$work/samples.txt"
  sleep 10
done
kill "$producer" 2>/dev/null || true
producer=""
kill -TERM "$job"
wait "$job" || true
job=""
awk -v total="$total" '/^ *[0-9]+ s  RSS/ {
    t = $1; rss = $4; fds = $8
    if (t < 60 && rss > s) s = rss
    if (t >= total / 2 - 60 && t < total / 2 + 60 && rss > m) m = rss
    if (t >= total - 60 && rss > e) e = rss
    if (fds > f) f = fds
  } END { printf "peak RSS: first minute %d MiB, around the middle %d MiB, last minute %d MiB; most open files %d\n", s, m, e, f }' \
  "$work/samples.txt"
"$python" -c "
import json; s = json.load(open('$work/summary.json'))
print('job: %d records in %.0f s (%.0f records/s), %d results, %d checkpoints (longest %.2f s), %d dead letters'
      % (s['records_read'], s['wall_seconds'], s['records_per_second'], s['results'],
         s['checkpoints']['taken'], s['checkpoints']['longest_seconds'], s['dead_letters']))"
echo "producer: $(grep -c . "$work/produce.log" || true) lines of output; its last:"
tail -n 2 "$work/produce.log"
