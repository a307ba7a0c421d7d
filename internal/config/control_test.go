package config

import (
	"strings"
	"testing"
)

func TestControlSocket(t *testing.T) {
	if c := mustParse(t, noEnv, minimal); c.Control.Socket != DefaultControlSocket || c.Control.Group != "" {
		t.Errorf("default control %+v", c.Control)
	}
	systemd := Options{Getenv: func(k string) string {
		if k == "RUNTIME_DIRECTORY" {
			return "/run/gatewayd:/run/other"
		}
		return ""
	}}
	if c := mustParse(t, systemd, minimal); c.Control.Socket != "/run/gatewayd/control.sock" {
		t.Errorf("under systemd: %q", c.Control.Socket)
	}
	if c := mustParse(t, noEnv, minimal+"\n[control]\nsocket = \"\"\n"); c.Control.Socket != "" {
		t.Errorf("turned off: %q", c.Control.Socket)
	}
	c := mustParse(t, noEnv, minimal+"\n[control]\nsocket = \"/tmp/g.sock\"\ngroup = \"gatewayd\"\n")
	if c.Control.Socket != "/tmp/g.sock" || c.Control.Group != "gatewayd" {
		t.Errorf("set: %+v", c.Control)
	}
	if _, err := noEnv.Parse([]byte(minimal+"\n[control]\nsockett = \"/x\"\n"), name); err == nil || !strings.Contains(err.Error(), "sockett") {
		t.Errorf("an unknown key in [control]: %v", err)
	}
	_, err := noEnv.Parse([]byte(minimal+"\n[control]\nsocket = \"control.sock\"\n"), name)
	if err == nil || !strings.Contains(err.Error(), "control.socket") || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("a relative socket path: %v", err)
	}
}
