#!/usr/bin/env bash
# Sets everything up on a fresh machine and runs the whole test suite: lint, then pytest
# against real servers (PostgreSQL, Radicale, Xandikos, Dovecot, Chromium) that the suite starts on
# 127.0.0.1 and stops by PID. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
CONCORD_SYSTEM_PACKAGES="postgresql chromium dovecot-imapd" ./scripts/setup.sh
.venv/bin/ruff check src tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
