#!/usr/bin/env bash
# gpio-sim-vm.sh — run Go tests against a real kernel GPIO chip: gpio-sim inside a throwaway qemu VM.
#
# The host kernel usually has no gpio-sim (Debian's bookworm and trixie kernels lack it), so this boots
# the current trixie-backports kernel (which has CONFIG_GPIO_SIM=m) under qemu with a busybox initramfs.
# The VM creates a gpio-sim device, exports where it is as GPIOSIM_* variables, runs the statically
# built test binaries with -test.v, and powers off. Nothing is installed on the host except the tools
# below; the kernel packages are downloaded and unpacked into a cache, never installed.
#
# Usage: scripts/gpio-sim-vm.sh [options] [pkg...]
#   pkg...                Go packages whose tests run in the VM, in this order (default ./gpio/)
#   --pkg PKG             the same as a positional pkg (repeatable)
#   --run REGEX           pass -test.run REGEX to every test binary
#   --test-arg ARG        pass ARG to every test binary (repeatable), e.g. --test-arg -test.count=2
#   --file HOST[:GUEST]   copy a host file or directory into the VM, at GUEST (absolute) or by default
#                         /extra/<basename> (repeatable); e.g. a daemon binary a test package runs
#   --cmd 'COMMAND'       run COMMAND with sh inside the VM after the test binaries (repeatable);
#                         its exit code counts like a test binary's
#   --env NAME=VALUE      export NAME=VALUE in the VM for the tests and commands (repeatable)
#   --disk IMAGE          attach the host file IMAGE (a raw image holding an ext4 file system, e.g. made
#                         with mkfs.ext4) as a virtio disk; the VM mounts it at /persist (ext4, default
#                         options: data=ordered) and exports GPIOSIM_PERSIST=/persist. Writes reach
#                         IMAGE, so it persists from one run to the next
#   --expect-reset        a test resets the VM on purpose (echo b >/proc/sysrq-trigger, after printing
#                         a line GPIOSIM-RESET-REQUESTED): that is the pass, and a VM that ends any other
#                         way (all tests done, a panic, a timeout) is a failure
#   --timeout SECONDS     kill the VM after this long (default 600)
#   --keep                keep the work directory (initramfs, console log) and print where it is
#   -h, --help            show this help
#
# Environment:
#   GPIOSIM_CACHE    kernel cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/gatewayd-gpiosim)
#   GPIOSIM_ACCEL    kvm or tcg (default: kvm when /dev/kvm is writable, falling back to tcg; else tcg)
#   GPIOSIM_OFFLINE  1: do not touch apt; use the newest kernel already in the cache
#
# What the VM gives tests (see scripts/gpiosim/init.sh): one gpio-sim device with two chips,
#   GPIOSIM_CHIP=gpiochipN (8 lines, label gatewayd-sim0), GPIOSIM_SYSFS=/sys/devices/platform/<dev>/<chip>,
#   GPIOSIM_LED_OFFSET=3 / GPIOSIM_LED_NAME=LED, GPIOSIM_LED_VALUE=<sysfs value file of line 3>,
#   GPIOSIM_LED_LOW_OFFSET=5 / GPIOSIM_LED_LOW_NAME=LED_LOW, GPIOSIM_NUM_LINES=8, GPIOSIM_LABEL,
#   GPIOSIM_CHIP2 / GPIOSIM_SYSFS2 / GPIOSIM_LABEL2 / GPIOSIM_NUM_LINES2=4 (second chip),
#   GPIOSIM_STATUS_OFFSET=2 / GPIOSIM_STATUS_NAME=STATUS (on the second chip), GPIOSIM_DEV_NAME,
#   GPIOSIM_CONFIGFS. The VM has no network card; loopback (127.0.0.1) is up and /dev/pts is mounted
#   for ptys. Tests run as root with TMPDIR=/tmp (a RAM disk).
#
# Exit status: 0 only when the VM reported "GPIOSIM-RESULT: 0" (every test binary and command exited 0),
# or with --expect-reset only when the VM reset itself after GPIOSIM-RESET-REQUESTED and nothing else;
# 1 tests failed; 2 usage; 3 the VM could not set up gpio-sim (or the disk); 4 no result (timeout, panic);
# 5 host setup; 6 --expect-reset, but the VM did not reset as asked (it finished, or reset unasked).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "gpio-sim-vm: error: $*" >&2; exit 5; }
note() { echo "gpio-sim-vm: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# ---- arguments -----------------------------------------------------------------------------------
pkgs=() test_args=() files=() cmds=() envs=()
timeout_s=600 keep=0 disk="" expect_reset=0
while [ $# -gt 0 ]; do
	case "$1" in
	--pkg) pkgs+=("${2:?--pkg needs a package}"); shift 2 ;;
	--run) test_args+=("-test.run" "${2:?--run needs a regex}"); shift 2 ;;
	--test-arg) test_args+=("${2:?--test-arg needs an argument}"); shift 2 ;;
	--file) files+=("${2:?--file needs HOST[:GUEST]}"); shift 2 ;;
	--cmd) cmds+=("${2:?--cmd needs a command}"); shift 2 ;;
	--env)
		[[ "${2:-}" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "gpio-sim-vm: --env needs NAME=VALUE, got '${2:-}'" >&2; exit 2; }
		envs+=("$2"); shift 2 ;;
	--timeout)
		[[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "gpio-sim-vm: --timeout needs whole seconds, got '${2:-}'" >&2; exit 2; }
		timeout_s=$2; shift 2 ;;
	--disk)
		[ -z "$disk" ] || { echo "gpio-sim-vm: --disk given twice (one disk only)" >&2; exit 2; }
		[ -f "${2:-}" ] || { echo "gpio-sim-vm: --disk needs an existing image file, got '${2:-}'" >&2; exit 2; }
		disk=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
	--expect-reset) expect_reset=1; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; pkgs+=("$@"); break ;;
	-*) echo "gpio-sim-vm: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) pkgs+=("$1"); shift ;;
	esac
