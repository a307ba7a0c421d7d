#!/usr/bin/env bash
# build-pi.sh — cross-compile gatewayd and ec600sim for the Raspberry Pi (no cgo needed).
#   scripts/build-pi.sh            both arm64 (Pi 3/4/5 on a 64-bit OS) and armv7 (32-bit OS)
#   scripts/build-pi.sh arm64      one of them
# Binaries land in dist/<arch>/.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(arm64 armv7)
for a in "${archs[@]}"; do
	case "$a" in
	arm64) env=(GOARCH=arm64) ;;
	armv7) env=(GOARCH=arm GOARM=7) ;;
	armv6) env=(GOARCH=arm GOARM=6) ;;
	*) echo "build-pi: unknown arch $a (arm64, armv7, armv6)" >&2; exit 2 ;;
	esac
	mkdir -p "dist/$a"
	for cmd in gatewayd ec600sim; do
		env CGO_ENABLED=0 GOOS=linux "${env[@]}" go build -trimpath -ldflags "-s -w -X main.version=$version" \
			-o "dist/$a/$cmd" "./cmd/$cmd"
	done
	echo "dist/$a: $(ls "dist/$a" | tr '\n' ' ')"
done
