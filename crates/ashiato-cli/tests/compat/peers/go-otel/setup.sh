#!/usr/bin/env bash
# Builds the order service of the Go OpenTelemetry SDK compatibility test
# (main.go; the SDK, otelhttp/otelhttptrace/otelgrpc and gRPC versions are
# pinned by go.mod/go.sum) into OUT and names it in OUT/env. Go's module and
# build caches make a warm rebuild take seconds.
#
# -trimpath, as release builds are made: stack traces then name files by
# module path (`go.opentelemetry.io/otel/sdk@v1.47.0/trace/span.go`), not by
# the module cache's directory, which is the harder case for in-app marking.
#
#   bash setup.sh OUT
set -euo pipefail

out="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v go >/dev/null || { echo "setup.sh: go is not installed" >&2; exit 1; }

cd "$here"
# The go.mod's Go version is the machine's: never fetch another toolchain.
GOTOOLCHAIN=local GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false \
    -o "$out/order-svc" .
echo 'export ASHIATO_COMPAT_GO_OTEL_BIN=@OUT@/order-svc' >"$out/env"
