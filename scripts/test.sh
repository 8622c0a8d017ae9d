#!/usr/bin/env bash
# Installs the package with its test extras into the active Python, then lints and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e ".[test]"
ruff check .
TF_CPP_MIN_LOG_LEVEL=2 python -m pytest -q -n 2 --durations=20
