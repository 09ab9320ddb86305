// Package record holds the rules for publisher records that data and session
// nodes share: how a dataInfoID is built and parsed, the size limits and
// validation of what clients send, which of two registrations is newer, and
// the order-independent digest both tiers compute for anti-entropy.
//
// Everything here is pure: no I/O, no goroutines, no clock. Functions are
// safe for concurrent use; a Digest value is not (it is a plain struct that
// its owner guards).
package record

import "strings"

// Limits on what a client may register. Data and session nodes enforce the
// same numbers, so a record the session accepts is never refused by data.
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
	// MaxRegisterIDBytes bounds a register ID (a client-made UUID).
	MaxRegisterIDBytes = 128
	// MaxOwnerBytes bounds the owner part of a stored register ID (an
	// identity's name; see Owned).
	MaxOwnerBytes = 128
	// MaxStoredRegisterIDBytes bounds a register ID as sessions store it
	// on data nodes: the client's, qualified by its owner.
	MaxStoredRegisterIDBytes = MaxOwnerBytes + 1 + MaxRegisterIDBytes
	// MaxZoneBytes bounds a zone name.
	MaxZoneBytes = 64
	// MaxSessionIDBytes bounds a session process ID.
	MaxSessionIDBytes = 256
	// MaxConnIDBytes bounds a client connection ID.
	MaxConnIDBytes = 256
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
// DefaultGroup for empty parts. It does not validate; ParseDataInfoID and
// ValidatePublisher do.
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
		if err := checkString(limits[i].name, p, limits[i].max, false); err != nil {
			return "", "", "", err
		}
	}
	return parts[0], parts[1], parts[2], nil
}

// Owned returns the register ID that sessions store on data nodes for the
// publication registerID of owner (the publishing client identity's name):
// "owner/registerID". A publication is its owner's: another identity that
// registers the same register ID makes another publication, and cannot
// replace or remove this one. Without an owner (a cluster without
// authentication) it is registerID itself. Owner names hold no '/', so the
// first one splits.
func Owned(owner, registerID string) string {
	if owner == "" {
		return registerID
	}
	return owner + "/" + registerID
}

// ClientRegisterID returns the client's register ID within a stored one
// (what clients see as the publisher of a value); owned says the cluster
// qualifies register IDs with their owners.
func ClientRegisterID(stored string, owned bool) string {
	if !owned {
		return stored
	}
	if i := strings.IndexByte(stored, '/'); i >= 0 {
		return stored[i+1:]
	}
	return stored
}