done
[ ${#pkgs[@]} -gt 0 ] || [ ${#cmds[@]} -gt 0 ] || pkgs=(./gpio/)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cache=${GPIOSIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gatewayd-gpiosim}
mkdir -p "$cache"
t_start=$(now)
export PATH="$PATH:/usr/sbin:/sbin"

# Temporary directories, removed on exit (the work directory unless --keep).
prep_tmp="" work=""
cleanup() {
	[ -z "$prep_tmp" ] || rm -rf "$prep_tmp"
	if [ -n "$work" ]; then
		if [ "$keep" = 1 ]; then note "kept work directory $work"; else rm -rf "$work"; fi
	fi
}
trap cleanup EXIT

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else die "need root for: $*"; fi
}

# ---- host tools ----------------------------------------------------------------------------------
ensure_tools() {
	local missing=()
	command -v go >/dev/null || die "go is not on PATH (the test binaries are built with the repo's Go toolchain)"
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
	command -v cpio >/dev/null || missing+=(cpio)
	{ command -v depmod && command -v modprobe; } >/dev/null || missing+=(kmod)
	command -v xz >/dev/null || missing+=(xz-utils)
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "${GPIOSIM_OFFLINE:-0}" = 1 ] && die "missing tools (${missing[*]}) and GPIOSIM_OFFLINE=1"
	note "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! as_root apt-get install -y --no-install-recommends "${missing[@]}"; then
		note "apt-get install failed; running apt-get update and retrying"
		as_root apt-get update || note "apt-get update reported errors (continuing: some sources may be unreachable)"
		as_root apt-get install -y --no-install-recommends "${missing[@]}" || die "could not install ${missing[*]}"
	fi
}

# ---- the kernel: resolve, download, unpack, depmod -------------------------------------------------
apt_src=/etc/apt/sources.list.d/gatewayd-trixie-backports.sources
apt_pin=/etc/apt/preferences.d/gatewayd-trixie-backports
apt_only_ours=(-o "Dir::Etc::sourcelist=$apt_src" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0)

ensure_apt_source() {
	local src pin changed=0
	src='# Added by gatewayd scripts/gpio-sim-vm.sh: the newest Debian kernel, which has gpio-sim, for the
# GPIO test VM. Pinned to priority 50 in '"$apt_pin"' so it never installs or upgrades anything.
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
	pin='# Added by gatewayd scripts/gpio-sim-vm.sh: trixie-backports only for explicit downloads.
Package: *
Pin: release n=trixie-backports
Pin-Priority: 50'
	if [ "$(cat "$apt_pin" 2>/dev/null)" != "$pin" ]; then
		printf '%s\n' "$pin" | as_root tee "$apt_pin" >/dev/null; changed=1
	fi
	if [ "$(cat "$apt_src" 2>/dev/null)" != "$src" ]; then
		printf '%s\n' "$src" | as_root tee "$apt_src" >/dev/null; changed=1
	fi
	# Refresh our one source when it is new or its index is older than a day (only that source: the
	# machine may not reach the others).
	local idx
	idx=$(find /var/lib/apt/lists -maxdepth 1 -name '*_dists_trixie-backports_main_binary-amd64_Packages*' -mmin -1440 2>/dev/null | head -1)
	if [ "$changed" = 1 ] || [ -z "$idx" ]; then
		note "apt-get update (trixie-backports only)"
		as_root apt-get update -qq "${apt_only_ours[@]}" || return 1
	fi
}

