// Package aliyun computes the MQTT CONNECT credentials (client id, user name, HMAC password) and
// the broker host name for a device on the Alibaba Cloud IoT Platform, on the host, so the module's
// own signing (broken on some firmware) is never needed.
package aliyun
