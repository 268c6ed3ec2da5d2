#!/usr/bin/env bash
# Sets everything up (a virtualenv; no server to install) and runs Concord's main job on the
# embedded default: a sample practice database with 10,000 clients migrated into a SQLite hub,
# then live edits and deletes shown arriving. Extra arguments go to `concord demo`
# (e.g. --live to keep it running, --clients 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
CONCORD_SYSTEM_PACKAGES="" ./scripts/setup.sh
exec .venv/bin/concord demo "$@"
