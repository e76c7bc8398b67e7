#!/usr/bin/env bash
# Idempotent setup for the whole-system benchmark (bench/run.py).
# Installs the PostgreSQL 15 spatial extensions (needs root) and a venv at bench/.venv.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need_pkgs=()
for p in postgresql-15 postgresql-15-q3c postgresql-15-pgsphere; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing ${need_pkgs[*]}; run as root (apt-get install)" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}"
fi

if [[ ! -x "$here/.venv/bin/python" ]]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q --upgrade pip
"$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
"$here/.venv/bin/python" -c 'import psycopg, duckdb, pyarrow, numpy; print("bench venv ok: psycopg", psycopg.__version__, "duckdb", duckdb.__version__, "pyarrow", pyarrow.__version__)'
