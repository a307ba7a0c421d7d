package metrics

import (
	"bytes"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/supervisor"
	"github.com/gatewayd/gatewayd/internal/thing"
)

// Sources are the snapshots a scrape reads; a nil one leaves its metrics out (Outbox, Drain and
// Local: no [local], or an outbox that could not be opened).
type Sources struct {
	Status func() supervisor.Status // supervisor.(*Supervisor).Status
	AT     func() at.Stats          // supervisor.(*Supervisor).ATStats
	Outbox func() outbox.Stats
	Drain  func() drain.Stats
	Local  func() local.Stats
	// LocalOn says [local] is configured; with Outbox nil it means the outbox is unavailable.
	LocalOn bool
	// Uplinks counts and times the publishes the broker acknowledged; nil leaves them out.
	Uplinks *Uplinks
	// Version is the daemon's version, for gatewayd_build_info and gatewayd_info.
	Version string
	// Device and ConfigRevision are the gateway's name and its settings' revision, for
	// gatewayd_info.
	Device, ConfigRevision string
	// Thing is the thing model's counters; nil without [thing].
	Thing func() thing.Stats
}

// stages are the values of Status.Stage, in bring-up order: gatewayd_session_stage has one
// series for each.
var stages = []string{"port", "module", "sim", "register", "pdp", "mqtt", "connected"}

// lossReasons are the keys of Status.Reconnects: gatewayd_reconnects_total has a series for each
// from the start, so that a rate over the first loss is right.
var lossReasons = []string{
	supervisor.LossLinkClosed, supervisor.LossPing, supervisor.LossPDP, supervisor.LossReboot,
	supervisor.LossSIM, supervisor.LossPort, supervisor.LossUnresponsive, supervisor.LossOther,
}

// Uplinks counts the messages the broker acknowledged (and their payload bytes) and keeps the
// histogram of how long each publish took. Its methods are safe for concurrent use, and a nil
// *Uplinks does nothing.
type Uplinks struct {
	set             *vm.Set // holds latency alone, and writes it
	latency         *vm.PrometheusHistogram
	messages, bytes atomic.Uint64
}

// publishDuration describes gatewayd_publish_duration_seconds, whose series Uplinks.set writes.
var publishDuration = newDesc("gatewayd_publish_duration_seconds",
	"How long a publish from the outbox took, from handing it to the module to its completion (the broker's PUBACK at QoS 1).", histogram)

// publishBuckets are the bounds, in seconds, of gatewayd_publish_duration_seconds: a publish
// through an LTE module takes from tens of milliseconds to the module's packet timeout times its
// retries.
var publishBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// NewUplinks returns an empty Uplinks.
func NewUplinks() *Uplinks {
	set := vm.NewSet()
	return &Uplinks{set: set, latency: set.NewPrometheusHistogramExt(publishDuration.name, publishBuckets)}
}

// Published records a message of n payload bytes that the broker acknowledged, took after it
// was handed to the module.
func (u *Uplinks) Published(n int, took time.Duration) {
	if u == nil {
		return
	}
	u.messages.Add(1)
	u.bytes.Add(uint64(max(n, 0)))
	u.latency.Update(took.Seconds())
}

// appendText appends the histogram of u to t (the collector writes the counters of u).
func (u *Uplinks) appendText(t *text) {
	var raw bytes.Buffer
	u.set.WritePrometheus(&raw)
	annotate(t, raw.Bytes(), func([]byte) *desc { return &publishDuration })
}

// collector writes the daemon's own metrics (gatewayd_*) from Sources, read at every scrape.
type collector struct {
	src Sources

	info, buildInfo, moduleInfo, portOpen, stage, registered, signal, signalAt desc
	connected, sessionStart, failures, reconnects, downlinks, downlinkBytes    desc
	connectPublishes, uplinks, uplinkBytes                                     desc
	atCommand, atTimeouts, atResyncs, urcs, heldBack, heldFor, droppedLines    desc
	outboxAvailable, outboxMessages, outboxBytes, outboxMaxBytes, outboxOld    desc
	outboxStored, outboxDelivered, outboxDropped, outboxResends, outboxFails   desc
	outboxInFlight, localClients, localForwarded, localRefused, localNotFwd    desc
	localDelivered, localDeliverDropped, localDisconnects, localConnRefused    desc
	thingRequests, thingSent, thingDropped, thingRetries, thingReportReplies   desc
	thingQueued                                                                desc
}

