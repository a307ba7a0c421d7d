package config_test

import (
	"fmt"

	"github.com/gatewayd/gatewayd/internal/config"
)

func ExampleParse() {
	_, err := config.Parse([]byte(`
[mqtt]
host = "broker.example.com"
client_id = "pi-led-01"
pasword = "x"
keepalive = "61x"

[[mqtt.subscribe]]
topic = "devices/#/led"
`), "gatewayd.toml")
	fmt.Println(err)
	// Output:
	// gatewayd.toml:5: unknown key mqtt.pasword (did you mean mqtt.password?)
	// gatewayd.toml:6: mqtt.keepalive: "61x" is not a duration (write e.g. "60s")
	// gatewayd.toml:9: mqtt.subscribe[0].topic: "devices/#/led": '#' must be a whole level and the last one (as in a/b/#)
}

func ExampleSecret() {
	pw := config.NewSecret("hunter2")
	fmt.Printf("%v %+v %#v %s %q\n", pw, pw, pw, pw, pw)
	fmt.Println(pw.Reveal())
	// Output:
	// *** *** *** *** ***
	// hunter2
}
