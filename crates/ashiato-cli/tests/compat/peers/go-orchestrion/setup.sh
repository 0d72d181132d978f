#!/usr/bin/env bash
# Builds the Orchestrion peer into OUT ($1): `orchestrion go build` of the
# orders service, with orchestrion itself pinned as a Go tool in go.mod.
# Orchestrion rewrites and recompiles net/http and dd-trace-go, which takes
# minutes on two cores the first time; the Go build cache (GOCACHE) keeps
# those packages, so a warm machine relinks in seconds, and scripts/test
# keeps OUT itself until a file of this folder changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"
cd "$here"

# go.mod and go.sum are the pins: never let the build edit them.
export GOFLAGS="-mod=readonly -buildvcs=false"
# the binary's name is the service name dd-trace-go reports without DD_SERVICE
go tool orchestrion go build -o "$out/orders" .

echo "export ASHIATO_COMPAT_GO_ORCHESTRION_BIN=@OUT@/orders" >"$out/env"
