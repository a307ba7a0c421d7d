#!/bin/sh
# /init of the gpio-sim test VM built by scripts/gpio-sim-vm.sh. It runs as PID 1 under busybox:
# mounts the kernel filesystems, loads configfs and gpio-sim, creates a simulated GPIO device with two
# banks (two gpiochips) and named lines, exports where they are as GPIOSIM_* environment variables,
# runs every test binary in /tests and every command in /etc/gpiosim/cmds, prints one result marker
# and powers off. With --disk (/etc/gpiosim/disk exists) it also loads virtio-blk and ext4 and mounts
# /dev/vda at /persist (GPIOSIM_PERSIST). The host decides pass/fail from the markers alone:
#   GPIOSIM-SETUP-FAILED: <why>     the VM could not provide the chip; no test ran
#   GPIOSIM-TEST: <name> exit=<n>   one test binary or command finished
#   GPIOSIM-RESULT: <n>             all done; 0 only when every test binary and command exited 0

/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=/root TMPDIR=/tmp
umask 022

halt() {
	sync
	if grep -q ' /persist ' /proc/mounts; then
		umount /persist || echo "gpiosim-vm: umount /persist failed"
	fi
	poweroff -f
	# poweroff -f does not return; if it ever does, never let PID 1 exit (that would panic the kernel
	# with a misleading message).
	while :; do sleep 60; done
}

setup_failed() {
	echo "GPIOSIM-SETUP-FAILED: $*"
	halt
}

mount -t proc proc /proc || setup_failed "mount proc"
mount -t sysfs sysfs /sys || setup_failed "mount sysfs"
mount -t devtmpfs devtmpfs /dev || setup_failed "mount devtmpfs"
# Pseudo-terminals (the EC600 emulator's AT port is a pty) need devpts at /dev/pts.
mkdir -p /dev/pts /root
mount -t devpts devpts /dev/pts || setup_failed "mount devpts"
# The VM has no network card (-nic none), but the loopback interface must be up for tests that talk
# to 127.0.0.1 (an embedded MQTT broker).
ip link set lo up || setup_failed "ip link set lo up"

echo "gpiosim-vm: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"

# Modules, in the order modprobe --show-depends gave on the host.
while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/lib/modules/$mod" || setup_failed "insmod $mod"
done </etc/gpiosim/modules.order

if ! grep -q configfs /proc/mounts; then
	mount -t configfs configfs /sys/kernel/config || setup_failed "mount configfs at /sys/kernel/config"
fi
[ -d /sys/kernel/config/gpio-sim ] || setup_failed "/sys/kernel/config/gpio-sim missing: gpio-sim not loaded"

# One gpio-sim device, two banks:
#   bank0: 8 lines, label gatewayd-sim0, line 3 named LED, line 5 named LED_LOW (for active-low wiring)
#   bank1: 4 lines, label gatewayd-sim1, line 2 named STATUS (found only by searching every chip)
G=/sys/kernel/config/gpio-sim/gatewayd
mkdir "$G" || setup_failed "mkdir $G"
mkbank() { # bank num_lines label
	mkdir "$G/$1" || setup_failed "mkdir $G/$1"
	echo "$2" >"$G/$1/num_lines" || setup_failed "$1 num_lines"
	echo "$3" >"$G/$1/label" || setup_failed "$1 label"
}
nameline() { # bank offset name
	mkdir "$G/$1/line$2" || setup_failed "mkdir $G/$1/line$2"
	echo "$3" >"$G/$1/line$2/name" || setup_failed "$1 line$2 name"
}
mkbank bank0 8 gatewayd-sim0
nameline bank0 3 LED
nameline bank0 5 LED_LOW
mkbank bank1 4 gatewayd-sim1
nameline bank1 2 STATUS
echo 1 >"$G/live" || setup_failed "echo 1 > $G/live"

dev_name=$(cat "$G/dev_name") || setup_failed "read $G/dev_name"
chip0=$(cat "$G/bank0/chip_name") || setup_failed "read bank0/chip_name"
chip1=$(cat "$G/bank1/chip_name") || setup_failed "read bank1/chip_name"
for c in "$chip0" "$chip1"; do
	[ -n "$c" ] || setup_failed "empty chip_name"
	[ -c "/dev/$c" ] || setup_failed "/dev/$c is not a character device after going live"
	[ -d "/sys/devices/platform/$dev_name/$c" ] || setup_failed "/sys/devices/platform/$dev_name/$c missing"
