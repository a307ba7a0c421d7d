package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// secretKeys are the keys whose values revision leaves out (the secrets of [mqtt], [module],
// [local] and the platform presets): a secret's hash, even truncated, is not for a dashboard.
var secretKeys = map[string]bool{
	"password": true, "apn_password": true, "product_secret": true,
	"device_secret": true, "device_key": true, "access_token": true,
}

// revision is Config.Revision: the first 12 hex digits of the SHA-256 of the merged tree,
// encoded canonically (JSON, keys sorted), with secret values left out. The same settings give
// the same revision however they are split between the main file and drop-ins, and whatever the
// comments, order and layout of the files.
func revision(root map[string]any) string {
	data, err := json.Marshal(maskSecrets(root))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6])
}

func maskSecrets(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if secretKeys[strings.ToLower(k)] {
				out[k] = "***"
				continue
			}
			out[k] = maskSecrets(x)
		}
		return out
	case []map[string]any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = maskSecrets(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = maskSecrets(x)
		}
		return out
	}
	return v
}

// DeviceName is the name a fleet dashboard knows the gateway by: the platform's device name
// ({device_name}: mqtt.aliyun.device_name, ...) when its preset has one, else mqtt.client_id.
func (c *Config) DeviceName() string {
	if p := c.MQTT.Platform; p != nil {
		if n := p.Topics()[VarDeviceName]; n != "" {
			return n
		}
	}
	return c.MQTT.ClientID
}
