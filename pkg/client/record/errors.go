package record

import (
	"errors"
	"fmt"
)

// Kinds of bad input. Every validation error wraps exactly one of them, so a
// caller maps errors.Is(err, ErrTooLarge) to gRPC ResourceExhausted and
// errors.Is(err, ErrInvalid) to InvalidArgument. The error's own message
// names the field, and for sizes the size and the limit, e.g.
// "record: value 2 is 1048577 bytes, at most 1048576 allowed".
var (
	ErrInvalid  = errors.New("record: invalid argument")
	ErrTooLarge = errors.New("record: too large")
)

// inputError is a validation error: its message is specific, its kind is
// one of the sentinels above.
type inputError struct {
	kind error
	msg  string
}

func (e *inputError) Error() string { return "record: " + e.msg }
func (e *inputError) Unwrap() error { return e.kind }

func invalid(format string, args ...any) error {
	return &inputError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &inputError{kind: ErrTooLarge, msg: fmt.Sprintf(format, args...)}
}
