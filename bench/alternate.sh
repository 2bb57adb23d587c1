#!/usr/bin/env bash
# Compare two tenantflow binaries on W1, alternated back to back, with results on a
# disk folder and on tmpfs: the way this shared, noisy machine allows a comparison.
#
#   bench/alternate.sh --a BIN --b BIN [--rounds N] [--events N] [--companies C]
#                      [--disk DIR] [--tmpfs DIR] [--where disk|tmpfs|both]
#                      [-- RUN ARGS...]
#
# Each round runs A and B (the order swaps every round), each to DIR on disk and to a
# folder on tmpfs, and prints wall time, records/s, user and system CPU, CPU-seconds per
# million records and peak RSS (`--where` limits the runs to one of the two folders). The input is generated once (../shared/bench) and copied
# to tmpfs, so that every run reads it from memory. Before each run: `sync`, the page
# cache dropped when this user may (root), and a pause, so that no run pays for an
# earlier one's writeback or memory reclaim. tmpfs results are deleted after each run;
# disk results only at the end: ext4 allocates inodes slowly for a minute or more after
# many deletions (`recently_deleted` in a profile), which would tax the next runs.
# RUN ARGS go to `tenantflow run` (default: --checkpoint-interval off).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
shared="$(cd "$here/../../shared" && pwd)"
a="" b="" rounds=4 events=10000000 companies=10000 disk="$here/out" tmpfs=/dev/shm/tenantflow-bench
places="disk tmpfs"
while [ $# -gt 0 ]; do
  case "$1" in
    --a) a="$2"; shift 2 ;;
    --b) b="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --companies) companies="$2"; shift 2 ;;
    --disk) disk="$2"; shift 2 ;;
    --tmpfs) tmpfs="$2"; shift 2 ;;
    --where)
      case "$2" in both) places="disk tmpfs" ;; disk|tmpfs) places="$2" ;;
        *) echo "--where: disk, tmpfs or both" >&2; exit 2 ;; esac
      shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -x "$a" ] && [ -x "$b" ] || { echo "--a and --b must name tenantflow binaries" >&2; exit 2; }
run_args=("$@")
[ ${#run_args[@]} -gt 0 ] || run_args=(--checkpoint-interval off)

mkdir -p "$disk" "$tmpfs"
name="w1-$events-$companies-42.ndjson"
if [ ! -s "$disk/$name" ]; then
  echo "generating $disk/$name ..." >&2
  python3 "$shared/bench/gen_workload.py" --events "$events" --companies "$companies" \
    --seed 42 --out "$disk/$name.tmp"
  mv "$disk/$name.tmp" "$disk/$name"
fi
[ -s "$tmpfs/$name" ] || cp "$disk/$name" "$tmpfs/$name"
input="$tmpfs/$name"
records=$(wc -l < "$input")
timing=$(mktemp)
trap 'rm -f "$timing"' EXIT

echo "W1 $events events, $companies companies; A=$a B=$b; run ${run_args[*]}"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for which in $order; do
    if [ "$which" = A ]; then binary="$a"; else binary="$b"; fi
    for where in $places; do
      if [ "$where" = disk ]; then base="$disk"; else base="$tmpfs"; fi
      out="$base/results-$which-$(date +%s%N)"
      sync
      if [ -w /proc/sys/vm/drop_caches ]; then echo 1 > /proc/sys/vm/drop_caches; fi
      sleep 2
      /usr/bin/time -f "%e %U %S %M" -o "$timing" "$binary" run --input "$input" \
        --output "$out" --model "$shared/bench/model.json" --quiet "${run_args[@]}" >/dev/null
      read -r wall user sys rss_kb < "$timing"
      awk -v r="$round" -v w="$which" -v p="$where" -v n="$records" -v e="$wall" \
        -v u="$user" -v s="$sys" -v k="$rss_kb" 'BEGIN {
        printf "round %d  %s  %-5s  %6.2f s  %9.0f rec/s  user %5.2f s  sys %5.2f s  %.3f CPU-s/M  peak RSS %4.0f MiB\n",
          r, w, p, e, n / e, u, s, (u + s) / (n / 1e6), k / 1024 }'
      if [ "$where" = tmpfs ]; then rm -rf "$out"; fi
    done
  done
done
rm -rf "$disk"/results-* "$tmpfs"/results-*