// newCollector returns a collector over src.
func newCollector(src Sources) *collector {
	g, c := gauge, counter
	return &collector{
		thingRequests:      newDesc("gatewayd_thing_requests_total", "Property sets and service calls from the platform's console, by kind (set, call) and result (applied, refused: answered with the platform's error code).", c, "kind", "result"),
		thingSent:          newDesc("gatewayd_thing_messages_total", "Replies and property reports the publish path took (the outbox stored them, or the broker acknowledged them), by kind (reply, report).", c, "kind"),
		thingDropped:       newDesc("gatewayd_thing_dropped_total", "Replies and reports never sent: the bounded queue was full or the outbox refused them (each logged).", c),
		thingRetries:       newDesc("gatewayd_thing_publish_retries_total", "Publishes of replies and reports tried again (offline, or a failed publish).", c),
		thingReportReplies: newDesc("gatewayd_thing_report_replies_total", "The platform's answers to property reports, by result (ok, error: an error code, logged in words).", c, "result"),
		thingQueued:        newDesc("gatewayd_thing_queued", "Replies and reports waiting for the publish path now.", g),
		src:                src,
		info: newDesc("gatewayd_info", "Always 1; the labels tell gateways apart and group them on a fleet dashboard: the device name, "+
			"the module's IMEI, the SIM's ICCID, the network operator, the module's model and firmware revision (empty until known), "+
			"the revision of the merged configuration and the daemon's version.",
			g, "device", "imei", "iccid", "operator", "model", "firmware", "config_revision", "version"),
		buildInfo: newDesc("gatewayd_build_info", "Always 1; the version label is the running gatewayd's.", g, "version"),
		moduleInfo: newDesc("gatewayd_module_info", "Always 1, for the module last identified: its model, firmware revision, IMEI and SIM ICCID as labels.",
			g, "model", "revision", "imei", "iccid"),
		portOpen:      newDesc("gatewayd_port_open", "1 while an AT port to the module is open.", g),
		stage:         newDesc("gatewayd_session_stage", "1 for the bring-up stage the session is at (port, module, sim, register, pdp, mqtt, connected), 0 for the others.", g, "stage"),
		registered:    newDesc("gatewayd_network_registered", "1 while the module is registered on the network (home or roaming), as last seen.", g),
		signal:        newDesc("gatewayd_signal_rssi_dbm", "The received signal strength AT+CSQ last gave, in dBm; absent while unknown.", g),
		signalAt:      newDesc("gatewayd_signal_read_timestamp_seconds", "When the signal was last read (Unix time); it is polled about once a minute.", g),
		connected:     newDesc("gatewayd_mqtt_connected", "1 while the MQTT session to the broker is up.", g),
		sessionStart:  newDesc("gatewayd_mqtt_session_start_timestamp_seconds", "When the current MQTT session came up (Unix time); absent while not connected.", g),
		failures:      newDesc("gatewayd_consecutive_failures", "Failed attempts in a row (port, module, network or broker) since the last success; 0 when all is well.", g),
		reconnects:    newDesc("gatewayd_reconnects_total", "Sessions lost, by reason.", c, "reason"),
		downlinks:     newDesc("gatewayd_downlink_messages_total", "Messages received from the broker.", c),
		downlinkBytes: newDesc("gatewayd_downlink_bytes_total", "Payload bytes of the messages received from the broker.", c),
		connectPublishes: newDesc("gatewayd_connect_publishes_total",
			"The daemon's own publishes on connect (mqtt.publish_on_connect) that completed.", c),
		uplinks:     newDesc("gatewayd_uplink_messages_total", "Messages from the outbox (local clients' publishes on forwarded topics) that the broker acknowledged.", c),
		uplinkBytes: newDesc("gatewayd_uplink_bytes_total", "Payload bytes of those messages.", c),
		atCommand: newDesc("gatewayd_at_command_duration_seconds",
			"AT commands sent to the module (count) and the time they took, from being sent to their result or timeout (sum).", summary),
		atTimeouts:   newDesc("gatewayd_at_timeouts_total", "AT commands that got no final result in time.", c),
		atResyncs:    newDesc("gatewayd_at_resyncs_total", "Resynchronisations of the AT port after a timeout.", c),
		urcs:         newDesc("gatewayd_urcs_total", "Unsolicited result codes read from the module.", c),
		heldBack:     newDesc("gatewayd_urc_held_back_total", "Times the AT reader waited for room because downlinks came faster than they were handled (nothing is dropped).", c),
		heldFor:      newDesc("gatewayd_urc_held_back_seconds_total", "Time the AT reader spent waiting so.", c),
		droppedLines: newDesc("gatewayd_at_dropped_lines_total", "Lines from the module the AT engine dropped, by reason.", c, "reason"),

		outboxAvailable: newDesc("gatewayd_outbox_available", "1 while the outbox is open; 0 when its directory could not be used (forwarded QoS 1 publishes are refused).", g),
		outboxMessages:  newDesc("gatewayd_outbox_messages", "Messages waiting in the outbox for the cloud.", g),
		outboxBytes:     newDesc("gatewayd_outbox_bytes", "Bytes of the messages waiting, as counted against outbox.max_bytes.", g),
		outboxMaxBytes:  newDesc("gatewayd_outbox_max_bytes", "outbox.max_bytes: when the outbox holds this much it refuses or drops (outbox.overflow).", g),
		outboxOld:       newDesc("gatewayd_outbox_oldest_message_timestamp_seconds", "When the oldest waiting message was stored (Unix time); absent when the outbox is empty.", g),
		outboxStored:    newDesc("gatewayd_outbox_stored_total", "Messages the outbox accepted.", c),
		outboxDelivered: newDesc("gatewayd_outbox_delivered_total", "Messages removed from the outbox because the broker acknowledged them.", c),
		outboxDropped: newDesc("gatewayd_outbox_dropped_total",
			"Messages that never reached the cloud, by reason: refused (outbox full, too large or a disk error), expired (outbox.max_age), dropped_oldest (overflow), rejected (the module can never send it), damaged (a damaged record).", c, "reason"),
		outboxResends:       newDesc("gatewayd_outbox_resends_total", "Messages sent again after a send whose outcome was unknown: the broker may have them twice.", c),
		outboxFails:         newDesc("gatewayd_outbox_publish_failures_total", "Publishes from the outbox that failed (the message stays stored and is sent again).", c),
		outboxInFlight:      newDesc("gatewayd_outbox_in_flight", "Publishes from the outbox in flight now.", g),
		localClients:        newDesc("gatewayd_local_clients", "MQTT clients connected to the local endpoint.", g),
		localForwarded:      newDesc("gatewayd_local_forwarded_total", "Local publishes on forwarded topics stored in the outbox.", c),
		localRefused:        newDesc("gatewayd_local_refused_total", "Local publishes on forwarded topics the outbox refused.", c),
		localNotFwd:         newDesc("gatewayd_local_not_forwarded_total", "Local publishes on forwarded topics the module could never send (too long a topic).", c),
		localDelivered:      newDesc("gatewayd_local_delivered_total", "Downlinks published to local clients.", c),
		localDeliverDropped: newDesc("gatewayd_local_delivery_dropped_total", "Downlinks the local endpoint had no room for.", c),
		localDisconnects: newDesc("gatewayd_local_disconnects_total",
			"Local clients disconnected by gatewayd, by reason: slow (stopped reading), too_large (a packet over the limit), connect_timeout (no CONNECT in time), outbox_refused (an MQTT 3.1.1 publish the outbox refused).", c, "reason"),
		localConnRefused: newDesc("gatewayd_local_connections_refused_total", "Local connections refused, by reason: limit (local.max_clients), auth (a wrong user name or password).", c, "reason"),
	}
}

