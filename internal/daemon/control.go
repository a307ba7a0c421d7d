package daemon

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/control"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/supervisor"
)

// controlPart is the control socket as a part (see keep), or false when [control] socket is "".
// A socket that cannot be created is logged and left out: the gateway's job goes on without it.
func controlPart(cfg *config.Config, h controlHandler, log zerolog.Logger) (part, bool) {
	c := cfg.Control
	if c.Socket == "" {
		return part{}, false
	}
	return part{
		name: "control socket", field: "socket", addr: c.Socket, event: logging.EventControlUnavailable,
		hint:       "under systemd the unit's RuntimeDirectory=gatewayd provides /run/gatewayd; by hand, set [control] socket to a directory you may write, or \"\"",
		cannotOpen: "the control socket cannot be created: gatewayd status and gatewayd at will not reach this daemon",
		open: func() (func(context.Context) error, error) {
			srv, err := control.Listen(c.Socket, c.Group, cfg.MQTT.ClientIndex, h, log)
			if err != nil {
				return nil, err
			}
			log.Info().Str("socket", srv.Path()).Msg("control socket listening")
			return srv.Serve, nil
		},
	}, true
}

// controlHandler answers the control socket from the supervisor, the outbox and the local
// endpoint (store and ep are nil when not in use).
type controlHandler struct {
	sup     *supervisor.Supervisor
	store   *outbox.Store
	ep      *local.Endpoint
	version string
	device  string // config.Config.DeviceName
	rev     string // config.Config.Revision
}

// AT sends line to the module.
func (h controlHandler) AT(ctx context.Context, line string) (control.ATResult, error) {
	resp, err := h.sup.Command(ctx, line)
	if errors.Is(err, supervisor.ErrNoModule) {
		return control.ATResult{}, err
	}
	res := control.ATResult{Lines: []string{}, Result: "OK", OK: err == nil}
	for _, l := range resp.Lines {
		res.Lines = append(res.Lines, l.Text)
	}
	if err != nil {
		res.Result = err.Error()
		var cme *at.CMEError
		if errors.As(err, &cme) {
			res.Result = cme.Error()
		}
	}
	return res, nil
}

// Resolve asks the module's DNS for host.
func (h controlHandler) Resolve(ctx context.Context, host string) ([]string, error) {
	return h.sup.Resolve(ctx, host)
}

// Status builds the control socket's status from the parts' snapshots; it never waits.
func (h controlHandler) Status() control.Status {
	now := time.Now()
	st := h.sup.Status()
	out := control.Status{
		Version:   h.version,
		Pid:       os.Getpid(),
		Now:       now,
		Started:   st.Started,
		UptimeSec: seconds(now.Sub(st.Started)),
		Port:      st.Port,
		PortOpen:  st.PortOpen,
		Stage:     st.Stage,
		Doing:     st.Doing,
		Module:    control.Module{Model: st.Module.Model, Revision: st.Module.Revision, IMEI: st.Module.IMEI, ICCID: st.Module.ICCID},
		SIM:       st.SIM,
		Net: control.Network{Registered: st.Registered, Registration: st.Registration, Operator: st.Operator,
			PDPAddress: st.PDPAddress, PDPAddresses: st.PDPAddresses},
		MQTT: control.MQTT{Connected: st.Connected, Host: st.Host, Port: st.BrokerPort, ClientID: st.ClientID,
			LastError: st.LastError, Attempt: st.Attempt, Subscriptions: st.Subscriptions, Reconnects: st.Reconnects,
			Downlinks: st.Downlinks, DownlinkBytes: st.DownlinkBytes, Published: st.Published, Renewals: st.Renewals},
	}
	if st.Connected && !st.IdentityExpires.IsZero() {
		out.MQTT.PasswordExpires = timePtr(st.IdentityExpires)
	}
	for _, sub := range st.Subscribed {
		cs := control.Subscription{Topic: sub.Topic, QoS: sub.QoS}
		if sub.Granted >= 0 {
			g := sub.Granted
			cs.GrantedQoS = &g
		}
		out.MQTT.Subscribed = append(out.MQTT.Subscribed, cs)
	}
	out.Device, out.ConfigRevision = h.device, h.rev
	if st.DeviceName != "" { // a self-registering device: the name resolved at run time
		out.Device = st.DeviceName
	}
	if st.Signal.HasRSSI {
		out.Net.RSSIdBm, out.Net.SignalAt = &st.Signal.RSSI, timePtr(st.SignalAt)
	}
	if st.Connected {
		out.MQTT.ConnectedAt, out.MQTT.ConnectedSec = timePtr(st.ConnectedAt), seconds(now.Sub(st.ConnectedAt))
	}
	if !st.LastErrorAt.IsZero() {
		out.MQTT.LastErrorAt = timePtr(st.LastErrorAt)
	}
	if !st.NextAttempt.IsZero() && st.NextAttempt.After(now) && !st.Connected {
		in := seconds(st.NextAttempt.Sub(now))
		out.MQTT.NextAttemptSec = &in
	}
	if st.LEDKnown {
		out.LED = &st.LEDOn
	}
	if h.ep != nil {
		out.Outbox = &control.Outbox{}
		if h.store != nil {
			ob := h.store.Stats()
			out.Outbox = &control.Outbox{Available: true, Messages: ob.Messages, Bytes: ob.Bytes,
				Delivered: ob.Delivered, Refused: ob.Refused, Expired: ob.Expired, Dropped: ob.DroppedOldest, Rejected: ob.Rejected}
			if !ob.Oldest.IsZero() {
				out.Outbox.OldestSec = seconds(now.Sub(ob.Oldest))
			}
		}
		es := h.ep.Stats()
		out.Local = &control.Local{Clients: es.Clients, Forwarded: es.Forwarded, Delivered: es.Delivered}
	}
	return out
}

func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

func timePtr(t time.Time) *time.Time { return &t }
