#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of the compatibility test (main.go: the
# core OTLP receiver, batch/memory_limiter processors, OTLP gRPC and HTTP
# exporters, all at one collector release pinned by go.mod/go.sum) into OUT
# and names it in OUT/env. Go's module and build caches make a rebuild on a
# warm machine take seconds; a cold one compiles the collector's whole
# dependency tree (minutes on two cores).
#
#   bash setup.sh OUT
set -euo pipefail

out="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v go >/dev/null || { echo "setup.sh: go is not installed" >&2; exit 1; }

cd "$here"
# The go.mod's Go version is the machine's: never fetch another toolchain.
GOTOOLCHAIN=local GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false \
    -o "$out/otelcol" .
echo 'export ASHIATO_COMPAT_COLLECTOR_BIN=@OUT@/otelcol' >"$out/env"
