#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run them.
# This is the README's test command and exactly what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'

# Real database servers for the InfluxDB sink tests come from Debian packages;
# the tests start them on loopback themselves and stop them afterwards.
bash tests/servers/install.sh

.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
