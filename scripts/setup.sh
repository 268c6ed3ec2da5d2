#!/usr/bin/env bash
# Sets up everything Concord needs on a fresh Debian machine, idempotently:
# system packages (PostgreSQL, Chromium for the browser tests, Dovecot for the IMAP tests as
# scripts/test.sh asks), a virtualenv in .venv,
# and Concord with its test dependencies. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Unset: the servers the tests use. Set, even to "" (demo.sh: no server), it is taken as given.
want_system=${CONCORD_SYSTEM_PACKAGES-postgresql chromium}
if [ -n "${CONCORD_SETUP_PLAN:-}" ]; then  # print what would be installed, change nothing
  echo "setup: system packages wanted: ${want_system:-(none)}"
  exit 0
fi
missing=()
for pkg in $want_system; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install as root: apt-get install ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.concord-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Concord and its dependencies into .venv (log: .venv/pip.log)"
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install -e ".[${CONCORD_EXTRAS:-test}]"; } > .venv/pip.log 2>&1; then
    tail -30 .venv/pip.log >&2
    echo "setup: pip failed; the whole log is in .venv/pip.log" >&2
    exit 1
  fi
  touch "$stamp"
fi
