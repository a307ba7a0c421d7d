#!/usr/bin/env bash
# powercut-vm.sh — the outbox across a power cut: publish under load inside the qemu VM, hard-reset
# it, boot again on the same disk, and check that every message whose local PUBACK was sent is
# delivered, in order.
#
# Each run makes a fresh ext4 disk image and boots the VM of scripts/gpio-sim-vm.sh twice on it:
#   boot 1 (TestPowerCutPublish): gatewayd with its outbox on the disk and the broker link refused;
#     a local client publishes sequenced QoS 1 messages, 8 in flight, and the test prints
#     "POWERCUT-ACK <seq> <crc>" on the console after each PUBACK. After 300-699 of them (random, or
#     --reset-after), while publishing goes on, it resets the VM with sysrq b: no sync, no unmount.
#   boot 2 (TestPowerCutDeliver): ext4 replays its journal; gatewayd starts on the same outbox with
#     the link up and drains it to a cloud-side client; the test compares what arrived with the ack
#     lines of boot 1 (passed in as a file) and prints POWERCUT-RECV lines and a POWERCUT-SUMMARY.
# Then this script checks the two consoles again itself, independently of the Go test.
#
# An ack line the reset cuts off (still in the console's buffer) is not counted: losing one only
# lets that message go unchecked, it can never make a lost message pass. A mangled line fails its
# CRC and is not counted either.
#
# Usage: scripts/powercut-vm.sh [--runs N] [--reset-after N] [--keep]
#   --runs N          run the whole test N times (default 1), each on a fresh disk
#   --reset-after N   reset after N acknowledgements (>= 100) instead of a random 300-699
#   --keep            keep the work directory (disk images, console logs)
#
# Needs what scripts/gpio-sim-vm.sh needs, plus mkfs.ext4 and dumpe2fs (e2fsprogs; installed when
# missing). Exit status: 0 every run passed; 1 a run lost or reordered data, or a boot failed.
set -euo pipefail

die() { echo "powercut-vm: error: $*" >&2; exit 1; }
note() { echo "powercut-vm: $*" >&2; }
fail() {
	echo "powercut-vm: ################################################################" >&2
	echo "powercut-vm: ## FAIL (run $run): $*" >&2
	echo "powercut-vm: ################################################################" >&2
	exit 1
}

