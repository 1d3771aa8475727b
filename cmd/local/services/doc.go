// Package services holds what `make services` uses besides the pinned tools in .tools:
// pgbouncer.sh, which installs and starts PgBouncer (the local stand-in for RDS Proxy), and
// loopback.cjs, preloaded into the SQS emulator so that it listens on 127.0.0.1 only. Its
// test starts the services on spare ports and checks every socket they listen on.
package services
