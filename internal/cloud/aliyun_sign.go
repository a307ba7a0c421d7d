package cloud

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SignMethod names the HMAC the password is computed with, exactly as it appears in the client id.
type SignMethod string

// The sign methods the platform accepts.
const (
	HMACSHA1   SignMethod = "hmacsha1"
	HMACSHA256 SignMethod = "hmacsha256"
	HMACMD5    SignMethod = "hmacmd5"
)

// DefaultSignMethod is used when AliyunParams.SignMethod is empty. (The platform's own default when the
// client id names none is hmacmd5; Sign always names the method, so that default never applies.)
const DefaultSignMethod = HMACSHA256

// Secure modes: the securemode value in the client id tells the platform how the device connects.
const (
	AliyunSecureModeTLS   = 2 // MQTT over TLS
	AliyunSecureModePlain = 3 // MQTT over plain TCP
)

// Limits from the platform documentation.
const (
	AliyunMaxClientID = 64 // longest device-chosen client id (the part before the first '|')
	// AliyunPort is the MQTT port of both the legacy and the new endpoints, for TCP and TLS alike.
	AliyunPort = 1883
)

// ErrBadSignMethod is wrapped by the error for a sign method the platform does not know.
var ErrBadSignMethod = errors.New("unknown sign method")

// ParseSignMethod checks s against the supported sign methods.
func ParseSignMethod(s string) (SignMethod, error) {
	switch m := SignMethod(s); m {
	case HMACSHA1, HMACSHA256, HMACMD5:
		return m, nil
	}
	return "", fmt.Errorf("%w %q (want hmacsha1, hmacsha256 or hmacmd5)", ErrBadSignMethod, s)
}

func (m SignMethod) newHash() func() hash.Hash {
	switch m {
	case HMACSHA1:
		return sha1.New
	case HMACSHA256:
		return sha256.New
	case HMACMD5:
		return md5.New
	}
	return nil
}

// AliyunParams are the inputs of one Alibaba Cloud signature.
type AliyunParams struct {
	ProductKey   string
	DeviceName   string
	DeviceSecret string
	// ClientID is the device-chosen client id (≤ 64 bytes, no '|'); empty means DeviceName.
	ClientID string
	// SignMethod is the HMAC to use; empty means DefaultSignMethod.
	SignMethod SignMethod
	// SecureMode is AliyunSecureModePlain (3) or AliyunSecureModeTLS (2); 0 means AliyunSecureModePlain.
	SecureMode int
	// Timestamp in milliseconds since the Unix epoch; 0 leaves the timestamp out of both the client
	// id and the signed string.
	Timestamp int64
}

// AliyunSign computes the CONNECT credentials for p:
//
//	clientId: <clientId>|securemode=<m>,signmethod=<alg>[,timestamp=<ms>]|
//	username: <deviceName>&<productKey>
//	password: hex(HMAC_alg(key = deviceSecret, "clientId"<clientId>"deviceName"<dn>"productKey"<pk>["timestamp"<ms>]))
//
// securemode and signmethod are not part of the signed string; the timestamp is, with the same
// value as in the client id, exactly when it is present.
func AliyunSign(p AliyunParams) (Identity, error) {
	if p.SignMethod == "" {
		p.SignMethod = DefaultSignMethod
	}
	if p.ClientID == "" {
		p.ClientID = p.DeviceName
	}
	if p.SecureMode == 0 {
		p.SecureMode = AliyunSecureModePlain
	}
	if err := p.check(); err != nil {
		return Identity{}, err
	}

	var ext, ts string
	if p.Timestamp != 0 {
		ts = strconv.FormatInt(p.Timestamp, 10)
		ext = ",timestamp=" + ts
	}
	s := "clientId" + p.ClientID + "deviceName" + p.DeviceName + "productKey" + p.ProductKey
	if ts != "" {
		s += "timestamp" + ts
	}
	mac := hmac.New(p.SignMethod.newHash(), []byte(p.DeviceSecret))
	mac.Write([]byte(s))

	return Identity{
		ClientID: fmt.Sprintf("%s|securemode=%d,signmethod=%s%s|", p.ClientID, p.SecureMode, p.SignMethod, ext),
		Username: p.DeviceName + "&" + p.ProductKey,
		Password: hex.EncodeToString(mac.Sum(nil)),
	}, nil
}

