#!/usr/bin/env bash
# package-deb.sh — build gatewayd's Debian packages, for the Raspberry Pi or any Debian with systemd.
#   scripts/package-deb.sh               arm64 (Pi 3/4/5, Zero 2 W on a 64-bit OS) and armhf (32-bit OS)
#   scripts/package-deb.sh amd64         any of arm64, armhf, amd64 (amd64: the CI's package test)
#   --out DIR                            where the .deb files go (default dist/)
# The packages land as DIR/gatewayd_<version>_<arch>.deb; the version comes from git
# (scripts/version.sh; GATEWAYD_VERSION overrides it). Needs Go and dpkg-deb (Debian: dpkg), not root.
#
# What a package holds:
#   /usr/bin/gatewayd                          built with -tags nosim: no EC600 emulator, no broker
#   /usr/lib/systemd/system/gatewayd.service   deploy/systemd/gatewayd.service, ExecStart=/usr/bin/gatewayd
#   /usr/lib/udev/rules.d/99-gatewayd-ec600.rules
#   /usr/lib/sysusers.d/gatewayd.conf          the user gatewayd the unit runs as, and the gpio group
#   /etc/gatewayd/gatewayd.toml                the example config, a conffile, 0640 root:gatewayd
#   /usr/share/doc/gatewayd/gatewayd.example.toml   the same, as shipped, for reference
#   /usr/share/doc/gatewayd/examples/<platform>.toml  deploy/examples: one per cloud preset
#   /usr/share/gatewayd/ca/*.pem               deploy/ca: the root CAs the cloud presets use (docs/clouds.md)
#   /usr/share/doc/gatewayd/copyright          deploy/debian/copyright (DEP-5): gatewayd's licence and
#                                              every Go module's in the binary, checked against it
#   /usr/share/doc/gatewayd/changelog.gz       a Debian changelog entry for this build
#   /usr/share/man/man8/gatewayd.8.gz, /usr/share/man/man5/gatewayd.toml.5.gz   docs/man
#   /usr/share/bash-completion/completions/gatewayd   deploy/completion/gatewayd.bash
#   /usr/share/zsh/vendor-completions/_gatewayd        deploy/completion/_gatewayd
#   /usr/share/lintian/overrides/gatewayd      deploy/debian/lintian-overrides, each with its reason
# and deploy/debian/{postinst,prerm,postrm}, which never enable or start the service.
# The copyright file must list exactly the modules each binary holds (scripts/copyright -check):
# after a dependency change, regenerate it with `go run ./scripts/copyright -o deploy/debian/copyright`.
# The Maintainer is the project (DEB_MAINTAINER overrides it).
# armhf is built for ARMv6 (GOARM=6), so that it also runs on a Pi Zero W or Pi 1 with Raspberry Pi OS.
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
archs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	-*) echo "package-deb: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) archs+=("$1"); shift ;;
	esac
