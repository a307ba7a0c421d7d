#!/usr/bin/env bash
# test-deb.sh — test gatewayd's Debian packages (from scripts/package-deb.sh) the way an operator
# uses them, in a fresh Debian root made by mmdebstrap, with the root's own dpkg, apt, systemd and udev.
#   scripts/test-deb.sh [options] DEB...
# A package for this machine's architecture (amd64 here) goes through its whole life in the root:
#   install     apt-get install ./gatewayd_*.deb; the files, their owners and modes; the config a
#               conffile, 0640 root:gatewayd; the user gatewayd and the group gpio; the service neither
#               enabled nor started; `gatewayd -version` prints the package's version and commit;
#               `gatewayd sim` says the emulator is not in this build; `systemd-analyze verify` and
#               `systemd-analyze security` on the installed unit; `udevadm verify` on the rule (systemd
#               253 and later); `gatewayd check` on the installed example, as root and as the service's
#               user; another user cannot read it
#   configure   the operator edits the config, adds a credential and a LoadCredential= drop-in,
#               and enables the service; the unit with the drop-in verifies
#   upgrade     the same package again (dpkg -i over itself), then the same files as a newer version,
#               then a newer version whose shipped config changed (dpkg keeps the operator's file and
#               puts the new one beside it as .dpkg-dist): each time the edit, the config's owner
#               and mode, the drop-in, the credential and the enablement stay
#   remove      the program, unit, rule and sysusers file go; the config, the user and the state stay
#   purge       nothing is left: every path in the root is as before the install, /etc/passwd and
#               /etc/shadow are as before, /etc/group differs only by the gpio group, no statoverride
#   by hand     then scripts/install.sh, with the package's binary, sets up the same user and
#               config permissions, and its unit (ExecStart=/usr/local/bin/gatewayd) verifies
# A package for another architecture (arm64, armhf) is checked without a root: its control fields,
# the same file list as a native package given with it, the binary's ELF machine, and, with
# qemu-user (Debian: qemu-user), `gatewayd -version`, `gatewayd check` on its config and `gatewayd sim`.
#
# Options:
#   --suite SUITE   the Debian release of the root (default trixie)
#   --mirror URL    the Debian mirror (default: the one this machine's apt sources use for Debian)
#   --keep DIR      build the root in DIR (created, must not exist) and leave it there; by default it
#                   lives on a tmpfs in a private mount namespace and vanishes with the script
#   -h, --help      show this help
# Needs root, mmdebstrap (Debian: apt-get install mmdebstrap) and the network to the Debian mirror.
# Prints "ok"/"FAIL" per check and ends with "N passed, N failed". Exit 0 only when none failed;
# 1 a check failed; 2 usage; 3 the root could not be made.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "test-deb: error: $*" >&2; exit 3; }
note() { echo "test-deb: $*"; }

args=("$@")
suite=trixie mirror="" keep="" debs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--suite) suite=${2:?--suite needs a Debian release}; shift 2 ;;
	--mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
	--keep) keep=${2:?--keep needs a directory}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	-*) echo "test-deb: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) debs+=("$1"); shift ;;
	esac
done
[ ${#debs[@]} -gt 0 ] || { echo "test-deb: no package given (see --help)" >&2; exit 2; }
for d in "${debs[@]}"; do
	[ -f "$d" ] || { echo "test-deb: $d: no such file" >&2; exit 2; }
done
[ -z "$keep" ] || [ ! -e "$keep" ] || { echo "test-deb: --keep $keep exists already" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "test-deb: run as root (it makes a Debian root with mmdebstrap and chroots into it)" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:/sbin" LC_ALL=C.UTF-8

# The root's mounts (its tmpfs, /proc) live in a mount namespace of their own: whatever happens,
# nothing stays mounted on the host, and no cleanup can reach through a bind mount.
if [ -z "${GATEWAYD_TESTDEB_NS:-}" ]; then
	GATEWAYD_TESTDEB_NS=1 exec unshare --mount --propagation private -- "$0" "${args[@]}"
fi

t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0)) s"; }
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
# check NAME COMMAND...: the command's exit status is the check; its output is shown on failure.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else fail "$name"; printf '%s\n' "$out" | sed 's/^/      /'; fi
}

