package session

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// BenchmarkPublishers_BytesPerPublisher measures the heap a session's
// publication table holds per publisher: 100,000 publishers with a
// 100-byte value over 1,000 data info IDs of ~60 bytes, UUID register IDs
// qualified by an identity, 50 client connections, zone "z1" (the shape
// of make bench-scale's storm). B/publisher is what the table (entries,
// indexes, interned keys and origins) holds once they are stored, the
// publication records they came in as gone. Run it with -benchtime=1x:
// each iteration builds the whole table.
func BenchmarkPublishers_BytesPerPublisher(b *testing.B) {
	const (
		pubs, keys, conns, valueBytes = 100_000, 1_000, 50, 100
		identity                      = "bench-client"
	)
	rng := rand.New(rand.NewPCG(1, 1))
	hasher, err := slot.NewHasher(slot.DefaultCount)
	if err != nil {
		b.Fatal(err)
	}
	keyIDs := make([]string, keys)
	for i := range keyIDs {
		keyIDs[i] = record.DataInfoID(fmt.Sprintf("com.example.svc%05d:1.0", i), "", "")
	}
	connIDs := make([]string, conns)
	for i := range connIDs {
		connIDs[i] = newConnID()
	}
	var perPub float64
	for b.Loop() {
		o, _ := newOwners(10).acquire(identity, pubs)
		reserve := func(int) error { o.reserve(pubs); return nil }
		before := heapInUse()
		ps := newPublishers(clock.NewFake(time.Unix(1_700_000_000, 0)))
		for i := range pubs {
			k, c := keyIDs[i%keys], i%conns
			// As a frame decodes: every string and value a copy of its own.
			p := &registryv1.Publisher{
				RegisterId: publisher.Owned(identity, benchRegisterID(rng)), DataInfoId: string([]byte(k)),
				ClientVersion: 1, Zone: "z1", Values: [][]byte{make([]byte, valueBytes)},
				SessionId: "sess-1", ConnId: connIDs[c],
			}
			if _, err := ps.put(p, hasher.Of(k), fmt.Sprintf("%s c%d", identity, c), o, reserve); err != nil {
				b.Fatal(err)
			}
		}
		if ps.count() != pubs {
			b.Fatalf("the table holds %d publishers, want %d", ps.count(), pubs)
		}
		perPub = float64(heapInUse()-before) / pubs
		runtime.KeepAlive(ps)
	}
	b.ReportMetric(perPub, "B/publisher")
}

// benchRegisterID is a random UUID, as the SDK makes register IDs.
func benchRegisterID(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// heapInUse is the live heap after two collections.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
