#!/usr/bin/env bash
# Builds the Python monkey-patching client: a venv under OUT with Flask,
# requests and opentelemetry-instrument (distro + the pinned instrumentations
# `opentelemetry-bootstrap` would pick for this app), from requirements.txt.
#   bash setup.sh OUT
set -euo pipefail

out="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"

"$python" -m venv "$out/venv"
# --no-deps: requirements.txt pins the whole closure, so nothing floats.
"$out/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-deps -r "$here/requirements.txt"
"$out/venv/bin/python" -m pip check
cp "$here/app.py" "$out/app.py"

# scripts/test moves OUT after this, so console scripts' shebangs go stale:
# the test runs opentelemetry-instrument through the venv's python.

cat >"$out/env" <<'ENV'
export ASHIATO_COMPAT_PYTHON_AUTO_PYTHON=@OUT@/venv/bin/python
export ASHIATO_COMPAT_PYTHON_AUTO_INSTRUMENT=@OUT@/venv/bin/opentelemetry-instrument
export ASHIATO_COMPAT_PYTHON_AUTO_APP=@OUT@/app.py
ENV
