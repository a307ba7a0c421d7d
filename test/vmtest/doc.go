// Package vmtest holds tests that need a machine set up for them, run inside the gpio-sim qemu VM of
// scripts/gpio-sim-vm.sh: the real gatewayd binary, the EC600 emulator and an embedded MQTT broker,
// with the LED on a real kernel GPIO chip (gpio-sim). Downlinks from a cloud-side MQTT client must
// turn into physical level changes of the LED line, read back from gpio-sim's sysfs.
//
// The power-cut tests (TestPowerCutPublish, TestPowerCutDeliver) run in two boots of the VM on one
// persistent disk and are driven by scripts/powercut-vm.sh: every local publish acknowledged before
// a hard reset must reach the cloud after the next boot. They skip unless GATEWAYD_POWERCUT says
// which boot this is; TestPowerCutCheck tests their check anywhere.
//
// The package has no non-test code. Outside the VM (GPIOSIM_CHIP unset) its tests skip. Inside, they
// need a statically built daemon passed into the VM, at /extra/gatewayd or where GATEWAYD_BIN says:
//
//	CGO_ENABLED=0 go build -o /tmp/gatewayd-vm/gatewayd ./cmd/gatewayd
//	bash scripts/gpio-sim-vm.sh --file /tmp/gatewayd-vm/gatewayd ./test/vmtest/
package vmtest