done
[ ${#archs[@]} -gt 0 ] || archs=(arm64 armhf)
command -v dpkg-deb >/dev/null || { echo "package-deb: dpkg-deb not found (Debian: apt-get install dpkg)" >&2; exit 1; }
command -v go >/dev/null || { echo "package-deb: go not found" >&2; exit 1; }

version=$(scripts/version.sh)
xflag=$(scripts/version.sh -X)
# Timestamps in the package from the commit, so that a rebuild of one commit gives the same files.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
# The project's address, the one its commits are made with.
maintainer=${DEB_MAINTAINER:-gatewayd maintainers <maintainers@users.noreply.r-seed-0ca02c36.example>}

# changelog FILE: a native package's changelog (gzip -9n), one entry for this build. The project
# keeps its history in git; the entry says which commit the package was built from.
changelog() {
	local commit date
	commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	date=$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
	printf '%s\n' "gatewayd ($version) unstable; urgency=medium" "" \
		"  * Built from commit $commit of https://github.com/gatewayd/gatewayd;" \
		"    the history of changes is the project's git log." "" \
		" -- $maintainer  $date" | gzip -9n >"$1"
}

mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 022

for arch in "${archs[@]}"; do
	case "$arch" in
	arm64) goenv=(GOARCH=arm64) ;;
	armhf) goenv=(GOARCH=arm GOARM=6) ;;
	amd64) goenv=(GOARCH=amd64) ;;
	*) echo "package-deb: unknown architecture $arch (arm64, armhf, amd64)" >&2; exit 2 ;;
	esac
	root=$stage/$arch
	mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" "$root/usr/lib/udev/rules.d" \
		"$root/usr/lib/sysusers.d" "$root/etc/gatewayd" "$root/usr/share/doc/gatewayd" \
		"$root/usr/share/doc/gatewayd/examples" "$root/usr/share/gatewayd/ca" \
		"$root/usr/share/man/man8" "$root/usr/share/man/man5" "$root/usr/share/bash-completion/completions" \
		"$root/usr/share/zsh/vendor-completions" \
		"$root/usr/share/lintian/overrides"

	# No -trimpath: without it the packages' Go build cache is shared with plain `CGO_ENABLED=0 go
	# build`s (CI's VM tests), which keeps the CI's package step within its time; the cost is the
	# build directory's path in the binary's file names.
	env CGO_ENABLED=0 GOOS=linux "${goenv[@]}" go build -tags nosim -ldflags "-s -w $xflag" \
		-o "$root/usr/bin/gatewayd" ./cmd/gatewayd

	sed 's|^ExecStart=/usr/local/bin/gatewayd |ExecStart=/usr/bin/gatewayd |' deploy/systemd/gatewayd.service \
		>"$root/usr/lib/systemd/system/gatewayd.service"
	grep -q '^ExecStart=/usr/bin/gatewayd ' "$root/usr/lib/systemd/system/gatewayd.service" ||
		{ echo "package-deb: deploy/systemd/gatewayd.service has no ExecStart=/usr/local/bin/gatewayd to point at /usr/bin" >&2; exit 1; }
	chmod 0644 "$root/usr/lib/systemd/system/gatewayd.service"
	install -m 0644 deploy/udev/99-gatewayd-ec600.rules "$root/usr/lib/udev/rules.d/"
	install -m 0644 deploy/sysusers/gatewayd.conf "$root/usr/lib/sysusers.d/gatewayd.conf"
	# 0640 in the archive too: it is never readable by others, not even between unpack and postinst.
	install -m 0640 deploy/gatewayd.example.toml "$root/etc/gatewayd/gatewayd.toml"
	install -m 0644 deploy/gatewayd.example.toml "$root/usr/share/doc/gatewayd/gatewayd.example.toml"
	install -m 0644 deploy/examples/*.toml "$root/usr/share/doc/gatewayd/examples/"
	install -m 0644 deploy/ca/*.pem "$root/usr/share/gatewayd/ca/"
	# Every Go module compiled in must be in the copyright file, at the version compiled in.
	go run ./scripts/copyright -bin "$root/usr/bin/gatewayd" -check deploy/debian/copyright
	install -m 0644 deploy/debian/copyright "$root/usr/share/doc/gatewayd/copyright"
	changelog "$root/usr/share/doc/gatewayd/changelog.gz"
	# gzip -n: no name or time in the header, so that the same sources give the same package.
	gzip -9n <docs/man/gatewayd.8 >"$root/usr/share/man/man8/gatewayd.8.gz"
	gzip -9n <docs/man/gatewayd.toml.5 >"$root/usr/share/man/man5/gatewayd.toml.5.gz"
	install -m 0644 deploy/completion/gatewayd.bash "$root/usr/share/bash-completion/completions/gatewayd"
	install -m 0644 deploy/completion/_gatewayd "$root/usr/share/zsh/vendor-completions/_gatewayd"
	install -m 0644 deploy/debian/lintian-overrides "$root/usr/share/lintian/overrides/gatewayd"
	chmod 0644 "$root"/usr/share/doc/gatewayd/changelog.gz "$root"/usr/share/man/man*/*.gz
	install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
	echo /etc/gatewayd/gatewayd.toml >"$root/DEBIAN/conffiles"
	(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
	size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
	cat >"$root/DEBIAN/control" <<-CONTROL
	Package: gatewayd
	Version: $version
	Architecture: $arch
	Maintainer: $maintainer
	Installed-Size: $size
	Depends: systemd (>= 247), init-system-helpers (>= 1.54), procps
	Recommends: udev
	Section: net
	Priority: optional
	Homepage: https://github.com/gatewayd/gatewayd
	Description: MQTT gateway for a Quectel EC600 LTE module on its serial AT port
	 gatewayd drives a Quectel EC600 LTE module over its serial AT port, keeps the
	 module's built-in MQTT client connected, and toggles a GPIO LED when downlinks
	 arrive. It runs as a sandboxed systemd service; this package installs it
	 disabled: configure /etc/gatewayd/gatewayd.toml, then systemctl enable --now
	 gatewayd.
	CONTROL
	deb=$out/gatewayd_${version}_${arch}.deb
	dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
	echo "$deb ($(du -k "$deb" | cut -f1) KiB; gatewayd $(stat -c %s "$root/usr/bin/gatewayd") bytes)"
done