runs=1 reset_after="" keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--runs)
		[[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
		runs=$2; shift 2 ;;
	--reset-after)
		[[ "${2:-}" =~ ^[0-9]+$ ]] && [ "$2" -ge 100 ] || die "--reset-after needs a number >= 100"
		reset_after=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PATH="$PATH:/usr/sbin:/sbin"
run=0

if ! command -v mkfs.ext4 >/dev/null || ! command -v dumpe2fs >/dev/null; then
	note "installing e2fsprogs (mkfs.ext4)"
	sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends e2fsprogs >/dev/null ||
		die "could not install e2fsprogs"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/powercut-vm.XXXXXX")
cleanup() { if [ "$keep" = 1 ]; then note "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/gatewayd" ./cmd/gatewayd || die "go build ./cmd/gatewayd failed"

# vm LOG ARGS...: one boot; the console goes to LOG and, without the per-message lines, to stdout.
vm() {
	local log=$1
	shift
	set +e
	bash scripts/gpio-sim-vm.sh --file "$work/gatewayd" "$@" ./test/vmtest/ 2>&1 |
		tee "$log" | grep -Ev --line-buffered '^POWERCUT-(ACK|RECV) '
	local st=${PIPESTATUS[0]}
	set -e
	return "$st"
}

summaries=()
for run in $(seq 1 "$runs"); do
	dir=$work/run$run
	mkdir -p "$dir"
	img=$dir/disk.img
	# 256 MiB, sparse; 4 KiB blocks and everything initialised now, as a Pi image's root would be.
	truncate -s 256M "$img"
	mkfs.ext4 -q -F -T default -E lazy_itable_init=0,lazy_journal_init=0 "$img" || die "mkfs.ext4 failed"
	note "run $run/$runs: boot 1 (publish, then reset) on a fresh ext4 disk"
	env=(--env GATEWAYD_POWERCUT=publish)
	[ -z "$reset_after" ] || env+=(--env "POWERCUT_RESET_AFTER=$reset_after")
	vm "$dir/boot1.log" --disk "$img" --expect-reset "${env[@]}" --run '^TestPowerCutPublish$' --timeout 300 ||
		fail "boot 1 did not end in the reset it asked for (gpio-sim-vm.sh status $?; console: $dir/boot1.log, see above)"

	grep -E '^POWERCUT-ACK [0-9]+ [0-9a-f]{8}$' "$dir/boot1.log" >"$dir/acks" || true
	acks=$(wc -l <"$dir/acks")
	dirty=$(dumpe2fs -h "$img" 2>/dev/null | sed -n 's/^Filesystem features: *//p' | grep -o needs_recovery || true)
	after=$(awk '/^GPIOSIM-RESET-REQUESTED/ { m = 1; next } m && /^POWERCUT-ACK / { n++ } END { print n + 0 }' "$dir/boot1.log")
	note "run $run: boot 1 printed $acks ack lines ($after of them after the reset was asked for);" \
		"the file system after the reset: ${dirty:-clean}"
	# Publishing writes the journal all the time: a file system left clean was unmounted or synced,
	# and then nothing was cut.
	[ -n "$dirty" ] || fail "the file system on the disk is clean after the reset: no power cut was simulated"

	note "run $run/$runs: boot 2 (journal replay, drain, check)"
	vm "$dir/boot2.log" --disk "$img" --file "$dir/acks:/extra/powercut-acks" \
		--env GATEWAYD_POWERCUT=deliver --env "POWERCUT_ACK_LINES=$acks" --run '^TestPowerCutDeliver$' --timeout 300 ||
		fail "boot 2's check failed (gpio-sim-vm.sh status $?; console: $dir/boot2.log, see above)"
	grep -q '^gpiosim-vm: .*EXT4-fs (vda): recovery complete' "$dir/boot2.log" && replay="journal replayed" || replay="no journal replay"

	# The host's own check of the two consoles: every acknowledged seq received; first arrivals in
	# increasing order.
	grep -E '^POWERCUT-RECV [0-9]+$' "$dir/boot2.log" | cut -d' ' -f2 >"$dir/received" || true
	check=$(awk '
		FILENAME == ARGV[1] { acked[$2] = 1; na++; next }
		{ n++; if ($1 in seen) { dup++; next } seen[$1] = 1; distinct++
		  if ($1 + 0 < hi) { bad++; if (!ex) ex = "seq " $1 " after " hi } if ($1 + 0 > hi) hi = $1 + 0 }
		END {
			for (s in acked) if (!(s in seen)) { miss++; if (!mex) mex = s }
			for (s in seen) if (!(s in acked)) extra++
			printf "acked=%d received=%d distinct=%d duplicates=%d unacked_delivered=%d missing=%d out_of_order=%d", \
				na, n, distinct, dup, extra, miss, bad
			if (miss) printf " (first missing: seq %s)", mex
			if (bad) printf " (%s)", ex
			print ""
			exit (miss || bad || na == 0) ? 1 : 0
		}' "$dir/acks" "$dir/received") || fail "the host check of the consoles: $check"
	summary=$(sed -n 's/^POWERCUT-SUMMARY //p' "$dir/boot2.log" | tail -1)
	[ -n "$summary" ] || fail "boot 2 printed no POWERCUT-SUMMARY"
	note "run $run: PASS ($replay). VM: $summary"
	note "run $run: host: $check"
	summaries+=("run $run: $check; $replay")
done
echo "powercut-vm: PASS, $runs run(s):"
printf 'powercut-vm:   %s\n' "${summaries[@]}"
