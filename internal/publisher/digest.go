package publisher

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Newer reports whether registration a, (aVersion, aTS), is strictly newer
// than b: a higher client version, or the same client version with a later
// register timestamp. Equal is not newer, so a replayed registration changes
// nothing.
func Newer(aVersion uint64, aTS int64, bVersion uint64, bTS int64) bool {
	if aVersion != bVersion {
		return aVersion > bVersion
	}
	return aTS > bTS
}

// Digest summarises a set of registrations (register ID, client version,
// register timestamp) as a count and the sum of a 64-bit hash of each
// triple. The sum is order-independent and invertible, so a data node keeps
// it up to date with Add and Remove while a session computes it from scratch,
// and both compare equal exactly when (barring hash collisions) the sets are
// equal. The zero Digest is the empty set. Not safe for concurrent use.
type Digest struct {
	Count uint32
	Hash  uint64
}

// Add puts one registration into the digest.
func (d *Digest) Add(registerID string, clientVersion uint64, ts int64) {
	d.Count++
	d.Hash += itemHash(registerID, clientVersion, ts)
}

// Remove takes one registration, previously added, out of the digest.
func (d *Digest) Remove(registerID string, clientVersion uint64, ts int64) {
	d.Count--
	d.Hash -= itemHash(registerID, clientVersion, ts)
}

// itemHash hashes registerID followed by the two fixed-width numbers; the
// fixed-width suffix makes the encoding unambiguous.
func itemHash(registerID string, clientVersion uint64, ts int64) uint64 {
	var h xxhash.Digest
	h.Reset()
	_, _ = h.WriteString(registerID)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], clientVersion)
	binary.BigEndian.PutUint64(b[8:], uint64(ts))
	_, _ = h.Write(b[:])
	return h.Sum64()
}
