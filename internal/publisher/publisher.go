// Package publisher holds the rules for publisher records as session and
// data nodes store them: register IDs qualified by their owners, the
// checks of a stored publisher and of an unpublish, which of two
// registrations is newer, and the order-independent digest both tiers
// compute for anti-entropy. What a client may send (the dataInfoID, the
// limits, the checks of values and IDs) is pkg/client/record, which the
// SDK checks with too; this package builds on it.
//
// Everything here is pure: no I/O, no goroutines, no clock. Functions are
// safe for concurrent use; a Digest value is not (it is a plain struct that
// its owner guards).
package publisher

import (
	"strings"

	"github.com/strata-registry/strata/pkg/client/record"
)

// Limits on the fields that sessions set on the publishers they store.
const (
	// MaxOwnerBytes bounds the owner part of a stored register ID (an
	// identity's name; see Owned).
	MaxOwnerBytes = 128
	// MaxStoredRegisterIDBytes bounds a register ID as sessions store it
	// on data nodes: the client's, qualified by its owner.
	MaxStoredRegisterIDBytes = MaxOwnerBytes + 1 + record.MaxRegisterIDBytes
	// MaxSessionIDBytes bounds a session process ID.
	MaxSessionIDBytes = 256
	// MaxConnIDBytes bounds a client connection ID.
	MaxConnIDBytes = 256
)

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
