#!/usr/bin/env bash
# Installs the Node zero-code client: app.js with express and
# @opentelemetry/auto-instrumentations-node (which brings sdk-node and the
# OTLP exporters), exactly as package-lock.json pins them, into OUT/app so
# node_modules never lands in the checkout.
#   bash setup.sh OUT
set -euo pipefail

out="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The pinned OpenTelemetry JS release line supports Node ^18.19 || >=20.6.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
              process.exit(a > 20 || (a === 20 && b >= 6) ? 0 : 1)'; then
    echo "node >= 20.6 is needed, found $(node --version 2>&1 || echo none)" >&2
    exit 1
fi

mkdir -p "$out/app"
cp "$here/package.json" "$here/package-lock.json" "$here/app.js" "$out/app/"
# No install scripts: none of the pinned packages needs one to work.
(cd "$out/app" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)

cat >"$out/env" <<'ENV'
export ASHIATO_COMPAT_NODE_APP=@OUT@/app
ENV
