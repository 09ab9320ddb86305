package record

import (
	"unicode"
	"unicode/utf8"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// ValidatePublisher checks a publisher as a client sent it (after the session
// set session_id and register_timestamp): a well-formed data_info_id, a
// non-empty printable register_id, a non-empty session_id, zone and conn_id
// within their limits, at most MaxValues values of at most MaxValueBytes
// each. The error wraps ErrTooLarge or ErrInvalid (see there). Value indexes
// in messages count from 0.
func ValidatePublisher(p *registryv1.Publisher) error {
	if p == nil {
		return invalid("publisher is nil")
	}
	if _, _, _, err := ParseDataInfoID(p.GetDataInfoId()); err != nil {
		return err
	}
	if err := checkRegisterID(p.GetRegisterId()); err != nil {
		return err
	}
	if err := checkString("session_id", p.GetSessionId(), MaxSessionIDBytes, false); err != nil {
		return err
	}
	if err := checkString("zone", p.GetZone(), MaxZoneBytes, true); err != nil {
		return err
	}
	if err := checkString("conn_id", p.GetConnId(), MaxConnIDBytes, true); err != nil {
		return err
	}
	vals := p.GetValues()
	if len(vals) > MaxValues {
		return tooLarge("publisher has %d values, at most %d allowed", len(vals), MaxValues)
	}
	total := 0
	for i, v := range vals {
		if len(v) > MaxValueBytes {
			return tooLarge("value %d is %d bytes, at most %d allowed", i, len(v), MaxValueBytes)
		}
		total += len(v)
	}
	if total > MaxPublisherBytes {
		return tooLarge("publisher values total %d bytes, at most %d allowed", total, MaxPublisherBytes)
	}
	return nil
}

// ValidateUnpublish checks an unpublish: a well-formed data_info_id, a
// non-empty printable register_id and a session_id (optional) within its
// limit. The error wraps ErrTooLarge or ErrInvalid.
func ValidateUnpublish(u *registryv1.Unpublish) error {
	if u == nil {
		return invalid("unpublish is nil")
	}
	if _, _, _, err := ParseDataInfoID(u.GetDataInfoId()); err != nil {
		return err
	}
	if err := checkString("session_id", u.GetSessionId(), MaxSessionIDBytes, true); err != nil {
		return err
	}
	return checkRegisterID(u.GetRegisterId())
}

// ValidateRegisterID checks a register ID as a client sends it: 1..128
// bytes of printable UTF-8 without spaces. The error wraps ErrTooLarge or
// ErrInvalid.
func ValidateRegisterID(id string) error { return checkIDChars(id, MaxRegisterIDBytes) }

// checkRegisterID checks a register ID as stored (maybe owner-qualified).
func checkRegisterID(id string) error { return checkIDChars(id, MaxStoredRegisterIDBytes) }

func checkIDChars(id string, max int) error {
	if err := checkString("register_id", id, max, false); err != nil {
		return err
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return invalid("register_id %q has a space or control character", id)
		}
	}
	return nil
}

// checkString checks that s is valid UTF-8 of at most max bytes, and
// non-empty unless emptyOK.
func checkString(field, s string, max int, emptyOK bool) error {
	if s == "" {
		if emptyOK {
			return nil
		}
		return invalid("%s is empty", field)
	}
	if len(s) > max {
		return tooLarge("%s is %d bytes, at most %d allowed", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalid("%s is not valid UTF-8", field)
	}
	return nil
}
