#!/usr/bin/env bash
# Installs the system packages that building and testing Almagest need on Debian/Ubuntu:
# libclang (RocksDB's Rust bindings are generated with bindgen at build time), psql for
# the client tests, Python with venv, and STILTS (taplint checks the TAP service; it
# brings a Java runtime). Does nothing when they are already there.
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v stilts >/dev/null 2>&1 || need+=(stilts)
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv)
elif ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
