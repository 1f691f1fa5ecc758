#!/usr/bin/env bash
# Quick start, step 2: install (if needed) and run the whole test suite (pytest).
# Tests start their own embedded Redis (a private unix socket); nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# Debian packages of the voice tests (espeak-ng, sox, chromium, chromium-driver); fast when present.
bash scripts/system-deps.sh
exec .venv/bin/python -m pytest "$@"
