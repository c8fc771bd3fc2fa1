#!/usr/bin/env bash
# Installs everything the test suite needs, then runs it: lint, types, JS tests, pytest.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "test.sh: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,docs,bench]"

echo "test.sh: draft-15 interop client (Python >= 3.12 venv with pywebtransport)"
bash scripts/interop-venv.sh

echo "test.sh: ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "test.sh: mypy --strict"
.venv/bin/mypy
echo "test.sh: node --test tests/js"
node --test tests/js/
echo "test.sh: pytest"
NO_MKDOCS_2_WARNING=1 .venv/bin/pytest "$@"
