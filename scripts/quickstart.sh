#!/usr/bin/env bash
# Quick start, step 1: install everything, check the stack, run the offline demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/sam2voice doctor
.venv/bin/sam2voice demo
