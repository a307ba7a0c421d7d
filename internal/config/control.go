package config

import (
	"path/filepath"
	"strings"
)

// DefaultControlSocket is [control] socket unless the file or systemd says otherwise; under
// systemd with RuntimeDirectory=gatewayd it is $RUNTIME_DIRECTORY/control.sock.
const DefaultControlSocket = "/run/gatewayd/control.sock"

// Control is the control socket `gatewayd status`, `gatewayd at` and `gatewayd doctor` talk to.
type Control struct {
	// Socket is the unix socket's path; "" turns the control socket off.
	Socket string
	// Group, when set, owns the socket (mode 0660), so that its members may use it.
	Group string
}

func (b *builder) control(t *table) {
	c := &b.cfg.Control
	def := DefaultControlSocket
	if rd := b.getenv("RUNTIME_DIRECTORY"); rd != "" {
		// systemd may give several directories, separated by ':'; the first is ours.
		def = filepath.Join(strings.Split(rd, ":")[0], "control.sock")
	}
	c.Socket = t.str("socket", def)
	if c.Socket != "" && !filepath.IsAbs(c.Socket) {
		t.fail("socket", "%q is not an absolute path; give one such as %s, or \"\" to turn the control socket off", c.Socket, DefaultControlSocket)
	}
	c.Group = t.str("group", "")
	if i, _, bad := findControl(c.Group); bad {
		t.fail("group", "holds a control character at offset %d", i)
	}
	t.done()
}