repo=$(cd "$(dirname "$0")/.." && pwd)
deb_field() { dpkg-deb -f "$1" "$2"; }
# quiet COMMAND...: the command succeeds and prints nothing (systemd-analyze verify's contract).
quiet() {
	local out
	if out=$("$@" 2>&1) && [ -z "$out" ]; then return 0; fi
	printf '%s\n' "$out"
	return 1
}
# version_is VERSION COMMAND...: `COMMAND -version` prints "gatewayd VERSION COMMIT".
version_is() {
	local want=$1 out
	shift
	out=$("$@" -version 2>&1) || { printf '%s\n' "$out"; return 1; }
	printf '%s\n' "$out"
	[[ "$out" =~ ^gatewayd\ (.+)\ ([0-9a-f]{12})$ ]] && [ "${BASH_REMATCH[1]}" = "$want" ]
}
# sim_refused COMMAND...: `COMMAND sim` exits 2 saying the emulator is not in this build.
sim_refused() {
	local out code=0
	out=$("$@" sim 2>&1) || code=$?
	printf '%s\n' "$out"
	[ "$code" = 2 ] && grep -q "built without the EC600 emulator" <<<"$out"
}
native=$(dpkg --print-architecture)

# ---- packages for other architectures ------------------------------------------------------------
native_deb=""
for d in "${debs[@]}"; do
	[ "$(deb_field "$d" Architecture)" = "$native" ] && native_deb=$d
done

elf_machine() { od -An -t u2 -j 18 -N 2 "$1" | tr -d ' '; }
test_foreign() {
	local deb=$1 arch dir qemu machine want v
	arch=$(deb_field "$deb" Architecture)
	v=$(deb_field "$deb" Version)
	echo "--- $arch: $deb"
	check "$arch: Package gatewayd" test "$(deb_field "$deb" Package)" = gatewayd
	check "$arch: Depends on systemd" grep -q '^systemd' <<<"$(deb_field "$deb" Depends)"
	if [ -n "$native_deb" ]; then
		check "$arch: the same files as the $native package" \
			diff <(dpkg-deb -c "$native_deb" | awk '{print $1, $2, $6}') <(dpkg-deb -c "$deb" | awk '{print $1, $2, $6}')
	fi
	dir=$(mktemp -d)
	dpkg-deb -x "$deb" "$dir"
	case "$arch" in
	arm64) want=183 qemu=qemu-aarch64 ;;
	armhf) want=40 qemu=qemu-arm ;;
	*) want="" qemu="" ;;
	esac
	machine=$(elf_machine "$dir/usr/bin/gatewayd")
	if [ -n "$want" ]; then
		check "$arch: /usr/bin/gatewayd is an ELF binary for $arch (e_machine $machine)" test "$machine" = "$want"
	fi
	if [ -z "$qemu" ] || ! command -v "$qemu" >/dev/null; then
		note "$arch: ${qemu:-qemu-user} not installed (Debian: apt-get install qemu-user), so the $arch binary is not run"
	else
		check "$arch: gatewayd -version under $qemu prints $v and the commit" \
			version_is "$v" "$qemu" "$dir/usr/bin/gatewayd"
		check "$arch: gatewayd check on the packaged config under $qemu" \
			"$qemu" "$dir/usr/bin/gatewayd" check -config "$dir/etc/gatewayd/gatewayd.toml"
		check "$arch: gatewayd sim under $qemu says the emulator is not in this build" \
			sim_refused "$qemu" "$dir/usr/bin/gatewayd"
	fi
	rm -rf "$dir"
}
for d in "${debs[@]}"; do
	[ "$d" = "$native_deb" ] || test_foreign "$d"
done

if [ -z "$native_deb" ]; then
	note "no $native package given: no Debian root test"
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
fi

# ---- the Debian root -----------------------------------------------------------------------------
command -v mmdebstrap >/dev/null || die "mmdebstrap not installed (Debian: apt-get install mmdebstrap)"

