// Package logging builds gatewayd's zerolog logger — one JSON object per line with a microsecond
// `time` field, or a human console format — and names the stable values of the `event` field
// that operators and tests match on.
package logging