// appendText takes one snapshot of each source and appends what it holds to t.
func (c *collector) appendText(t *text) {
	emit := func(d desc, v float64, labels ...string) { t.series(&d, "", v, labels...) }
	emit(c.buildInfo, 1, c.src.Version)
	if c.src.Status != nil {
		c.collectStatus(emit)
	} else {
		emit(c.info, 1, c.src.Device, "", "", "", "", "", c.src.ConfigRevision, c.src.Version)
	}
	if c.src.AT != nil {
		c.collectAT(t, emit)
	}
	if u := c.src.Uplinks; u != nil {
		emit(c.uplinks, float64(u.messages.Load()))
		emit(c.uplinkBytes, float64(u.bytes.Load()))
	}
	c.collectOutbox(emit)
	if c.src.Local != nil {
		c.collectLocal(emit, c.src.Local())
	}
	if c.src.Thing != nil {
		t := c.src.Thing()
		emit(c.thingRequests, float64(t.Sets), "set", "applied")
		emit(c.thingRequests, float64(t.SetsRefused), "set", "refused")
		emit(c.thingRequests, float64(t.Calls), "call", "applied")
		emit(c.thingRequests, float64(t.CallsRefused), "call", "refused")
		emit(c.thingSent, float64(t.Replies), "reply")
		emit(c.thingSent, float64(t.Reports), "report")
		emit(c.thingDropped, float64(t.Dropped))
		emit(c.thingRetries, float64(t.PublishRetries))
		emit(c.thingReportReplies, float64(t.ReportRepliesOK), "ok")
		emit(c.thingReportReplies, float64(t.ReportErrors), "error")
		emit(c.thingQueued, float64(t.Queued))
	}
}

type emitFunc func(d desc, v float64, labels ...string)

