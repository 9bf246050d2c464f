#!/usr/bin/env bash
# Install the test dependencies into .venv and run the whole test suite (the README's second command).
# Extra arguments go to pytest, e.g. scripts/test.sh -k attribution
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
.venv/bin/python -m pytest "$@"