# Prints "<KV> <version>", e.g. "7.3.4+deb13-amd64 7.3.4-1~bpo13+1", from what linux-image-amd64 in
# trixie-backports depends on.
resolve_kernel() {
	local show kv ver
	show=$(apt-cache show linux-image-amd64/trixie-backports 2>/dev/null | awk '/^$/ { exit } { print }') || return 1
	ver=$(printf '%s\n' "$show" | sed -n 's/^Version: //p')
	kv=$(printf '%s\n' "$show" | sed -n 's/^Depends: //p' | tr ',' '\n' | sed -n 's/^ *linux-image-\([0-9][^ ]*\).*/\1/p' | head -1)
	[ -n "$kv" ] && [ -n "$ver" ] || return 1
	echo "$kv $ver"
}

# The modules the VM loads: for gpio-sim (modules.order) and for --disk (modules-disk.order: virtio's
# PCI transport and block driver, ext4 and what it needs). A cached kernel unpacked for another list
# is unpacked again.
modules_base="configfs gpio-sim"
modules_disk="virtio_pci virtio_blk ext4"
modules_wanted="$modules_base | $modules_disk"

kernel_ready() { [ -f "$1/ready" ] && [ "$(cat "$1/modules.wanted" 2>/dev/null)" = "$modules_wanted" ]; }

