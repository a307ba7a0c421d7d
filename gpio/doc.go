// Package gpio drives the gateway's status LED: a GPIO output line requested through the Linux GPIO
// character device (uAPI v2, via go-gpiocdev), or, when no LED is configured, a virtual LED that only
// keeps its state in memory.
//
// Open takes a Config naming the chip (name, path, number or label) and the line (offset or name) and
// returns an LED. The LED value owns its state and is safe for concurrent use; Close releases the line.
// Failures say what and where: a chip that does not exist, a line name no chip has, a line another
// process holds (and who holds it), or a device node the daemon may not open (and which group or
// udev rule fixes that). Each kind can be tested with errors.Is (ErrChipNotFound, ErrLineNotFound,
// ErrLineBusy, ErrPermission, ErrInvalidConfig).
//
// Logging: an LED never logs its own changes at info level. The daemon logs the "led" event, once
// per change, where it decides to change the LED. This package logs only at debug level: which line
// it requested, and, for the virtual LED, each change together with the fact that it is virtual (so a
// debug log never leaves anyone wondering why a board's LED did not light).
//
// The tests that need a real GPIO chip use the kernel's gpio-sim driver; when none is present they
// skip. scripts/gpio-sim-vm.sh runs them inside a qemu VM whose kernel has gpio-sim.
package gpio
