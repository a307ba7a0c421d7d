package gpio_test

import (
	"fmt"

	"github.com/gatewayd/gatewayd/gpio"
	"github.com/rs/zerolog"
)

// With neither chip nor line configured, Open returns a virtual LED; on a board the config names the
// line instead, e.g. gpio.Config{Chip: "gpiochip0", Line: "24"} or gpio.Config{Line: "GPIO24"}.
func ExampleOpen() {
	led, err := gpio.Open(gpio.Config{}, zerolog.Nop())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer led.Close()

	on, err := led.Toggle() // a downlink arrived
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(led, on)
	// Output: virtual (no GPIO) true
}