newest_cached_kernel() {
	local d
	d=$(ls -1d "$cache"/kernel/*/ 2>/dev/null | while read -r k; do kernel_ready "$k" && basename "$k"; done | sort -V | tail -1)
	[ -n "$d" ] && echo "$d"
}

# Writes to $dir/modules/ the modules (decompressed) that NAMES... need, in load order, and appends
# their file names to ORDER; "builtin" ones need nothing.
unpack_modules() { # root kv dir order names...
	local root=$1 kv=$2 dir=$3 order=$4 deps line m base name
	shift 4
	deps=""
	for name in "$@"; do
		deps+=$(modprobe -d "$root/usr" -S "$kv" --show-depends "$name") ||
			die "modprobe --show-depends $name failed for $kv"
		deps+=$'\n'
	done
	while read -r line; do
		case "$line" in
		insmod\ *)
			read -r _ m _ <<<"$line"
			base=$(basename "$m"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
			case "$m" in
			*.xz) xz -dc "$m" >"$dir/modules/$base" ;;
			*.zst) zstd -qdc "$m" >"$dir/modules/$base" ;;
			*.gz) gzip -dc "$m" >"$dir/modules/$base" ;;
			*) cp "$m" "$dir/modules/$base" ;;
			esac
			echo "$base" >>"$dir/$order" ;;
		builtin\ * | "") ;;
		*) die "unexpected modprobe output: $line" ;;
		esac
	done <<<"$deps"
}

# Downloads and unpacks the kernel KV (version VER) into $cache/kernel/KV: vmlinuz, the modules
# (decompressed), modules.order and modules-disk.order (their load orders).
prepare_kernel() {
	local kv=$1 ver=$2 dir="$cache/kernel/$1" tmp root
	kernel_ready "$dir" && return 0
	prep_tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	tmp=$prep_tmp
	rm -rf "$dir"
	mkdir -p "$tmp/debs" "$tmp/root" "$dir/modules"
	note "downloading linux-{binary,modules,base}-$kv $ver"
	local sandbox=()
	[ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
	(cd "$tmp/debs" && apt-get download -q "${sandbox[@]}" \
		"linux-binary-$kv=$ver" "linux-modules-$kv=$ver" "linux-base-$kv=$ver") ||
		die "apt-get download of the $kv kernel packages failed (check: apt-cache search --names-only 'linux-.*-$kv')"
	for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
	root=$tmp/root
	# 7.x ships /usr/lib/modules/KV/{vmlinuz,config}; older kernels /boot/{vmlinuz,config}-KV.
	local vmlinuz="" config=""
	for f in "$root/usr/lib/modules/$kv/vmlinuz" "$root/boot/vmlinuz-$kv"; do [ -f "$f" ] && vmlinuz=$f && break; done
	for f in "$root/usr/lib/modules/$kv/config" "$root/boot/config-$kv"; do [ -f "$f" ] && config=$f && break; done
	[ -n "$vmlinuz" ] || die "no vmlinuz in linux-binary-$kv (looked in usr/lib/modules/$kv and boot)"
	if [ -n "$config" ] && ! grep -Eq '^CONFIG_GPIO_SIM=(m|y)' "$config"; then
		die "kernel $kv was built without CONFIG_GPIO_SIM ($(grep GPIO_SIM "$config" || echo 'not mentioned in its config'))"
	fi
	depmod -b "$root/usr" "$kv"
	: >"$dir/modules.order"
	: >"$dir/modules-disk.order"
	# "insmod /path/x.ko.xz" lines in load order. configfs is asked for too: the VM mounts it whether
	# or not gpio-sim depends on it.
	# shellcheck disable=SC2086 # the lists are words
	unpack_modules "$root" "$kv" "$dir" modules.order $modules_base
	# shellcheck disable=SC2086
	unpack_modules "$root" "$kv" "$dir" modules-disk.order $modules_disk
	# A module listed twice (configfs when gpio-sim depends on it; crc modules several disk modules
	# need) is loaded once, at its first place; the disk list leaves out what the base list loads.
	awk '!seen[$0]++' "$dir/modules.order" >"$dir/modules.order.new" && mv "$dir/modules.order.new" "$dir/modules.order"
	awk 'NR == FNR { base[$0] = 1; next } !base[$0] && !seen[$0]++' "$dir/modules.order" "$dir/modules-disk.order" \
		>"$dir/modules-disk.order.new" && mv "$dir/modules-disk.order.new" "$dir/modules-disk.order"
	echo "$modules_wanted" >"$dir/modules.wanted"
	cp "$vmlinuz" "$dir/vmlinuz"
	echo "$ver" >"$dir/version"
	touch "$dir/ready"
	rm -rf "$tmp"; prep_tmp=""
	# Keep only this kernel.
	for old in "$cache"/kernel/*/; do
		[ "$(basename "$old")" = "$kv" ] || rm -rf "$old"
	done
}

# ---- main ----------------------------------------------------------------------------------------
t=$(now)
ensure_tools
note "host tools ready ($(since "$t"))"

t=$(now)
kv=""
if [ "${GPIOSIM_OFFLINE:-0}" != 1 ] && ensure_apt_source && kv_ver=$(resolve_kernel); then
	read -r kv ver <<<"$kv_ver"
	prepare_kernel "$kv" "$ver"
else
	kv=$(newest_cached_kernel) || die "no kernel: could not resolve linux-image-amd64 in trixie-backports and none is cached in $cache/kernel"
	note "using the cached kernel $kv (apt not consulted or not reachable)"
fi
kdir=$cache/kernel/$kv
note "kernel $kv $(cat "$kdir/version") ready; modules: $(tr '\n' ' ' <"$kdir/modules.order")($(since "$t"))"
if [ -n "$disk" ]; then
	[ -f "$kdir/modules-disk.order" ] || die "the cached kernel $kv has no module list for --disk; delete $kdir"
	note "disk $disk ($(du -h --apparent-size "$disk" | cut -f1)) at /persist; modules: $(tr '\n' ' ' <"$kdir/modules-disk.order")"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gpiosim-vm.XXXXXX")
root=$work/root
mkdir -p "$root"/{bin,lib/modules,etc/gpiosim/cmds,tests,tmp,extra}

# Test binaries, static, for the VM's architecture.
t=$(now)
: >"$root/etc/gpiosim/tests"
for pkg in "${pkgs[@]}"; do
	info=$(GOOS=linux GOARCH=amd64 go list -f '{{.ImportPath}} {{.Dir}} {{.Module.Path}}' "$pkg") ||
		die "go list $pkg failed"
	read -r ipath pdir mpath <<<"$info"
	[ "$(wc -l <<<"$info")" -eq 1 ] || die "$pkg names several packages; name each one"
	name=${ipath#"$mpath"}; name=${name#/}; name=${name//\//_}; name=${name:-root}
	mkdir -p "$root/tests/$name"
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go test -c -o "$root/tests/$name/$name.test" "$pkg" ||
		die "go test -c $pkg failed"
	[ -x "$root/tests/$name/$name.test" ] || die "$pkg has no tests (go test -c wrote no binary)"
	[ -d "$pdir/testdata" ] && cp -a "$pdir/testdata" "$root/tests/$name/"
	echo "$name" >>"$root/etc/gpiosim/tests"
done
note "built ${#pkgs[@]} test binar$([ ${#pkgs[@]} -eq 1 ] && echo y || echo ies) ($(since "$t"))"

# initramfs
t=$(now)
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$repo/scripts/gpiosim/init.sh" "$root/init"
cp "$kdir"/modules/*.ko "$root/lib/modules/"
cp "$kdir/modules.order" "$root/etc/gpiosim/modules.order"
if [ -n "$disk" ]; then
	cp "$kdir/modules-disk.order" "$root/etc/gpiosim/modules-disk.order"
	: >"$root/etc/gpiosim/disk" # init.sh: mount /dev/vda at /persist
fi
printf '%s\n' ${test_args[@]+"${test_args[@]}"} | sed '/^$/d' >"$root/etc/gpiosim/test-args"
i=0
for c in ${cmds[@]+"${cmds[@]}"}; do
	i=$((i + 1))
	printf '%s\n' "$c" >"$root/etc/gpiosim/cmds/$(printf %02d $i).sh"
done
: >"$root/etc/gpiosim/env"
for e in ${envs[@]+"${envs[@]}"}; do
	v=${e#*=}
	printf "export %s='%s'\n" "${e%%=*}" "${v//\'/\'\\\'\'}" >>"$root/etc/gpiosim/env"
done
for f in ${files[@]+"${files[@]}"}; do
	host=${f%%:*} guest=/extra/$(basename "${f%%:*}")
	[[ "$f" == *:* ]] && guest=${f#*:}
	[[ "$guest" == /* ]] || die "--file $f: the guest path must be absolute"
	[ -e "$host" ] || die "--file $f: $host does not exist"
	mkdir -p "$root$(dirname "$guest")"
	cp -RL "$host" "$root$guest" # follow symlinks: the target must exist in the VM
done
initrd=$work/initramfs.cpio.gz
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$initrd"
note "initramfs $(du -h "$initrd" | cut -f1) ($(since "$t"))"

# The VM. run_vm ACCEL: kvm (with -cpu host) or tcg (software emulation, -cpu max). tcg runs both vCPUs
# on one host thread (thread=single): with one thread per vCPU (qemu 7.2's default), about 1 boot in
# 20 oopsed with "int3" in kernel code being live-patched by the other vCPU; 0 in 40 with thread=single,
# at no measurable cost in boot time.
#
# -no-reboot: a reset of the guest (a panic with panic=-1, a triple fault, sysrq b) ends qemu instead of
# booting again. --disk: a virtio disk with qemu's default cache (writeback: the guest sees a volatile
# write cache and its flushes reach the host file with fdatasync). What the guest had not written out
# of its own page cache when it reset is lost, as at a power cut; what reached qemu is in the host
# file (the host does not lose power), so the disk's own write cache is not simulated.
log=$work/console.log
drive=()
[ -n "$disk" ] && drive=(-drive "file=$disk,format=raw,if=virtio,cache=writeback")
run_vm() {
	local cpu=max accel=tcg,thread=single
	[ "$1" = kvm ] && cpu=host accel=kvm
	note "booting $kv (-accel $accel -cpu $cpu, timeout ${timeout_s}s)"
	: >"$log"
	# A guest that nested KVM cannot run ("KVM internal error", seen on Linux 7.3 hosts) leaves qemu
	# paused, not exited: end it at once rather than after the timeout, so the tcg retry starts.
	local watch=""
	if [ "$1" = kvm ]; then
		(while sleep 1; do
			if grep -q 'KVM internal error' "$log" 2>/dev/null; then
				pkill -f -- "-initrd $initrd" || true
				break
			fi
		done) &
		watch=$!
	fi
	set +e
	timeout -k 5 "$timeout_s" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 2 -m 512M -nic none \
		-nographic -no-reboot -kernel "$kdir/vmlinuz" -initrd "$initrd" ${drive[@]+"${drive[@]}"} \
		-append 'console=ttyS0 panic=-1 quiet' </dev/null 2>&1 |
		sed -u 's/\r$//; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$log" # CRs and the BIOS's escapes
	vm_status=${PIPESTATUS[0]}
	set -e
	if [ -n "$watch" ]; then
		kill "$watch" 2>/dev/null || true
		wait "$watch" 2>/dev/null || true
	fi
}
t=$(now)
case "${GPIOSIM_ACCEL:-}" in
kvm | tcg) run_vm "$GPIOSIM_ACCEL" ;;
"")
	# Nested KVM can exist yet fail to start a guest (e.g. "failed to set MSR 0x10a"): when qemu fails
	# before our /init printed anything, emulate instead, and remember that for this qemu.
	kvm_mark=$cache/kvm-unusable qemu_id=$(qemu-system-x86_64 --version | head -1)
	if [ -w /dev/kvm ] && [ "$(cat "$kvm_mark" 2>/dev/null)" = "$qemu_id" ]; then
		note "not trying KVM: it could not run the guest before with this qemu (delete $kvm_mark to retry)"
		run_vm tcg
	elif [ -w /dev/kvm ]; then
		run_vm kvm
		if [ "$vm_status" != 0 ] && ! grep -q '^gpiosim-vm: kernel' "$log"; then
			note "KVM could not run the guest (qemu status $vm_status); retrying with software emulation (tcg)"
			echo "$qemu_id" >"$kvm_mark"
			run_vm tcg
		fi
	else
		run_vm tcg
	fi ;;
*) die "GPIOSIM_ACCEL must be kvm or tcg, not '$GPIOSIM_ACCEL'" ;;
esac
t_vm=$(since "$t")

echo "------------------------------------------------------------------------------------------------"
grep -E '^GPIOSIM-TEST: ' "$log" || true
if grep -q '^GPIOSIM-SETUP-FAILED:' "$log"; then
	echo "gpio-sim-vm: ######## VM SETUP FAILED: $(sed -n 's/^GPIOSIM-SETUP-FAILED: //p' "$log" | head -1) ########" >&2
	echo "gpio-sim-vm: no test ran; this is not a pass." >&2
	exit 3
fi
result=$(sed -n 's/^GPIOSIM-RESULT: \([0-9][0-9]*\)$/\1/p' "$log" | tail -1)
if [ "$expect_reset" = 1 ]; then
	# The one pass: a test asked for the reset, and the VM ended right there. Not a pass: the tests
	# finished (a result line), a panic or an oops (panic=-1 resets too), qemu failing or timing out.
	why=""
	if ! grep -q '^GPIOSIM-RESET-REQUESTED' "$log"; then
		why="no test asked for a reset (no GPIOSIM-RESET-REQUESTED line)"
	elif [ -n "$result" ]; then
		why="the tests finished (GPIOSIM-RESULT: $result) instead: the reset did not happen"
	elif grep -Eq 'Kernel panic|BUG: |Oops: |general protection fault' "$log"; then
		why="the kernel crashed: $(grep -Em1 'Kernel panic|BUG: |Oops: |general protection fault' "$log")"
	elif [ "$vm_status" = 124 ]; then
		why="the VM timed out after ${timeout_s}s after the reset was asked for"
	elif [ "$vm_status" != 0 ]; then
		why="qemu exited with status $vm_status"
	fi
	if [ -n "$why" ]; then
		echo "gpio-sim-vm: ######## EXPECTED A RESET: $why ########" >&2
		exit 6
	fi
	note "VM $t_vm; total $(since "$t_start")"
	echo "gpio-sim-vm: RESET as expected (the VM reset itself after GPIOSIM-RESET-REQUESTED)"
	exit 0
fi
if [ -z "$result" ]; then
	why="the VM ended (qemu status $vm_status) without a GPIOSIM-RESULT line"
	[ "$vm_status" = 124 ] && why="the VM timed out after ${timeout_s}s"
	if grep -q 'Kernel panic' "$log"; then
		why="$why; the kernel panicked"
		grep -q '^gpiosim-vm: kernel' "$log" || why="$why before /init ran (an emulator or kernel problem, not a test result)"
	fi
	echo "gpio-sim-vm: ######## NO RESULT: $why ########" >&2
	exit 4
fi
note "VM $t_vm; total $(since "$t_start")"
if [ "$result" != 0 ]; then
	echo "gpio-sim-vm: FAIL: $(grep -E '^GPIOSIM-TEST: .* exit=[1-9]' "$log" | sed 's/^GPIOSIM-TEST: //' | tr '\n' ' ')" >&2
	exit 1
fi
echo "gpio-sim-vm: PASS"
