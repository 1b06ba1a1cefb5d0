#!/bin/sh
# Builds the extension for one architecture and writes the layer zip:
#     sh build-layer.sh <x86_64|arm64> <output.zip>
# The only place the build flags live: `make layer`, the CDK construct's local build and its Docker
# build all run this script, so every path gives the same bytes from the same source and Go release.
set -eu
ARCH=${1:?usage: build-layer.sh <x86_64|arm64> <output.zip>}
OUT=${2:?usage: build-layer.sh <x86_64|arm64> <output.zip>}
case "$ARCH" in
    x86_64) GOARCH=amd64 ;;
    arm64) GOARCH=arm64 ;;
    *) echo "build-layer.sh: architecture '$ARCH' is not x86_64 or arm64" >&2; exit 2 ;;
esac
case "$OUT" in /*) ;; *) OUT="$(pwd)/$OUT" ;; esac
cd "$(dirname "$0")"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Reproducible: no cgo, no paths, no VCS stamp, stripped, empty build id.
CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags="-s -w -buildid=" -o "$WORK/invocation-history-extension" .
go run ./tools/layerzip -o "$OUT" \
    "extensions/invocation-history-extension=$WORK/invocation-history-extension:0755" \
    "invocation-history-wrapper=wrapper/invocation-history-wrapper:0755"
