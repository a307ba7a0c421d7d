#!/usr/bin/env bash
# install.sh — install gatewayd by hand on the Pi it runs on (as root), from a binary built by
# build-pi.sh; the Debian package (scripts/package-deb.sh) is the other way, and sets up the same:
#   sudo scripts/install.sh dist/arm64/gatewayd
# Installs the binary in /usr/local/bin, the systemd unit, the udev rule, the user gatewayd the unit
# runs as (and the group gpio) and, if none exists, the example config, 0640 root:gatewayd. It does
# not enable or start the service.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: install.sh PATH-TO-gatewayd-BINARY}
conf=/etc/gatewayd/gatewayd.toml
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
install -m 0755 "$bin" /usr/local/bin/gatewayd
install -m 0644 deploy/systemd/gatewayd.service /etc/systemd/system/gatewayd.service
install -m 0644 deploy/udev/99-gatewayd-ec600.rules /etc/udev/rules.d/99-gatewayd-ec600.rules
install -D -m 0644 deploy/sysusers/gatewayd.conf /etc/sysusers.d/gatewayd.conf
systemd-sysusers gatewayd.conf
install -d -m 0755 /etc/gatewayd
if [ ! -e "$conf" ]; then
	install -m 0640 -o root -g gatewayd deploy/gatewayd.example.toml "$conf"
	echo "install.sh: edit $conf, then: systemctl enable --now gatewayd"
elif ! setpriv --reuid=gatewayd --regid=gatewayd --init-groups test -r "$conf"; then
	echo "install.sh: the service's user gatewayd cannot read $conf; give it the group: chgrp gatewayd $conf && chmod 0640 $conf" >&2
fi
# Only where udev and systemd run (not in a chroot or an image being built).
if [ -d /run/udev ]; then
	udevadm control --reload
	udevadm trigger --subsystem-match=tty
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi
/usr/local/bin/gatewayd check -config "$conf" || echo "install.sh: the config needs attention (above)"
