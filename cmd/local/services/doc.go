// Package services holds what `make services` uses besides the pinned tools in .tools:
// loopback.cjs, preloaded into the SQS emulator so that it listens on 127.0.0.1 only; its
// test starts the services on spare ports and checks every socket they listen on.
package services
