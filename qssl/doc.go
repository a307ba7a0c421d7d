// Package qssl sets up a TLS context of the EC600 for its built-in MQTT client: it puts the CA
// certificate, client certificate and client key in the module's file system and points an
// AT+QSSLCFG context at them (reference section 5). qmt's Config.SSL then names the context.
//
// Apply is idempotent and cheap when nothing changed, so the daemon runs it at every bring-up:
// a module swapped on the bench gets its certificates without anyone setting it up. Files are
// named by content (gwd-ca-<sha256 prefix>.pem): a file already there under its name with the
// right size is kept, one missing is uploaded, and gatewayd's files that no longer match the
// configuration are deleted. Files of other names are never touched.
package qssl
