#!/usr/bin/env bash
# build-pi.sh — cross-compile gatewayd and ec600sim for the Raspberry Pi (no cgo needed), for the
# by-hand install (scripts/install.sh); scripts/package-deb.sh makes Debian packages instead.
#   scripts/build-pi.sh            both arm64 (Pi 3/4/5 on a 64-bit OS) and armv7 (32-bit OS)
#   scripts/build-pi.sh arm64      one of them (arm64, armv7, armv6: Pi Zero W and Pi 1)
# Binaries land in dist/<arch>/. gatewayd is built as the package's is: -tags nosim (no emulator;
# ec600sim is the emulator for the Pi), with the version from scripts/version.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
xflag=$(scripts/version.sh -X)
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
	env CGO_ENABLED=0 GOOS=linux "${env[@]}" go build -tags nosim -trimpath -ldflags "-s -w $xflag" \
		-o "dist/$a/gatewayd" ./cmd/gatewayd
	env CGO_ENABLED=0 GOOS=linux "${env[@]}" go build -trimpath -ldflags "-s -w" \
		-o "dist/$a/ec600sim" ./cmd/ec600sim
	echo "dist/$a: gatewayd ec600sim"
done
