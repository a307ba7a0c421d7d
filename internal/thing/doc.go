// Package thing speaks the cloud platforms' thing models for one property-bound LED: it parses
// the property sets, service calls and report replies the platform's console sends, and builds
// the device's replies and property reports, each in the platform's own dialect (one file per
// platform: aliyun.go, tencent.go, huawei.go, onenet.go, azure.go, aws.go, thingsboard.go).
//
// Engine (engine.go) is the device side: it applies a set to the LED (idempotently: a set
// delivered twice leaves the same state), answers with the request's id and the platform's
// success or error code, reports the LED and the module's telemetry, and runs the small fixed set
// of services an operator may call (get_status, blink). Nothing here reaches the AT port: the
// daemon gives the engine a publish path and the status it already has.
//
// The payloads and codes are those of the reference (shared/reference/clouds.md sections 4 and
// 6, ec600-at.md section 7.4); where the reference marks a code UNVERIFIED the dialect's doc says so.
package thing
