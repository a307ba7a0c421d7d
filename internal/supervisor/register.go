package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/statefile"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
)

// Dynamic registration (Alibaba Cloud "one type, one secret", clouds.md 3.2): a device that has
// no DeviceSecret stored for its device name registers over the TLS link the MQTT stage opened,
// stores the secret the platform publishes on /ext/register (atomically, fsynced, 0600), closes
// the registration link and opens a new one to log in with the secret. A power cut at any point
// leaves either no secret file (the device registers again; the platform answers the same secret
// until the device has logged in with it) or a whole one.

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

// ensureDevice gives reg the device's name and DeviceSecret: the stored one or, when none is
// stored, one obtained by registering over the open link (which it then reopens).
func (s *Supervisor) ensureDevice(ctx context.Context, k *link, reg cloud.Registering) error {
	d := reg.Dynamic()
	dn := k.deviceName
	if dn == "" {
		dn = d.DeviceName(k.id.IMEI, k.id.ICCID)
	}
	path := d.SecretPath(dn)
	secret, found, err := statefile.Read(path)
	if err != nil {
		return s.mqttFailed(ctx, k, "device secret", fmt.Errorf("%w (remove it to register again)", err))
	}
	if found {
		s.log.Info().Str("event", logging.EventDeviceSecret).Str("device_name", dn).Str("file", path).
			Msg("logging in with the stored DeviceSecret")
	} else {
		if secret, err = s.register(ctx, k, reg, dn, path); err != nil {
			return err
		}
		s.log.Info().Str("step", "open").Str("host", s.set.Host).Int("port", s.set.Port).
			Msg("opening the link to the broker again to log in with the registered DeviceSecret")
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
	if err := reg.SetDevice(dn, secret); err != nil {
		return &PermanentError{Err: fmt.Errorf("credentials: %w", err)}
	}
	return nil
}

// register runs one registration over the open link and returns the DeviceSecret, stored in
// path; the link is closed when it returns. Its errors are step errors (retried on the MQTT
// back-off) with what to do in words.
func (s *Supervisor) register(ctx context.Context, k *link, reg cloud.Registering, dn, path string) (string, error) {
	d := reg.Dynamic()
	id, err := d.Register(dn)
	if err != nil {
		return "", &PermanentError{Err: fmt.Errorf("registration credentials: %w", err)}
	}
	ch := make(chan qmt.Received, 1)
	s.regWait.Store(&ch)
	defer s.regWait.Store(nil)
	s.log.Info().Str("event", logging.EventRegistering).Str("device_name", dn).Str("client_id", id.ClientID).
		Str("file", path).Msg("no DeviceSecret stored for this device name: registering it with the product secret")
	if err := k.client.Connect(ctx, id.ClientID, id.Username, id.Password); err != nil {
		return "", s.mqttFailed(ctx, k, "register", err)
	}
	t := time.NewTimer(cloud.AliyunRegisterWait)
	defer t.Stop()
	var m qmt.Received
	select {
	case m = <-ch:
	case <-t.C:
		return "", s.mqttFailed(ctx, k, "register", fmt.Errorf("no answer on %s within %s of the registration CONNACK",
			cloud.AliyunRegisterTopic, cloud.AliyunRegisterWait))
	case <-ctx.Done():
		return "", ctx.Err()
	}
	ans, err := cloud.ParseAliyunRegistration(m.Topic, m.Payload, d.ProductKey, dn)
	if err != nil {
		return "", s.mqttFailed(ctx, k, "register", err)
	}
	if err := statefile.Write(path, []byte(ans.DeviceSecret)); err != nil {
		return "", s.mqttFailed(ctx, k, "store device secret", fmt.Errorf("%w (check mqtt.aliyun.state_dir: it must be writable)", err))
	}
	s.log.Info().Str("event", logging.EventRegistered).Str("device_name", dn).Str("file", path).
		Msg("registered: the DeviceSecret is stored; logging in with it from now on")
	// The platform drops the registration link after 15 s; the device must close it itself.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := k.client.Disconnect(cctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug().Err(err).Msg("AT+QMTDISC after the registration")
	}
	if err := s.closeStaleLink(cctx, k); err != nil {
		s.log.Debug().Err(err).Msg("closing the registration link")
	}
	return ans.DeviceSecret, nil
}

// registrationAnswer hands a message on the registration topic to a registration in progress
// and reports whether it did; the payload (a secret) is never logged. The downlink consumer
// calls it.
func (s *Supervisor) registrationAnswer(topic string, payload []byte) bool {
	if topic != cloud.AliyunRegisterTopic {
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
