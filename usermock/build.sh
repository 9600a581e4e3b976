#!/usr/bin/env bash
# Builds segments-usermock into $1: generates code from proto/, checks gofmt
# and go vet, then go build. Called by CMake (target segments-usermock).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
out=${1:?usage: build.sh OUTPUT_BINARY}

cd "$ROOT/usermock"
./generate.sh
unformatted="$(gofmt -l $(find . -name '*.go' -not -path './gen/*'))"
[[ -z $unformatted ]] || die "gofmt needed: $unformatted"
go vet ./...
go build -trimpath -o "$out" ./cmd/segments-usermock
