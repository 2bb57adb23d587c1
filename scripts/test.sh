#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need, then
# runs every test of the workspace (unit, doc and end-to-end).
#
# The end-to-end tests use python3 (../shared/bench/gen_workload.py and
# check_output.py) and gzip; both are installed from Debian's packages if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v gzip >/dev/null 2>&1 || need_apt+=(gzip)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} ..." >&2
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
if [ ! -f ../shared/bench/gen_workload.py ]; then
  echo "error: ../shared/ (the project's shared fixtures) must sit beside the repository" >&2
  exit 1
fi

cargo test --workspace --locked "$@"
