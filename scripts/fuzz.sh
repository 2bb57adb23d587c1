#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo fuzz, nightly: the record decoders, KPL
# aggregates, checkpoint manifests, state snapshots, dead letters) for a bounded time
# each, starting from the seeds in fuzz/seeds/TARGET (which are never modified: what
# the fuzzer finds goes to fuzz/target/corpus/TARGET). Fails on the first crash, whose
# input libFuzzer leaves in fuzz/artifacts/TARGET/: add it to fuzz/seeds/TARGET (so that
# every run replays it) and a test beside the code, then fix.
#
#   scripts/fuzz.sh                          # 10 s per target (what scripts/test.sh runs)
#   FUZZ_SECONDS=600 scripts/fuzz.sh decode_json kpl_aggregate     # a longer hunt
#
# cargo-fuzz comes from crates.io, cached in .cache/test-tools/cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
CARGO_FUZZ_VERSION=0.13.1
seconds="${FUZZ_SECONDS:-10}"
tools="$root/.cache/test-tools"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: no nightly toolchain here (rustup toolchain install nightly)" >&2
  exit 0
fi
if ! "$tools/cargo/bin/cargo-fuzz" --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION ..." >&2
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$tools/cargo"
fi
export PATH="$tools/cargo/bin:$PATH"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O
mkdir -p target
for target in "${targets[@]}"; do
  corpus="$root/fuzz/target/corpus/$target"
  mkdir -p "$corpus"
  log="$root/target/fuzz-$target.log"
  if ! cargo +nightly fuzz run -O "$target" "$corpus" "fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -max_len=131072 -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 > "$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target FAILED (the input is in fuzz/artifacts/$target/, the log in $log)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz: $target: $runs inputs in ${seconds}s, no crash" >&2
done
