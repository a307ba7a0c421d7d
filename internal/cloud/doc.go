// Package cloud is the one place that knows the rules of the IoT clouds gatewayd connects to:
// for each platform (Alibaba Cloud, Tencent Cloud IoT Explorer, Huawei IoTDA, China Mobile OneNET,
// Azure IoT Hub, AWS IoT Core, ThingsBoard, and a plain broker) it derives, from the few values
// the platform's console shows, the broker endpoint, the MQTT CONNECT identity signed on the host
// at every connect (client id, user name, password and when the password expires), the
// platform's standard topics and its limits.
//
// A Platform is built by New from a platform name and the values of its configuration section
// (Fields lists them); Override replaces derived values key by key. Package config only parses
// and validates the file and calls into this package; the supervisor asks Platform.Identity at
// every CONNECT. Each platform lives in a file of its own, with the reference's test vectors.
package cloud
