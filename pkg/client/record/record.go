// Package record holds the rules for publisher records that the SDK and
// the servers share: how a dataInfoID is built and parsed, the limits on
// what a client registers, and the validation of what it sends. The SDK
// checks a request with them before sending it, so a request it sends is
// never refused for its size or shape; session and data nodes check every
// request at their edge with the same functions.
//
// Everything here is pure: no I/O, no goroutines, no clock, and safe for
// concurrent use.
package record

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what a client may register. The SDK, session and data nodes
// enforce the same numbers, so a record the SDK sends is never refused by
// a session, nor one a session accepts by data.
const (
	// MaxDataIDBytes bounds the data ID part of a dataInfoID (UTF-8 bytes).
	MaxDataIDBytes = 512
	// MaxInstanceIDBytes and MaxGroupBytes bound the other two parts, so a
	// dataInfoID is at most MaxDataInfoIDBytes long.
	MaxInstanceIDBytes = 128
	MaxGroupBytes      = 128
	// MaxDataInfoIDBytes is the longest well-formed dataInfoID.
	MaxDataInfoIDBytes = MaxDataIDBytes + MaxInstanceIDBytes + MaxGroupBytes + 2*len(Separator)
	// MaxValueBytes bounds each value of a publisher (1 MiB).
	MaxValueBytes = 1 << 20
	// MaxValues bounds the number of values of one publisher.
	MaxValues = 64
	// MaxPublisherBytes bounds the values of one publisher together (4 MiB),
	// so a publisher always fits the messages that carry it.
	MaxPublisherBytes = 4 << 20
	// MaxRegisterIDBytes bounds a register ID (a client-made UUID) and
	// every other ID a client makes up (its client ID).
	MaxRegisterIDBytes = 128
	// MaxZoneBytes bounds a zone name.
	MaxZoneBytes = 64
)

// Parts of a dataInfoID, as in SOFARegistry.
const (
	// DefaultInstanceID is used when a client gives no instance ID.
	DefaultInstanceID = "DEFAULT_INSTANCE_ID"
	// DefaultGroup is used when a client gives no group.
	DefaultGroup = "DEFAULT_GROUP"
	// Separator joins dataID, instanceID and group.
	Separator = "#@#"
)

// DataInfoID returns dataID#@#instanceID#@#group, with DefaultInstanceID and
// DefaultGroup for empty parts. It does not validate; ParseDataInfoID does.
func DataInfoID(dataID, instanceID, group string) string {
	if instanceID == "" {
		instanceID = DefaultInstanceID
	}
	if group == "" {
		group = DefaultGroup
	}
	return dataID + Separator + instanceID + Separator + group
}

// ParseDataInfoID splits a dataInfoID into its three parts and checks them:
// exactly three non-empty parts, valid UTF-8, each within its limit. The
// error wraps ErrTooLarge for a part over its limit and ErrInvalid otherwise.
func ParseDataInfoID(s string) (dataID, instanceID, group string, err error) {
	if s == "" {
		return "", "", "", invalid("data_info_id is empty")
	}
	if len(s) > MaxDataInfoIDBytes {
		// Cheap guard before splitting something huge; the exact per-part
		// limits are checked below.
		return "", "", "", tooLarge("data_info_id is %d bytes, at most %d allowed", len(s), MaxDataInfoIDBytes)
	}
	parts := strings.Split(s, Separator)
	if len(parts) != 3 {
		return "", "", "", invalid("data_info_id %.64q has %d parts, want dataID%sinstanceID%sgroup", s, len(parts), Separator, Separator)
	}
	limits := [3]struct {
		name string
		max  int
	}{{"data ID", MaxDataIDBytes}, {"instance ID", MaxInstanceIDBytes}, {"group", MaxGroupBytes}}
	for i, p := range parts {
		if err := ValidateString(limits[i].name, p, limits[i].max, false); err != nil {
			return "", "", "", err
		}
	}
	return parts[0], parts[1], parts[2], nil
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

// ValidateRegisterID checks a register ID as a client sends it: 1..128
// bytes of printable UTF-8 without spaces. The error wraps ErrTooLarge or
// ErrInvalid.
func ValidateRegisterID(id string) error { return ValidateID("register_id", id, MaxRegisterIDBytes) }

// ValidateID checks an ID (a register ID, a client ID): 1..max bytes of
// printable UTF-8 without spaces. The error names field and wraps
// ErrTooLarge (too long) or ErrInvalid (anything else), so one rule gives
// one gRPC code wherever it is applied. IDs a client makes up are at most
// MaxRegisterIDBytes long.
func ValidateID(field, id string, max int) error {
	if err := ValidateString(field, id, max, false); err != nil {
		return err
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return invalid("%s %q has a space or control character", field, id)
		}
	}
	return nil
}

// ValidateString checks a string field of a record: valid UTF-8 of at
// most max bytes, and non-empty unless optional. The error names field and
// wraps ErrTooLarge (too long) or ErrInvalid.
func ValidateString(field, s string, max int, optional bool) error {
	if s == "" {
		if optional {
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
