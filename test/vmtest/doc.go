// Package vmtest holds tests that need a machine set up for them, run inside the gpio-sim qemu VM
// of scripts/gpio-sim-vm.sh: the real gatewayd binary driving an LED and a reset line on a real
// kernel GPIO chip, and the power-cut tests driven by scripts/powercut-vm.sh. Outside the VM they
// skip. docs/testing.md says how to run them. The package has no non-test code.
package vmtest
