package store

// ScramVerifier exposes scramVerifier to the external tests (role_test.go).
var ScramVerifier = scramVerifier

// SlotOf exposes slotOf: tests pick hold ids whose slot is short or not.
var SlotOf = slotOf
