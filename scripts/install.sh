#!/usr/bin/env bash
# install.sh — install gatewayd on the Pi it runs on (as root), from a binary built by build-pi.sh:
#   sudo scripts/install.sh dist/arm64/gatewayd
# Installs the binary, the systemd unit, the udev rule and (if none exists) the example config.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: install.sh PATH-TO-gatewayd-BINARY}
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
install -m 0755 "$bin" /usr/local/bin/gatewayd
install -m 0644 deploy/systemd/gatewayd.service /etc/systemd/system/gatewayd.service
install -m 0644 deploy/udev/99-gatewayd-ec600.rules /etc/udev/rules.d/99-gatewayd-ec600.rules
install -d -m 0755 /etc/gatewayd
if [ ! -e /etc/gatewayd/gatewayd.toml ]; then
	install -m 0640 deploy/gatewayd.example.toml /etc/gatewayd/gatewayd.toml
	echo "install.sh: edit /etc/gatewayd/gatewayd.toml, then: systemctl enable --now gatewayd"
fi
getent group gpio >/dev/null || groupadd --system gpio
udevadm control --reload
udevadm trigger --subsystem-match=tty
systemctl daemon-reload
/usr/local/bin/gatewayd check -config /etc/gatewayd/gatewayd.toml || echo "install.sh: the config needs attention (above)"
