package cloud

import (
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Alibaba Cloud dynamic registration, "one type, one secret" (clouds.md 3.2): a device that knows
// only its product's ProductKey and ProductSecret asks the platform for its DeviceSecret over a
// TLS MQTT connection, then connects with that secret as in 3.1.

// Registration variants (the authType in the client id).
const (
	// AliyunRegister is the pre-registered variant: the device exists in the console; the
	// platform answers with its DeviceSecret on /ext/register (securemode=2).
	AliyunRegister = "register"
	// AliyunRegNWL is the variant without pre-registration: the platform answers with a client
	// id and a device token on /ext/regnwl (securemode=-2); the device then connects with
	// authType=connwl.
	AliyunRegNWL = "regnwl"
)

// Topics the platform publishes the registration answer on (clouds.md 3.2).
const (
	AliyunRegisterTopic = "/ext/register"
	AliyunRegNWLTopic   = "/ext/regnwl"
)

// ModuleMaxClientID is the module's longest MQTT client id in bytes (clouds.md section 5 [GW]).
const ModuleMaxClientID = 128

// ModuleMaxPassword is the module's longest MQTT password in bytes (clouds.md section 5 [GW]).
const ModuleMaxPassword = 256

// AliyunRegisterParams are the inputs of one registration CONNECT.
type AliyunRegisterParams struct {
	ProductKey    string
	ProductSecret string
	DeviceName    string
	// ClientID is the device-chosen client id; empty means DeviceName.
	ClientID string
	// SignMethod is the HMAC to use; empty means DefaultSignMethod.
	SignMethod SignMethod
	// AuthType is AliyunRegister (default when empty) or AliyunRegNWL.
	AuthType string
	// Random is the nonce signed into the password; any decimal number.
	Random uint64
	// InstanceID is the Enterprise instance id, regnwl only; "" leaves it out.
	InstanceID string
}

// AliyunRegisterSign computes the registration CONNECT credentials:
//
//	clientId: <clientId>|securemode=2,authType=register,random=<r>,signmethod=<m>|
//	          (regnwl: <clientId>|securemode=-2,authType=regnwl,random=<r>,signmethod=<m>[,instanceId=<id>]|)
//	username: <deviceName>&<productKey>
//	password: hex(HMAC_m(key = productSecret, "deviceName"<dn>"productKey"<pk>"random"<r>))
//
// The client id is not signed; the random is, with the same value as in the client id. It
// refuses a client id longer than the module's ModuleMaxClientID.
func AliyunRegisterSign(p AliyunRegisterParams) (Identity, error) {
	if p.SignMethod == "" {
		p.SignMethod = DefaultSignMethod
	}
	if p.ClientID == "" {
		p.ClientID = p.DeviceName
	}
	if p.AuthType == "" {
		p.AuthType = AliyunRegister
	}
	if _, err := ParseSignMethod(string(p.SignMethod)); err != nil {
		return Identity{}, fmt.Errorf("aliyun: %w", err)
	}
	if err := checkIdentityNames(p.ProductKey, p.DeviceName, p.ClientID); err != nil {
		return Identity{}, err
	}
	if p.ProductSecret == "" {
		return Identity{}, errors.New("aliyun: product secret is empty")
	}
	r := strconv.FormatUint(p.Random, 10)
	var ext string
	switch p.AuthType {
	case AliyunRegister:
		if p.InstanceID != "" {
			return Identity{}, errors.New("aliyun: instanceId goes only into the regnwl client id")
		}
		ext = "securemode=2,authType=register,random=" + r + ",signmethod=" + string(p.SignMethod)
	case AliyunRegNWL:
		ext = "securemode=-2,authType=regnwl,random=" + r + ",signmethod=" + string(p.SignMethod)
		if p.InstanceID != "" {
			if err := checkName("instance id", p.InstanceID, "|,="); err != nil {
				return Identity{}, err
			}
			ext += ",instanceId=" + p.InstanceID
		}
	default:
		return Identity{}, fmt.Errorf("aliyun: registration %q: want register or regnwl", p.AuthType)
	}
	id := p.ClientID + "|" + ext + "|"
	if len(id) > ModuleMaxClientID {
		return Identity{}, fmt.Errorf("aliyun: the registration client id is %d bytes, longer than the module's %d "+
			"(the device-chosen part %q is %d bytes; keep it under %d)", len(id), ModuleMaxClientID,
			p.ClientID, len(p.ClientID), ModuleMaxClientID-(len(id)-len(p.ClientID)))
	}
	mac := hmac.New(p.SignMethod.newHash(), []byte(p.ProductSecret))
	mac.Write([]byte("deviceName" + p.DeviceName + "productKey" + p.ProductKey + "random" + r))
	return Identity{
		ClientID: id,
		Username: p.DeviceName + "&" + p.ProductKey,
		Password: hex.EncodeToString(mac.Sum(nil)),
	}, nil
}

// AliyunRegisterMaxClientID is the longest device-chosen client id whose registration client id
// still fits the module, with the longest random (20 digits) and sign method (hmacsha256).
func AliyunRegisterMaxClientID(authType, instanceID string) int {
	ext := "|securemode=2,authType=register,random=18446744073709551615,signmethod=hmacsha256|"
	if authType == AliyunRegNWL {
		ext = "|securemode=-2,authType=regnwl,random=18446744073709551615,signmethod=hmacsha256|"
		if instanceID != "" {
			ext = ext[:len(ext)-1] + ",instanceId=" + instanceID + "|"
		}
	}
	return ModuleMaxClientID - len(ext)
}

// AliyunConnWL is the identity to connect with after a regnwl registration: the client id and
// device token from the platform's answer.
func AliyunConnWL(productKey, deviceName, clientID, deviceToken string) (Identity, error) {
	if err := checkIdentityNames(productKey, deviceName, clientID); err != nil {
		return Identity{}, err
	}
	if checkName("device token", deviceToken, "") != nil || len(deviceToken) > ModuleMaxPassword {
		// Not quoted: it is the password.
		return Identity{}, fmt.Errorf("aliyun: the device token (%d bytes) is empty, holds a control byte or a quote, "+
			"or is longer than the module's %d-byte password", len(deviceToken), ModuleMaxPassword)
	}
	id := clientID + "|securemode=-2,authType=connwl|"
	if len(id) > ModuleMaxClientID {
		return Identity{}, fmt.Errorf("aliyun: the connwl client id is %d bytes, longer than the module's %d", len(id), ModuleMaxClientID)
	}
	return Identity{ClientID: id, Username: deviceName + "&" + productKey, Password: deviceToken}, nil
}

// AliyunRegistration is the platform's answer on /ext/register (DeviceSecret) or /ext/regnwl
// (ClientID and DeviceToken). It holds secrets: never log it.
type AliyunRegistration struct {
	ProductKey   string `json:"productKey"`
	DeviceName   string `json:"deviceName"`
	DeviceSecret string `json:"deviceSecret,omitempty"`
	ClientID     string `json:"clientId,omitempty"`
	DeviceToken  string `json:"deviceToken,omitempty"`
}

// ParseAliyunRegistration reads the answer to a registration of variant authType (AliyunRegister
// or AliyunRegNWL) published on topic for the device pk/dn, and checks it is for this device and
// carries what the variant needs. A regnwl answer is taken on /ext/regnwl (where Alibaba Cloud's
// SDK listens) and on /ext/register (what the documentation's text says), clouds.md 3.2. Errors
// never quote a secret.
func ParseAliyunRegistration(authType, topic string, payload []byte, pk, dn string) (AliyunRegistration, error) {
	var r AliyunRegistration
	if topic != AliyunRegisterTopic && (authType != AliyunRegNWL || topic != AliyunRegNWLTopic) {
		return r, fmt.Errorf("aliyun: %s is not where the answer to authType=%s comes", topic, authType)
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return r, fmt.Errorf("aliyun: the registration answer on %s is not JSON {productKey, deviceName, ...}: %w", topic, err)
	}
	if r.ProductKey != pk || r.DeviceName != dn {
		return r, fmt.Errorf("aliyun: the registration answer is for %q/%q, not this device %q/%q", r.ProductKey, r.DeviceName, pk, dn)
	}
	switch authType {
	case AliyunRegister:
		if err := checkName("device secret", r.DeviceSecret, ""); err != nil {
			return r, errors.New("aliyun: the registration answer holds no usable deviceSecret")
		}
	case AliyunRegNWL:
		if checkName("client id", r.ClientID, "|") != nil || checkName("device token", r.DeviceToken, "") != nil {
			return r, fmt.Errorf("aliyun: the regnwl answer on %s holds no usable clientId and deviceToken", topic)
		}
		if _, err := AliyunConnWL(pk, dn, r.ClientID, r.DeviceToken); err != nil {
			return r, fmt.Errorf("%w: the device cannot log in with what the platform issued", err)
		}
	default:
		return r, fmt.Errorf("aliyun: registration %q: want register or regnwl", authType)
	}
	return r, nil
}
