// Package logging builds gatewayd's zerolog logger — one JSON object per line with a microsecond
// `time` field, or a human console format — and names the stable values of the `event` field
// that operators and tests match on. On the journal's stream (JOURNAL_STREAM) each line starts
// with its level's sd-daemon priority, so that journalctl can filter by level.
package logging
