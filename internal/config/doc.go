// Package config reads gatewayd's TOML configuration file, rejects every unknown key and bad value
// with the file, line and key at fault, loads secrets from files or systemd credentials into a
// Secret type that never prints, and resolves what the daemon will send: broker host, MQTT client
// id, user name and password (literal, or derived by a cloud preset of package cloud, which holds
// every platform's rules: config only parses, validates and asks it), topics.
package config
