package client

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/strata-registry/strata/pkg/client/record"
)

// Kinds of failure a caller can test for with errors.Is. Every error the
// client returns for a refused request wraps exactly one of them (or a
// context error); its message says what was wrong.
var (
	// ErrInvalidArgument: the request itself is malformed (an empty data
	// ID, a register ID with spaces, an unknown scope...).
	ErrInvalidArgument = errors.New("strata: invalid argument")
	// ErrTooLarge: a value, the sum of a publication's values, or an ID is
	// over its limit. Checked before anything is sent.
	ErrTooLarge = errors.New("strata: too large")
	// ErrRateLimited: the session refused the request under a
	// per-connection limit (registrations per second, or registrations per
	// connection). Retrying later may succeed.
	ErrRateLimited = errors.New("strata: rate limited")
	// ErrUnauthenticated: the cluster does not know the client: no client
	// certificate or token, or one it does not accept (WithCredentials,
	// WithTLS, WithToken).
	ErrUnauthenticated = errors.New("strata: unauthenticated")
	// ErrPermissionDenied: the client's identity may not do this (publish
	// or subscribe under that data ID, or act on another client's
	// registration). Nothing changed.
	ErrPermissionDenied = errors.New("strata: permission denied")
	// ErrClosed: the client, publication or subscription was closed.
	ErrClosed = errors.New("strata: closed")
)

// Error is a request the session refused: its gRPC code and message, and
// the kind above it maps to.
type Error struct {
	Code    codes.Code
	Message string
	kind    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v (%s): %s", e.kind, e.Code, e.Message)
}

// Unwrap returns the kind (ErrInvalidArgument, ErrRateLimited, ...).
func (e *Error) Unwrap() error { return e.kind }

// fromCode maps a session's refusal to an Error, or nil for OK.
func fromCode(code codes.Code, msg string) error {
	var kind error
	switch code {
	case codes.OK:
		return nil
	case codes.InvalidArgument:
		kind = ErrInvalidArgument
	case codes.ResourceExhausted:
		// Sizes are checked on this side first, so a session's
		// ResourceExhausted is one of its per-connection limits.
		kind = ErrRateLimited
	case codes.Unauthenticated:
		kind = ErrUnauthenticated
	case codes.PermissionDenied:
		kind = ErrPermissionDenied
	default:
		kind = errors.New("strata: request failed")
	}
	return &Error{Code: code, Message: msg, kind: kind}
}

// localError wraps a validation failure found before sending.
type localError struct {
	kind error
	err  error
}

func (e *localError) Error() string { return fmt.Sprintf("%v: %v", e.kind, e.err) }
func (e *localError) Unwrap() error { return e.kind }

// recordError maps a validation error of package record to a kind.
func recordError(err error) error {
	if errors.Is(err, record.ErrTooLarge) {
		return &localError{ErrTooLarge, err}
	}
	return &localError{ErrInvalidArgument, err}
}

func codeOf(a interface{ GetCode() int32 }) codes.Code { return codes.Code(a.GetCode()) }
