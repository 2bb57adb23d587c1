#!/usr/bin/env bash
# W1 benchmark: generate the workload with ../shared/bench/gen_workload.py, run
# `tenantflow run` (release build) on it, and print events/s, cores used, peak RSS and
# the five figures of ../shared/bench/check_output.py.
#
#   bench/w1.sh [--events N] [--companies C] [--seed S] [--format ndjson|csv|parquet]
#               [--workers N] [--checkpoint-interval D] [--out DIR] [--binary PATH]
#
# --binary runs that tenantflow instead of building this tree's (to compare two builds:
# alternate them back to back, e.g. an old commit's binary built in a worktree).
# Also prints the number and sizes of the result files. Without --checkpoint-interval
# the run takes only its final checkpoint (`off`).
#
# Generated inputs are cached under bench/out/ (they take a while for 10M events).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
shared="$(cd "$root/../shared" && pwd)"

events=1000000 companies=10000 seed=42 format=ndjson workers="" interval=off out="$here/out"
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --companies) companies="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --format) format="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --checkpoint-interval) interval="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$out"
input="$out/w1-$events-$companies-$seed.ndjson"
if [ ! -s "$input" ]; then
  echo "generating $input ..." >&2
  python3 "$shared/bench/gen_workload.py" --events "$events" --companies "$companies" \
    --seed "$seed" --out "$input.tmp"
  mv "$input.tmp" "$input"
fi

if [ -z "$binary" ]; then
  echo "building release ..." >&2
  (cd "$root" && cargo build --release --quiet -p tenantflow-cli)
  binary="$root/target/release/tenantflow"
fi

# A fresh folder per run, older ones deleted only after the measurement: ext4 skips
# inodes freed in the last half minute or so when it allocates new ones, and a run
# creating ~9,000 files right after deleting as many is measurably slower.
results="$out/results-$format-$(date +%s)"
args=(run --input "$input" --output "$results" --format "$format"
      --model "$shared/bench/model.json" --checkpoint-interval "$interval" --quiet)
[ -n "$workers" ] && args+=(--workers "$workers")
timing="$out/time.txt"
/usr/bin/time -v "$binary" "${args[@]}" 2> "$timing"

records=$(wc -l < "$input")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$timing")
user=$(awk -F': ' '/User time/ {print $2}' "$timing")
sys=$(awk -F': ' '/System time/ {print $2}' "$timing")
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$timing")

echo "W1: $events events, $companies companies, seed $seed, format $format, checkpoints $interval, $(nproc) cores, $binary"
awk -v r="$records" -v w="$wall" -v u="$user" -v s="$sys" -v k="$rss_kb" 'BEGIN {
  printf "input records     %d\n", r
  printf "wall time         %.2f s\n", w
  printf "records/s         %.0f\n", r / w
  printf "cores used        %.2f (user %.2f s + sys %.2f s over wall)\n", (u + s) / w, u, s
  printf "peak RSS          %.1f MiB\n", k / 1024
}'
find "$results" -type f -not -path '*/_*' -not -name '.*' -printf '%s\n' | sort -n | awk '
  { size[NR] = $1; total += $1 }
  END {
    if (NR == 0) { print "result files      0"; exit }
    printf "result files      %d, %.1f MB in all: smallest %d B, median %d B, largest %d B\n",
      NR, total / 1e6, size[1], size[int((NR + 1) / 2)], size[NR]
  }'
if [ "$format" = ndjson ]; then
  python3 "$shared/bench/check_output.py" "$results"
else
  echo "(check_output.py reads NDJSON only; the tests compare $format results with the reference)"
fi

for old in "$out"/results-*; do
  [ "$old" = "$results" ] || rm -rf "$old"
done
