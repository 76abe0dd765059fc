#!/usr/bin/env bash
# Builds tests/interop/s2ref/main.go against Debian's packaged
# github.com/klauspost/compress (GOPATH mode, no network, no modules).
#   build-s2ref.sh SOURCE OUTPUT WORKDIR
set -euo pipefail
src="$1"; out="$2"; work="$3"
mkdir -p "$work"
export GO111MODULE=off GOFLAGS= GOPROXY=off
export GOPATH="$work/gopath:/usr/share/gocode"
export GOCACHE="$work/gocache" HOME="$work"
exec go build -o "$out" "$src"
