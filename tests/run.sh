#!/usr/bin/env bash
# Runs every test of Almagest on a fresh Debian machine: installs what the tests need
# (libclang for RocksDB's bindings, psql, STILTS, a Python venv with psycopg, pyvo and
# astroquery), then the whole workspace's tests on the debug build. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# One target directory outside the clone, so repeated runs on a machine are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/almagest-target}"

scripts/deps.sh

# Python clients for the client-compatibility tests (psycopg, pyvo, astroquery).
venv="$CARGO_TARGET_DIR/test-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
export ALMAGEST_TEST_PYTHON="$venv/bin/python"

cargo fmt --all -- --check
# Build every test binary first, then run them all: the two times are reported apart so
# that CI's budget (90 minutes on 2 cores, the cold build included) can be watched as the
# suites grow. --no-fail-fast: one failing binary must not hide the failures after it.
start=$(date +%s)
cargo test --workspace --locked --no-run "$@"
built=$(date +%s)
status=0
cargo test --workspace --locked --no-fail-fast "$@" || status=$?
finished=$(date +%s)
echo "tests/run.sh: build $((built - start)) s, tests $((finished - built)) s, exit $status"
exit "$status"