# The Debian mirror this machine's apt uses: the first deb source for its own release.
host_mirror() {
	local codename
	[ -r /etc/os-release ] || return 1
	# shellcheck disable=SC1091
	codename=$(. /etc/os-release && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || return 1
	{
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -r "$f" ] || continue
			awk -v c="$codename" '
				function flush() { if (deb && suite && uri != "") { print uri; found = 1; exit } deb = suite = 0; uri = "" }
				/^[ \t]*$/ { flush(); next }
				tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
				tolower($1) == "uris:" { uri = $2 }
				tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == c) suite = 1 }
				END { if (!found) flush() }' "$f"
		done
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -r "$f" ] || continue
			awk -v c="$codename" '$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
				if ($(i + 1) == c) { print $i; exit }
			}' "$f"
		done
	} | head -n 1
}
if [ -z "$mirror" ]; then
	mirror=$(host_mirror) || true
	[ -n "$mirror" ] || die "found no Debian mirror in this machine's apt sources; give one with --mirror URL"
fi

if [ -n "$keep" ]; then
	root=$(mkdir -p "$keep" && cd "$keep" && pwd)
else
	root=$(mktemp -d /tmp/gatewayd-debroot.XXXXXX)
	mount -t tmpfs -o size=2g,mode=0755 gatewayd-debroot "$root"
	trap 'umount -l "$root"/proc 2>/dev/null; umount -l "$root" 2>/dev/null; rmdir "$root" 2>/dev/null || true' EXIT
fi

echo "--- a Debian $suite root in $root from $mirror ($(elapsed))"
mm_log=$(mktemp)
# passwd (userdel), udev and man-db are on every real system; the apt variant is only Essential: yes and apt.
# man-db: `man gatewayd` is checked as an operator would read it; procps (/bin/kill, ExecReload=)
# is a dependency of the package, and this root has no package lists to fetch it with.
if ! mmdebstrap --mode=root --variant=apt --include=systemd,udev,passwd,man-db,procps --dpkgopt=force-unsafe-io \
	"$suite" "$root" "deb $mirror $suite main" >"$mm_log" 2>&1; then
	tail -n 30 "$mm_log" >&2
	die "mmdebstrap failed (above)"
fi
rm -f "$mm_log"
mount -t proc proc "$root/proc"
note "root ready ($(elapsed)): systemd $(chroot "$root" dpkg-query -W -f "\${Version}" systemd)"

# in_root COMMAND...: run in the root, as apt and dpkg would be run on a Pi, with no terminal.
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive HOME=/root "$@"; }

# Every path in the root but the bookkeeping of dpkg, apt and the logs; and the user databases.
snapshot() {
	in_root find / -xdev \( -path /proc -o -path /dev -o -path /sys -o -path /run -o -path /tmp \
		-o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache -o -path /var/log \) -prune \
		-o \( -path /etc/passwd- -o -path /etc/group- -o -path /etc/shadow- -o -path /etc/gshadow- \) -prune \
		-o -print | LC_ALL=C sort
}
# systemd makes /var/lib/private (0700) for the first service with DynamicUser= and StateDirectory=;
# it is systemd's, not the package's, and stays.
install -d -m 0700 "$root/var/lib/private"
snap=$(mktemp -d)
snapshot >"$snap/paths.before"
for f in passwd group shadow gshadow; do cp "$root/etc/$f" "$snap/$f.before"; done

# The packages under test, in the root: the one given; the same files as a newer version; a newer
# one still whose shipped config changed. Versions are only compared by dpkg, so any suffix that
# sorts later will do.
v1=$(deb_field "$native_deb" Version)
v2=$v1+up1
v3=$v1+up2
if ! dpkg --compare-versions "$v2" gt "$v1" || ! dpkg --compare-versions "$v3" gt "$v2"; then
	die "$v2 and $v3 do not sort after $v1"
