#!/usr/bin/env bash
# Latency from a Kinesis put to the result, against the local Kinesis server:
#
#   bench/latency.sh [--bin TENANTFLOW] [--rate N] [--seconds S] [--shards K]
#                    [--checkpoint-interval D] [-- RUN ARGS...]
#
# Starts kinesis-local on a free loopback port (installed in .cache/test-tools by
# scripts/test.sh), creates an input and an output stream of K shards each (default 1)
# output stream, starts `tenantflow run --input kinesis://IN --output-stream OUT` with
# results in a tmpfs folder, then bench/latency.py puts events at a steady N a second
# (default 1000) for S seconds (default 60) and times each result on the output stream
# and in the committed files (`--max-file-age` is the checkpoint interval, so that a
# file is committed at the checkpoint after the one it was opened after). Stops the job and the server after; the figures and the
# job's summary are printed. Uses the test tools' Python (boto3 comes with moto).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
bin="$root/target/release/tenantflow" rate=1000 seconds=60 shards=1 interval=10s server=kinesis-local
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --shards) shards="$2"; shift 2 ;;
    --checkpoint-interval) interval="$2"; shift 2 ;;
    --server) server="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
tools="$root/.cache/test-tools"
python="$tools/venv/bin/python"
kinesis_js="$tools/node_modules/kinesis-local/main.js"
[ -x "$bin" ] || { echo "no tenantflow binary at $bin (cargo build --release)" >&2; exit 2; }
[ -f "$kinesis_js" ] && [ -x "$python" ] || {
  echo "kinesis-local or the test tools' Python is missing: run scripts/test.sh once" >&2; exit 2; }

work=$(mktemp -d /dev/shm/tenantflow-latency.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tls=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
case "$server" in
  kinesis-local)
    KINESIS_MOCK_PLAIN_PORT="$port" KINESIS_MOCK_TLS_PORT="$tls" SHARD_LIMIT=200 \
      KINESIS_MOCK_CERT_PATH="$tools/node_modules/kinesis-local/server.json" LOG_LEVEL=WARN \
      node --require "$root/scripts/loopback-only.cjs" "$kinesis_js" > "$work/kinesis.log" 2>&1 & ;;
  moto) "$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$work/kinesis.log" 2>&1 & ;;
  *) echo "--server: kinesis-local or moto" >&2; exit 2 ;;
esac
server_pid=$!
job=""
cleanup() {
  [ -n "$job" ] && kill "$job" 2>/dev/null || true
  kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
export AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$port" AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
"$bin" streams create --name lat-in --shards "$shards" >/dev/null
"$bin" streams create --name lat-out --shards "$shards" >/dev/null
"$bin" run --input kinesis://lat-in --output-stream lat-out --output "$work/out" \
  --checkpoint-interval "$interval" --max-file-age "$interval" --admin off "$@" > "$work/summary.txt" 2> "$work/job.log" &
job=$!
echo "$server: rate $rate/s for $seconds s, $shards shard(s) in and out, --checkpoint-interval $interval $*"
"$python" "$here/latency.py" --endpoint "$AWS_ENDPOINT_URL_KINESIS" --input-stream lat-in \
  --output-stream lat-out --output-dir "$work/out" --rate "$rate" --seconds "$seconds"
# The job's CPU time so far (user and system, from /proc), to tell a job that cannot
# keep up from a server that cannot.
read -r -a stat < "/proc/$job/stat"
ticks=$(getconf CLK_TCK)
awk -v u="${stat[13]}" -v s="${stat[14]}" -v t="$ticks" \
  'BEGIN { printf "job CPU: user %.2f s, system %.2f s\n", u / t, s / t }'
kill -TERM "$job"
wait "$job" || { echo "the job failed:" >&2; tail -20 "$work/job.log" >&2; exit 1; }
job=""
grep -E "results|checkpoint" "$work/summary.txt" || true
