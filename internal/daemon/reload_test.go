package daemon

import (
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/config"
)

// The log names changed keys as the configuration file does.
func TestFieldsChangedNamesConfigKeys(t *testing.T) {
	a := config.MQTT{Host: "a", ClientID: "x", KeepAlive: 1, PublishOnConnect: nil}
	b := a
	b.Host, b.ClientID, b.KeepAlive = "b", "y", 2
	b.PublishOnConnect = []config.Publication{{Topic: "t"}}
	b.TLS = &config.TLS{}
	got := strings.Join(fieldsChanged("mqtt", a, b), ",")
	if want := "mqtt.host,mqtt.client_id,mqtt.keepalive,mqtt.publish_on_connect,mqtt.tls"; got != want {
		t.Errorf("fieldsChanged = %s, want %s", got, want)
	}
	l := strings.Join(fieldsChanged("local", config.Local{MaxRetainedBytes: 1}, config.Local{MaxRetainedBytes: 2, AllowNonLoopback: true}), ",")
	if want := "local.allow_non_loopback,local.max_retained_bytes"; l != want {
		t.Errorf("fieldsChanged = %s, want %s", l, want)
	}
}
