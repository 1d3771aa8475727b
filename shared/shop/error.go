package shop

import (
	"errors"
	"fmt"
)

// Code is one of the error codes of API.md's table.
type Code string

// The error codes of the contract. apigw maps each to its HTTP status.
const (
	CodeInvalidRequest       Code = "invalid_request"
	CodeUnauthenticated      Code = "unauthenticated"
	CodeForbidden            Code = "forbidden"
	CodeNotFound             Code = "not_found"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodeOutOfStock           Code = "out_of_stock"
	CodeLimitExceeded        Code = "limit_exceeded"
	CodeReservationExpired   Code = "reservation_expired"
	CodeInvalidState         Code = "invalid_state"
	CodeIdempotencyConflict  Code = "idempotency_conflict"
	CodeNotOpen              Code = "not_open"
	CodeNotAdmitted          Code = "not_admitted"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeRateLimited          Code = "rate_limited"
	CodePaymentProviderError Code = "payment_provider_error"
	CodeUnavailable          Code = "unavailable"
	CodeInternal             Code = "internal"
)

// Error is the one application error. Code, Message and Details are safe to show a client;
// Err is the internal cause, for logs only.
type Error struct {
	Code    Code
	Message string
	Details map[string]any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid is a 400 naming the offending field.
func Invalid(field, format string, args ...any) *Error {
	e := Errorf(CodeInvalidRequest, format, args...)
	if field != "" {
		e.Details = map[string]any{"field": field}
	}
	return e
}

// ErrNotFound is what adapters return for a row or key that does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable marks a dependency that cannot be reached; adapters wrap it around
// connection failures so callers answer 503 instead of 500.
var ErrUnavailable = errors.New("dependency unavailable")

// AsError is errors.As(err, &e) for an *Error: the first *Error in err's chain, or nil. An
// *Error itself, the common case on the hot paths, costs no allocation.
func AsError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// ErrorCode returns the code of err: its *Error's, unavailable for ErrUnavailable,
// not_found for ErrNotFound, else internal.
func ErrorCode(err error) Code {
	switch e := AsError(err); {
	case e != nil:
		return e.Code
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	default:
		return CodeInternal
	}
}