done

export GPIOSIM_CONFIGFS="$G"
export GPIOSIM_DEV_NAME="$dev_name"
export GPIOSIM_CHIP="$chip0"
export GPIOSIM_SYSFS="/sys/devices/platform/$dev_name/$chip0"
export GPIOSIM_LABEL=gatewayd-sim0
export GPIOSIM_NUM_LINES=8
export GPIOSIM_LED_OFFSET=3
export GPIOSIM_LED_NAME=LED
export GPIOSIM_LED_VALUE="$GPIOSIM_SYSFS/sim_gpio3/value"
export GPIOSIM_LED_LOW_OFFSET=5
export GPIOSIM_LED_LOW_NAME=LED_LOW
export GPIOSIM_CHIP2="$chip1"
export GPIOSIM_SYSFS2="/sys/devices/platform/$dev_name/$chip1"
export GPIOSIM_LABEL2=gatewayd-sim1
export GPIOSIM_NUM_LINES2=4
export GPIOSIM_STATUS_OFFSET=2
export GPIOSIM_STATUS_NAME=STATUS

# The persistent disk (--disk): ext4 on the whole of /dev/vda, mounted with the defaults (data=ordered,
# a journal commit every 5 s), as a Pi's SD card root is. A file system left dirty by a reset is
# recovered here, by ext4's journal replay on mount; dmesg says so ("recovery complete").
if [ -f /etc/gpiosim/disk ]; then
	while read -r mod; do
		[ -n "$mod" ] || continue
		insmod "/lib/modules/$mod" || setup_failed "insmod $mod (for --disk)"
	done </etc/gpiosim/modules-disk.order
	n=0
	while [ ! -b /dev/vda ]; do
		n=$((n + 1))
		[ "$n" -le 100 ] || setup_failed "no /dev/vda 10 s after loading virtio_blk (--disk)"
		sleep 0.1
	done
	mkdir -p /persist
	mount -t ext4 /dev/vda /persist || setup_failed "mount -t ext4 /dev/vda /persist: is the --disk image an ext4 file system?"
	dmesg | grep 'EXT4-fs (vda)' | sed 's/^/gpiosim-vm: /'
	echo "gpiosim-vm: /persist: $(grep ' /persist ' /proc/mounts)"
	export GPIOSIM_PERSIST=/persist
fi
# Extra variables the host asked for (--env).
[ -f /etc/gpiosim/env ] && . /etc/gpiosim/env

echo "gpiosim-vm: $GPIOSIM_CHIP ($GPIOSIM_LABEL, 8 lines, LED=3, LED_LOW=5) and $GPIOSIM_CHIP2 ($GPIOSIM_LABEL2, 4 lines, STATUS=2) on $dev_name"
env | grep '^GPIOSIM_' | sort | sed 's/^/gpiosim-vm: env /'
echo "GPIOSIM-SETUP-OK"

result=0
# Test binaries: /tests/<name>/<name>.test in the order of /etc/gpiosim/tests, each run from its own
# directory (where its testdata/ is), with the arguments in /etc/gpiosim/test-args (one per line).
set --
if [ -f /etc/gpiosim/test-args ]; then
	while IFS= read -r a; do set -- "$@" "$a"; done </etc/gpiosim/test-args
fi
while read -r name <&3; do
	[ -n "$name" ] || continue
	dir=/tests/$name
	echo "=== gpiosim-vm: running $name.test -test.v $*"
	(cd "$dir" && "./$name.test" -test.v "$@")
	rc=$?
	echo # the output may not end with a newline; the markers start a line
	echo "GPIOSIM-TEST: $name exit=$rc"
	[ "$rc" -eq 0 ] || result=1
done 3</etc/gpiosim/tests
# Commands (--cmd), each a shell script, run from / in order.
for cmd in /etc/gpiosim/cmds/*.sh; do
	[ -f "$cmd" ] || continue
	name=cmd-$(basename "$cmd" .sh)
	echo "=== gpiosim-vm: running $name: $(cat "$cmd")"
	(cd / && sh "$cmd")
	rc=$?
	echo # the output may not end with a newline; the markers start a line
	echo "GPIOSIM-TEST: $name exit=$rc"
	[ "$rc" -eq 0 ] || result=1
done

echo "GPIOSIM-RESULT: $result"
halt