fi
repack() { # repack VERSION OUT [config-change]
	local d
	d=$(mktemp -d)
	dpkg-deb -R "$native_deb" "$d/p"
	sed -i "s/^Version: .*/Version: $1/" "$d/p/DEBIAN/control"
	if [ -n "${3:-}" ]; then
		printf '\n# A line the newer package adds to the shipped config.\n' >>"$d/p/etc/gatewayd/gatewayd.toml"
		(cd "$d/p" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$d/p/DEBIAN/md5sums"
	fi
	dpkg-deb --root-owner-group -Zgzip -z1 --build "$d/p" "$2" >/dev/null
	rm -rf "$d"
}
mkdir -p "$root/tmp/debs"
cp "$native_deb" "$root/tmp/debs/gatewayd_v1.deb"
repack "$v2" "$root/tmp/debs/gatewayd_v2.deb"
repack "$v3" "$root/tmp/debs/gatewayd_v3.deb" config-change

conf=/etc/gatewayd/gatewayd.toml
unit=/usr/lib/systemd/system/gatewayd.service
rule=/usr/lib/udev/rules.d/99-gatewayd-ec600.rules
sysusers=/usr/lib/sysusers.d/gatewayd.conf
# system_user NAME: a system user with no login shell and no home.
system_user() {
	local entry uid home shell
	entry=$(in_root getent passwd "$1") || { echo "no user $1"; return 1; }
	IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
	echo "$entry"
	[ "$uid" -lt 1000 ] && [ "$home" = /nonexistent ] && [[ "$shell" == */nologin ]]
}
# denied COMMAND...: the command fails for want of permission.
denied() {
	local out
	out=$("$@" 2>&1) && { echo "it succeeded: $out"; return 1; }
	printf '%s\n' "$out"
	grep -qi "permission denied" <<<"$out"
}
# absent PATH...: none of the paths exists in the root.
absent() {
	local f
	for f; do [ ! -e "$root$f" ] || { echo "$f is still there"; return 1; }; done
}
# all COMMAND... [-- COMMAND...]...: every command succeeds.
all() {
	local cmd=()
	while [ $# -gt 0 ]; do
		if [ "$1" = -- ]; then "${cmd[@]}" || return 1; cmd=(); else cmd+=("$1"); fi
		shift
	done
	[ ${#cmd[@]} -eq 0 ] || "${cmd[@]}"
}
# man_shows SECTION PAGE TEXT: `man SECTION PAGE` in the root prints the page, with TEXT in it.
man_shows() {
	local out
	out=$(in_root env MANPAGER=cat MANWIDTH=80 GROFF_NO_SGR=1 man "$1" "$2" 2>&1) || { printf '%s\n' "$out" | head -n 5; return 1; }
	# Plain text, as an operator reads it: no bold or underline (overstrikes, or SGR escapes where
	# grotty still emits them), and one space between words (groff justifies a full line with
	# two, "gatewayd  probe"), so that grep finds the words.
	out=$(printf '%s\n' "$out" | sed -e 's/.\x08//g' -e 's/\x1b\[[0-9;]*m//g' -e 's/  */ /g')
	grep -q "$3" <<<"$out" || {
		echo "man $1 $2 lacks $3:"
		printf '%s\n' "$out" | head -n 5
		printf '%s\n' "$out" | grep -n -m 5 -F "${3##* }" | cat -A | cut -c1-160
		return 1
	}
}
status() { in_root dpkg-query -W -f "\${Status} \${Version}" gatewayd 2>/dev/null || echo "unknown"; }
mode_of() { in_root stat -c '%a %U %G' "$1"; }
# mode_is PATH "MODE OWNER GROUP": as stat shows them, e.g. "640 root gatewayd".
mode_is() {
	local got
	got=$(mode_of "$1")
	[ "$got" = "$2" ] || { echo "$1: $got, want $2"; return 1; }
}
# The config as the operator left it: their edit, owner and mode, and nothing beside it but theirs.
config_kept() {
	grep -q '^client_id = "pi-edited-42"$' "$root$conf" || { echo "the edit is gone:"; grep -n client_id "$root$conf"; return 1; }
	mode_is "$conf" "640 root gatewayd" || return 1
	mode_is /etc/gatewayd/mqtt-password "600 root root" || return 1
	[ -f "$root/etc/systemd/system/gatewayd.service.d/credentials.conf" ] || { echo "the drop-in is gone"; return 1; }
	[ "$(in_root systemctl is-enabled gatewayd.service 2>&1)" = enabled ] || { echo "not enabled: $(in_root systemctl is-enabled gatewayd.service 2>&1)"; return 1; }
}

# ---- install -------------------------------------------------------------------------------------
echo "--- install $v1 ($(elapsed))"
if out=$(in_root apt-get install -y ./tmp/debs/gatewayd_v1.deb 2>&1); then ok "apt-get install ./gatewayd_${v1}_$native.deb"; else
	fail "apt-get install ./gatewayd_${v1}_$native.deb"; printf '%s\n' "$out" | sed 's/^/      /'; fi
check "installed: $(status)" test "$(status)" = "install ok installed $v1"
check "the postinst says how to configure and enable it" grep -q 'systemctl enable --now gatewayd' <<<"$out"
check "files and modes: gatewayd 0755, unit, rule and sysusers 0644, all root" \
	all mode_is /usr/bin/gatewayd "755 root root" -- mode_is "$unit" "644 root root" -- \
	mode_is "$rule" "644 root root" -- mode_is "$sysusers" "644 root root"
check "$conf is a conffile" grep -q "^ $conf [0-9a-f]\{32\}\$" <<<"$(in_root dpkg-query -W -f "\${Conffiles}\n" gatewayd)"
check "$conf is 0640 root:gatewayd" mode_is "$conf" "640 root gatewayd"
check "the user gatewayd: a system user, no login, no home" system_user gatewayd
check "the group gpio (SupplementaryGroups=) exists" in_root getent group gpio
check "the service is not enabled" test "$(in_root systemctl is-enabled gatewayd.service 2>&1)" = disabled
check "gatewayd -version prints $v1 and the commit" version_is "$v1" in_root gatewayd
check "gatewayd sim says the emulator is not in this build (exit 2)" sim_refused in_root gatewayd
check "systemd-analyze verify $unit" quiet in_root systemd-analyze verify "$unit"
check "systemd-analyze security --offline: exposure 1.3 or better" in_root systemd-analyze security --offline=true --threshold=13 "$unit"
if in_root udevadm verify --help >/dev/null 2>&1; then
	check "udevadm verify $rule" in_root udevadm verify "$rule"
else
	note "this root's udevadm has no verify (systemd 253 and later)"
fi
check "man gatewayd and man gatewayd.toml show the pages" \
	all man_shows 8 gatewayd "gatewayd probe" -- man_shows 5 gatewayd.toml "commit_wait"
check "the copyright file (DEP-5) names the licence and the Go modules" \
	all grep -q '^License: Apache-2.0$' "$root/usr/share/doc/gatewayd/copyright" -- \
	grep -q '^Files: vendor/github.com/rs/zerolog/\*$' "$root/usr/share/doc/gatewayd/copyright"
check "bash completion of gatewayd's subcommands is installed" \
	grep -q 'complete -F _gatewayd gatewayd' "$root/usr/share/bash-completion/completions/gatewayd"
check "gatewayd check (the installed example), as root" in_root gatewayd check
check "gatewayd check, as the service's user gatewayd" in_root setpriv --reuid=gatewayd --regid=gatewayd --init-groups gatewayd check
check "another user cannot read the config" denied in_root setpriv --reuid=nobody --regid=nogroup --clear-groups gatewayd check

# ---- configure -----------------------------------------------------------------------------------
echo "--- configure ($(elapsed))"
# As docs/manual.md says: sudoedit the config, a credential, `systemctl edit gatewayd`, enable.
sed -i 's/^client_id = .*/client_id = "pi-edited-42"/' "$root$conf"
install -m 0600 /dev/null "$root/etc/gatewayd/mqtt-password"
echo 'not-a-real-password' >"$root/etc/gatewayd/mqtt-password"
mkdir -p "$root/etc/systemd/system/gatewayd.service.d"
printf '[Service]\nLoadCredential=mqtt-password:/etc/gatewayd/mqtt-password\n' >"$root/etc/systemd/system/gatewayd.service.d/credentials.conf"
check "systemctl enable gatewayd" in_root systemctl enable gatewayd.service
check "systemd-analyze verify gatewayd.service, with the drop-in" quiet in_root systemd-analyze verify gatewayd.service
check "gatewayd check on the edited config" in_root gatewayd check
check "the edited config is set up as an operator would" config_kept

# ---- upgrade -------------------------------------------------------------------------------------
echo "--- upgrade ($(elapsed))"
check "dpkg -i the same package over itself" in_root dpkg -i /tmp/debs/gatewayd_v1.deb
check "after the reinstall: the operator's config, drop-in, credential and enablement stay" config_kept
check "apt-get install a newer version ($v2)" in_root apt-get install -y ./tmp/debs/gatewayd_v2.deb
check "installed: $(status)" test "$(status)" = "install ok installed $v2"
check "after the upgrade: the operator's config, drop-in, credential and enablement stay" config_kept
check "nothing beside the config after an upgrade that did not change it" \
	test "$(cd "$root/etc/gatewayd" && printf '%s ' *)" = "gatewayd.toml mqtt-password "
# dpkg would ask; --force-confold answers as an operator keeping their file would.
check "apt-get install $v3, whose shipped config changed, keeping the operator's (--force-confold)" \
	in_root apt-get install -y -o Dpkg::Options::=--force-confold ./tmp/debs/gatewayd_v3.deb
check "after it: the operator's config, drop-in, credential and enablement stay" config_kept
check "the new shipped config is beside it as gatewayd.toml.dpkg-dist" \
	grep -q 'A line the newer package adds' "$root$conf.dpkg-dist"
check "gatewayd check on the kept config" in_root gatewayd check

# ---- remove --------------------------------------------------------------------------------------
echo "--- remove ($(elapsed))"
# What systemd makes for StateDirectory=gatewayd with DynamicUser=yes once the service ran (the
# outbox lives there); no systemd runs in this root, so it is made here as systemd would.
mkdir -p "$root/var/lib/private/gatewayd/outbox"
echo segment >"$root/var/lib/private/gatewayd/outbox/00000001.seg"
in_root chown -R gatewayd:gatewayd /var/lib/private/gatewayd
ln -s private/gatewayd "$root/var/lib/gatewayd"
check "apt-get remove gatewayd" in_root apt-get remove -y gatewayd
check "removed: $(status)" test "$(status)" = "deinstall ok config-files $v3"
check "the program, unit, rule, sysusers file and man pages are gone" absent /usr/bin/gatewayd "$unit" "$rule" "$sysusers" \
	/usr/share/man/man8/gatewayd.8.gz /usr/share/man/man5/gatewayd.toml.5.gz
check "the config, the user and the outbox stay for a reinstall" \
	all test -f "$root$conf" -- test -f "$root/var/lib/private/gatewayd/outbox/00000001.seg" -- in_root getent passwd gatewayd

# ---- purge ---------------------------------------------------------------------------------------
echo "--- purge ($(elapsed))"
check "dpkg --purge gatewayd" in_root dpkg --purge gatewayd
check "dpkg no longer knows gatewayd" test "$(status)" = unknown
snapshot >"$snap/paths.after"
check "every path in the root is as before the install" diff "$snap/paths.before" "$snap/paths.after"
check "/etc/passwd and /etc/shadow are as before" \
	all diff "$snap/passwd.before" "$root/etc/passwd" -- diff "$snap/shadow.before" "$root/etc/shadow"
check "/etc/group and /etc/gshadow differ only by the gpio group" \
	all diff "$snap/group.before" <(grep -v "^gpio:" "$root/etc/group") -- \
	diff "$snap/gshadow.before" <(grep -v "^gpio:" "$root/etc/gshadow")
check "no statoverride left" test -z "$(in_root dpkg-statoverride --list)"
rm -rf "$snap"

# ---- by hand -------------------------------------------------------------------------------------
# The manual's second way (docs/manual.md, "By hand"), on the same root: scripts/install.sh with the package's binary.
echo "--- by hand: scripts/install.sh ($(elapsed))"
src=$root/tmp/src
mkdir -p "$src/scripts"
cp -r "$repo/deploy" "$src/"
cp "$repo/scripts/install.sh" "$src/scripts/"
dpkg-deb --fsys-tarfile "$native_deb" | tar -xO ./usr/bin/gatewayd >"$src/gatewayd"
chmod 0755 "$src/gatewayd"
check "scripts/install.sh" in_root bash /tmp/src/scripts/install.sh /tmp/src/gatewayd
check "by hand: $conf is 0640 root:gatewayd" mode_is "$conf" "640 root gatewayd"
check "by hand: the user gatewayd" system_user gatewayd
check "by hand: systemd-analyze verify /etc/systemd/system/gatewayd.service" \
	quiet in_root systemd-analyze verify /etc/systemd/system/gatewayd.service
check "by hand: gatewayd check, as the service's user gatewayd" \
	in_root setpriv --reuid=gatewayd --regid=gatewayd --init-groups /usr/local/bin/gatewayd check
check "by hand: the service is not enabled" test "$(in_root systemctl is-enabled gatewayd.service 2>&1)" = disabled

echo "--- done ($(elapsed))"
[ -z "$keep" ] || note "the root is kept in $root"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
