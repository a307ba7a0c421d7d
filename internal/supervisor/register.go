package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/statefile"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
)

// Dynamic registration (Alibaba Cloud "one type, one secret", clouds.md 3.2): a device that has
// no credential stored for its device name registers over the TLS link the MQTT stage opened,
// stores what the platform publishes (atomically, fsynced, 0600), closes the registration link
// and opens a new one to log in with it. authType=register answers a DeviceSecret on
// /ext/register; authType=regnwl answers a client id and a device token on /ext/regnwl (or
// /ext/register, as the documentation's text says), stored together in one file and logged in
// with as authType=connwl. A power cut at any point leaves either no credential file (the device
// registers again; the platform answers the same until the device has logged in with it) or a
// whole one.

// resolveDeviceName is the device name of a registering platform for the module with identity
// id: the template filled in or, with pin_device_name, the name pinned at the first registration.
func (s *Supervisor) resolveDeviceName(reg cloud.Registering, id modem.Identity) (string, error) {
	d := reg.Dynamic()
	name := d.DeviceName(id.IMEI, id.ICCID)
	if !d.Pin {
		return name, nil
	}
	pinned, found, err := statefile.Read(d.PinPath())
	if err != nil || !found {
		return name, err
	}
	if pinned != name {
		s.log.Warn().Str("event", logging.EventDeviceNamePinned).Str("device_name", pinned).Str("template_name", name).
			Str("imei", id.IMEI).Msg("pin_device_name: keeping the device name registered first, not the one this module gives; " +
			"its stored DeviceSecret is used")
	}
	return pinned, nil
}

// ensureDevice gives reg the device's name and credential: the stored one or, when none is
// stored, one obtained by registering over the open link (which it then reopens).
func (s *Supervisor) ensureDevice(ctx context.Context, k *link, reg cloud.Registering) error {
	d := reg.Dynamic()
	dn := k.deviceName
	if dn == "" {
		dn = d.DeviceName(k.id.IMEI, k.id.ICCID)
	}
	path := d.SecretPath(dn)
	stored, found, err := statefile.Read(path)
	var cred cloud.AliyunCredential
	if err == nil && found {
		cred, err = d.DecodeCredential(stored)
	}
	if err != nil {
		return s.mqttFailed(ctx, k, "device secret", fmt.Errorf("%w (remove %s to register again)", err, path))
	}
	if found {
		s.log.Info().Str("event", logging.EventDeviceSecret).Str("device_name", dn).Str("file", path).Str("registration", d.AuthType).
			Msg("logging in with the stored " + credName(d))
	} else {
		if cred, err = s.register(ctx, k, reg, dn, path); err != nil {
			return err
		}
		s.log.Info().Str("step", "open").Str("host", s.set.Host).Int("port", s.set.Port).
			Msg("opening the link to the broker again to log in with the registered " + credName(d))
		if err := k.client.Open(ctx, s.set.Host, s.set.Port); err != nil {
			return s.mqttFailed(ctx, k, "open", err)
		}
	}
	if d.Pin {
		if _, pinned, err := statefile.Read(d.PinPath()); err == nil && !pinned {
			if err := statefile.Write(d.PinPath(), []byte(dn)); err != nil {
				return s.mqttFailed(ctx, k, "pin device name", err)
			}
		}
	}
	if err := reg.SetDevice(dn, cred); err != nil {
		return &PermanentError{Err: fmt.Errorf("credentials: %w", err)}
	}
	return nil
}

// credName names what a registration of d gives the device, for the log.
func credName(d *cloud.AliyunDynamic) string {
	if d.AuthType == cloud.AliyunRegNWL {
		return "client id and device token (authType=connwl)"
	}
	return "DeviceSecret"
}

// register runs one registration over the open link and returns the credential, stored in
// path; the link is closed when it returns. Its errors are step errors (retried on the MQTT
// back-off) with what to do in words.
func (s *Supervisor) register(ctx context.Context, k *link, reg cloud.Registering, dn, path string) (cloud.AliyunCredential, error) {
	var none cloud.AliyunCredential
	d := reg.Dynamic()
	id, err := d.Register(dn)
	if err != nil {
		return none, &PermanentError{Err: fmt.Errorf("registration credentials: %w", err)}
	}
	ch := make(chan qmt.Received, 1)
	s.regWait.Store(&ch)
	defer s.regWait.Store(nil)
	s.log.Info().Str("event", logging.EventRegistering).Str("device_name", dn).Str("client_id", id.ClientID).
		Str("file", path).Str("registration", d.AuthType).
		Msg("no " + credName(d) + " stored for this device name: registering it with the product secret")
	if err := k.client.Connect(ctx, id.ClientID, id.Username, id.Password); err != nil {
		return none, s.mqttFailed(ctx, k, "register", err)
	}
	t := time.NewTimer(cloud.AliyunRegisterWait)
	defer t.Stop()
	var m qmt.Received
	select {
	case m = <-ch:
	case <-t.C:
		return none, s.mqttFailed(ctx, k, "register", fmt.Errorf("no answer on %s within %s of the registration CONNACK",
			strings.Join(d.AnswerTopics(), " or "), cloud.AliyunRegisterWait))
	case <-ctx.Done():
		return none, ctx.Err()
	}
	ans, err := cloud.ParseAliyunRegistration(d.AuthType, m.Topic, m.Payload, d.ProductKey, dn)
	if err != nil {
		return none, s.mqttFailed(ctx, k, "register", err)
	}
	cred := d.Credential(ans)
	if err := statefile.Write(path, d.EncodeCredential(cred)); err != nil {
		return none, s.mqttFailed(ctx, k, "store device secret", fmt.Errorf("%w (check mqtt.aliyun.state_dir: it must be writable)", err))
	}
	ev := s.log.Info().Str("event", logging.EventRegistered).Str("device_name", dn).Str("file", path).Str("topic", m.Topic)
	if d.AuthType == cloud.AliyunRegNWL {
		ev = ev.Str("connwl_client_id", ans.ClientID) // the client id is not secret; the token is
	}
	ev.Msg("registered: the " + credName(d) + " is stored; logging in with it from now on")
	// The platform drops the registration link after 15 s; the device must close it itself.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := k.client.Disconnect(cctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug().Err(err).Msg("AT+QMTDISC after the registration")
	}
	if err := s.closeStaleLink(cctx, k); err != nil {
		s.log.Debug().Err(err).Msg("closing the registration link")
	}
	return cred, nil
}

// registrationAnswer hands a message on the registration topic to a registration in progress
// (one of answers, the platform's answer topics, none for a platform that does not register)
// and reports whether it did; the payload (a secret) is never logged. The downlink consumer
// calls it.
func (s *Supervisor) registrationAnswer(answers []string, topic string, payload []byte) bool {
	if !slices.Contains(answers, topic) {
		return false
	}
	ch := s.regWait.Load()
	if ch == nil {
		s.log.Warn().Str("topic", topic).Int("bytes", len(payload)).
			Msg("a registration answer arrived with no registration in progress; ignored (not logged: it holds a secret)")
		return true
	}
	select {
	case *ch <- qmt.Received{Topic: topic, Payload: payload}:
	default:
	}
	s.log.Info().Str("topic", topic).Int("bytes", len(payload)).Msg("registration answer received")
	return true
}
