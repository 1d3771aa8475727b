package store

// ScramVerifier exposes scramVerifier to the external tests (role_test.go).
var ScramVerifier = scramVerifier
