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
	return checkPublisherRest(p)
}

// ValidateClientPublisher checks a publisher a session built from a
// client's registration: clientRegisterID is the register ID the client
// sent (checked as ValidateRegisterID does), p's is that ID as stored
// (Owned by the client's identity, whose name holds no space, slash or
// control character: only its length is checked again); everything else
// as ValidatePublisher checks it. The client's ID comes first, so its
// errors name the ID the client sent. A publisher it accepts passes
// ValidatePublisher.
func ValidateClientPublisher(clientRegisterID string, p *registryv1.Publisher) error {
	if p == nil {
		return invalid("publisher is nil")
	}
	if err := ValidateRegisterID(clientRegisterID); err != nil {
		return err
	}
	if n := len(p.GetRegisterId()); n > MaxStoredRegisterIDBytes {
		return tooLarge("register_id is %d bytes with its owner, at most %d allowed", n, MaxStoredRegisterIDBytes)
	}
	if _, _, _, err := ParseDataInfoID(p.GetDataInfoId()); err != nil {
		return err
	}
	return checkPublisherRest(p)
}

// checkPublisherRest checks what follows a publisher's ids: its session_id,
// zone and conn_id, and its values.
func checkPublisherRest(p *registryv1.Publisher) error {
	if err := checkString("session_id", p.GetSessionId(), MaxSessionIDBytes, false); err != nil {
		return err
	}
	if err := checkString("zone", p.GetZone(), MaxZoneBytes, true); err != nil {
		return err
	}
	if err := checkString("conn_id", p.GetConnId(), MaxConnIDBytes, true); err != nil {
		return err
	}
	return ValidateValues(p.GetValues())
}

// ValidateValues checks a publisher's values: at most MaxValues, each at
// most MaxValueBytes, together at most MaxPublisherBytes. The error wraps
// ErrTooLarge. It reads only lengths, so a server can apply it to a frame
// as soon as it arrives.
func ValidateValues(vals [][]byte) error {
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
func ValidateRegisterID(id string) error { return ValidateID("register_id", id) }

// ValidateID checks an ID a client makes up (a register ID, a client ID):
// 1..MaxRegisterIDBytes bytes of printable UTF-8 without spaces. The error
// names field and wraps ErrTooLarge (too long) or ErrInvalid (anything
// else), so one rule gives one gRPC code wherever it is applied.
func ValidateID(field, id string) error { return checkIDChars(field, id, MaxRegisterIDBytes) }

// checkRegisterID checks a register ID as stored (maybe owner-qualified).
func checkRegisterID(id string) error {
	return checkIDChars("register_id", id, MaxStoredRegisterIDBytes)
}

func checkIDChars(field, id string, max int) error {
	if err := checkString(field, id, max, false); err != nil {
		return err
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return invalid("%s %q has a space or control character", field, id)
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