func (c *collector) collectStatus(emit emitFunc) {
	st := c.src.Status()
	id := st.Module
	device := c.src.Device
	if st.DeviceName != "" { // a self-registering device: the name resolved at run time
		device = st.DeviceName
	}
	emit(c.info, 1, device, id.IMEI, id.ICCID, st.Operator, id.Model, id.Revision, c.src.ConfigRevision, c.src.Version)
	if id.IMEI != "" || id.Model != "" {
		emit(c.moduleInfo, 1, id.Model, id.Revision, id.IMEI, id.ICCID)
	}
	emit(c.portOpen, bool01(st.PortOpen))
	for _, s := range stages {
		emit(c.stage, bool01(st.Stage == s), s)
	}
	if st.Stage != "" && !slices.Contains(stages, st.Stage) {
		emit(c.stage, 1, st.Stage)
	}
	emit(c.registered, bool01(st.Registered))
	if st.Signal.HasRSSI {
		emit(c.signal, float64(st.Signal.RSSI))
		emit(c.signalAt, unixSeconds(st.SignalAt))
	}
	emit(c.connected, bool01(st.Connected))
	if st.Connected && !st.ConnectedAt.IsZero() {
		emit(c.sessionStart, unixSeconds(st.ConnectedAt))
	}
	emit(c.failures, float64(st.Attempt))
	for _, r := range lossReasons {
		emit(c.reconnects, float64(st.Reconnects[r]), r)
	}
	for _, r := range slices.Sorted(maps.Keys(st.Reconnects)) {
		if !slices.Contains(lossReasons, r) {
			emit(c.reconnects, float64(st.Reconnects[r]), r)
		}
	}
	emit(c.downlinks, float64(st.Downlinks))
	emit(c.downlinkBytes, float64(st.DownlinkBytes))
	emit(c.connectPublishes, float64(st.Published))
}

func (c *collector) collectAT(t *text, emit emitFunc) {
	s := c.src.AT()
	t.series(&c.atCommand, "_sum", s.CommandTime.Seconds())
	t.series(&c.atCommand, "_count", float64(s.Commands))
	emit(c.atTimeouts, float64(s.Timeouts))
	emit(c.atResyncs, float64(s.Resyncs))
	emit(c.urcs, float64(s.URCs))
	emit(c.heldBack, float64(s.HeldBack))
	emit(c.heldFor, s.HeldFor.Seconds())
	emit(c.droppedLines, float64(s.LinesTooLong), "too_long")
	emit(c.droppedLines, float64(s.PayloadsTooLong), "payload_too_long")
	emit(c.droppedLines, float64(s.BadFrames), "bad_frame")
	emit(c.droppedLines, float64(s.NoiseLines), "noise")
	emit(c.droppedLines, float64(s.StaleLines), "stale")
}

func (c *collector) collectOutbox(emit emitFunc) {
	if c.src.LocalOn {
		emit(c.outboxAvailable, bool01(c.src.Outbox != nil))
	}
	if c.src.Outbox == nil {
		return
	}
	o := c.src.Outbox()
	emit(c.outboxMessages, float64(o.Messages))
	emit(c.outboxBytes, float64(o.Bytes))
	emit(c.outboxMaxBytes, float64(o.MaxBytes))
	if !o.Oldest.IsZero() {
		emit(c.outboxOld, unixSeconds(o.Oldest))
	}
	emit(c.outboxStored, float64(o.Stored))
	emit(c.outboxDelivered, float64(o.Delivered))
	emit(c.outboxDropped, float64(o.Refused), "refused")
	emit(c.outboxDropped, float64(o.Expired), "expired")
	emit(c.outboxDropped, float64(o.DroppedOldest), "dropped_oldest")
	emit(c.outboxDropped, float64(o.Rejected), "rejected")
	emit(c.outboxDropped, float64(o.Damaged), "damaged")
	emit(c.outboxResends, float64(o.DuplicatesPossible))
	if c.src.Drain != nil {
		d := c.src.Drain()
		emit(c.outboxFails, float64(d.Failed))
		emit(c.outboxInFlight, float64(d.InFlight))
	}
}

func (c *collector) collectLocal(emit emitFunc, l local.Stats) {
	emit(c.localClients, float64(l.Clients))
	emit(c.localForwarded, float64(l.Forwarded))
	emit(c.localRefused, float64(l.Refused))
	emit(c.localNotFwd, float64(l.NotForwarded))
	emit(c.localDelivered, float64(l.Delivered))
	emit(c.localDeliverDropped, float64(l.DeliverDropped))
	emit(c.localDisconnects, float64(l.SlowClients), "slow")
	emit(c.localDisconnects, float64(l.TooLarge), "too_large")
	emit(c.localDisconnects, float64(l.ConnTimedOut), "connect_timeout")
	emit(c.localDisconnects, float64(l.Disconnected), "outbox_refused")
	emit(c.localConnRefused, float64(l.ConnRefused), "limit")
	emit(c.localConnRefused, float64(l.AuthRefused), "auth")
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
