#!/usr/bin/env bash
# Prepare .venv-interop: a Python 3.12 virtualenv with pywebtransport, the draft-15 client
# that tests/interop runs against a wtframe server. Safe to run repeatedly.
# Usage: bash scripts/interop-venv.sh   (prints the venv's python on its last line)
set -euo pipefail
cd "$(dirname "$0")/.."

PYWEBTRANSPORT_VERSION="${PYWEBTRANSPORT_VERSION:-0.21.1}"
VENV=.venv-interop

if [[ -x "$VENV/bin/python" ]] &&
    "$VENV/bin/python" -c "import pywebtransport, sys; sys.exit(pywebtransport.__version__ != '$PYWEBTRANSPORT_VERSION')" 2>/dev/null; then
    echo "$VENV/bin/python"
    exit 0
fi

PYTHON=""
for candidate in "${INTEROP_PYTHON:-}" python3.13 python3.12 \
    "$HOME/.pyenv/versions/3.13.0/bin/python" "$HOME/.pyenv/versions/3.12.1/bin/python"; do
    if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c "import sys; sys.exit(sys.version_info < (3, 12))" 2>/dev/null; then
        PYTHON="$(command -v "$candidate")"
        break
    fi
done
if [[ -z "$PYTHON" ]]; then
    echo "interop-venv.sh: pywebtransport needs Python >= 3.12, and none was found" >&2
    exit 2
fi

echo "interop-venv.sh: creating $VENV with $("$PYTHON" --version)" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "pywebtransport==$PYWEBTRANSPORT_VERSION" >&2
echo "$VENV/bin/python"