func (p AliyunParams) check() error {
	if _, err := ParseSignMethod(string(p.SignMethod)); err != nil {
		return fmt.Errorf("aliyun: %w", err)
	}
	if p.SecureMode != AliyunSecureModePlain && p.SecureMode != AliyunSecureModeTLS {
		return fmt.Errorf("aliyun: securemode %d: want 2 (TLS) or 3 (TCP)", p.SecureMode)
	}
	if p.Timestamp < 0 {
		return fmt.Errorf("aliyun: timestamp %d is negative", p.Timestamp)
	}
	if err := checkIdentityNames(p.ProductKey, p.DeviceName, p.ClientID); err != nil {
		return err
	}
	if len(p.ClientID) > AliyunMaxClientID {
		return fmt.Errorf("aliyun: client id is %d bytes, longer than %d", len(p.ClientID), AliyunMaxClientID)
	}
	if p.DeviceSecret == "" {
		return errors.New("aliyun: device secret is empty")
	}
	return nil
}

// checkIdentityNames checks the product key, device name and client id of an Alibaba Cloud
// CONNECT with checkName: the first two go into the user name <deviceName>&<productKey>, the
// client id before the |…| parameters.
func checkIdentityNames(productKey, deviceName, clientID string) error {
	for _, f := range []struct{ name, v, bad string }{
		{"product key", productKey, "&|"},
		{"device name", deviceName, "&|"},
		{"client id", clientID, "|"},
	} {
		if err := checkName(f.name, f.v, f.bad); err != nil {
			return err
		}
	}
	return nil
}

// checkName reports whether v is usable as the named identity field: not empty, no byte from bad,
// and none of the bytes an AT command string cannot carry (a double quote or a control byte).
func checkName(name, v, bad string) error {
	if v == "" {
		return fmt.Errorf("aliyun: %s is empty", name)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7f || c == '"' || strings.IndexByte(bad, c) >= 0 {
			return fmt.Errorf("aliyun: %s %q holds byte %q at offset %d, which it cannot contain", name, v, c, i)
		}
	}
	return nil
}

// AliyunEndpoint returns the MQTT broker host of a device: "<instanceID>.mqtt.iothub.aliyuncs.com" for
// a new-style instance when instanceID is set, else the legacy public-instance name
// "<productKey>.iot-as-mqtt.<region>.aliyuncs.com". Both use AliyunPort.
func AliyunEndpoint(productKey, region, instanceID string) (string, error) {
	switch {
	case instanceID != "" && region != "":
		return "", errors.New("aliyun: give either an instance id or a region, not both")
	case instanceID != "":
		if err := aliyunLabel("instance id", instanceID); err != nil {
			return "", err
		}
		return instanceID + ".mqtt.iothub.aliyuncs.com", nil
	case region != "":
		if err := aliyunLabel("region", region); err != nil {
			return "", err
		}
		if err := aliyunLabel("product key", productKey); err != nil {
			return "", err
		}
		return productKey + ".iot-as-mqtt." + region + ".aliyuncs.com", nil
	}
	return "", errors.New("aliyun: need an instance id or a region to derive the endpoint")
}

// aliyunLabel checks one DNS label of an Aliyun host name.
func aliyunLabel(name, v string) error {
	if err := checkLabel(v); err != nil {
		if v == "" {
			return fmt.Errorf("aliyun: %s is empty", name)
		}
		return fmt.Errorf("aliyun: %s %w", name, err)
	}
	return nil
}
