package data

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Shape of the memory benchmark: one data node holding every slot (as with
// a single data node, or the sum over a cluster's leaders).
const (
	benchPublishers = 100_000
	benchKeys       = 10_000 // ~10 publishers per dataInfoID
	benchSessions   = 8
	benchConns      = 5_000 // client connections, ~20 publishers each
	benchValueBytes = 100
	benchLogCap     = 1024 // ops kept per slot
)

func benchUUID(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkStore_BytesPerPublisher measures the heap a data node's stores
// hold per publisher with a 100-byte value: 100,000 publishers over 10,000
// dataInfoIDs of ~60 bytes in 256 slots, UUID register IDs, 8 sessions,
// 5,000 client connections, zone "z1".
//
// B/publisher is the store's contents (records, datums, interned owners,
// digests) after the op logs are reset; B/logged-op is what each op the
// bounded log keeps costs on top (at most logCap ops per slot, whatever the
// number of publishers). Run it with -benchtime=1x: each iteration builds
// the whole node.
func BenchmarkStore_BytesPerPublisher(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	hasher, err := slot.NewHasher(slot.DefaultCount)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, benchKeys)
	keySlot := make([]slot.ID, benchKeys)
	for i := range keys {
		// 62 bytes with the default instance ID and group.
		keys[i] = record.DataInfoID(fmt.Sprintf("com.example.svc%05d:1.0", i), "", "")
		keySlot[i] = hasher.Of(keys[i])
	}
	sessions := make([]string, benchSessions)
	for i := range sessions {
		sessions[i] = fmt.Sprintf("session-%d.strata.svc:9603/%s", i, benchUUID(rng))
	}
	conns := make([]string, benchConns)
	for i := range conns {
		conns[i] = fmt.Sprintf("10.%d.%d.%d:%d", i>>16&255, i>>8&255, i&255, 30000+i%20000)
	}
	b.Logf("dataInfoID example: %q (%d bytes)", keys[0], len(keys[0]))

	var perPub, perOp float64
	for b.Loop() {
		before := heapAlloc()
		stores := make([]*SlotStore, slot.DefaultCount)
		for i := range stores {
			stores[i] = NewSlotStore(slot.ID(i), benchLogCap)
			stores[i].SetLeaderEpoch(1)
		}
		value := make([]byte, benchValueBytes)
		for i := range benchPublishers {
			k := i % benchKeys
			c := rng.IntN(benchConns)
			p := &registryv1.Publisher{
				RegisterId:        benchUUID(rng),
				DataInfoId:        keys[k],
				ClientVersion:     1,
				RegisterTimestamp: int64(1_700_000_000_000_000_000 + i),
				Zone:              "z1",
				Values:            [][]byte{append([]byte(nil), value...)},
				SessionId:         sessions[c%benchSessions],
				ConnId:            conns[c],
			}
			stores[keySlot[k]].Apply([]*registryv1.Publisher{p}, nil)
		}
		withLogs := heapAlloc()
		logged := 0
		for _, s := range stores {
			logged += len(s.log)
			s.ResetLog()
		}
		withoutLogs := heapAlloc()
		pubs := 0
		for _, s := range stores {
			_, n := s.Stats()
			pubs += n
		}
		if pubs != benchPublishers {
			b.Fatalf("stores hold %d publishers, want %d", pubs, benchPublishers)
		}
		perPub = float64(withoutLogs-before) / float64(pubs)
		perOp = float64(withLogs-withoutLogs) / float64(max(logged, 1))
		runtime.KeepAlive(stores)
	}
	b.ReportMetric(perPub, "B/publisher")
	b.ReportMetric(perOp, "B/logged-op")
}

// BenchmarkStore_Apply measures the leader's write path, one put per call,
// over 10,000 keys and 100,000 register IDs in one slot with the log at its
// cap: first inserts, then updates with a changed value. Allocations include
// building the input message.
func BenchmarkStore_Apply(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = record.DataInfoID(fmt.Sprintf("com.example.svc%05d:1.0", i), "", "")
	}
	regs := make([]string, 10*benchKeys)
	for i := range regs {
		regs[i] = benchUUID(rng)
	}
	value := make([]byte, benchValueBytes)
	s := NewSlotStore(0, benchLogCap)
	s.SetLeaderEpoch(1)
	puts := make([]*registryv1.Publisher, 1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := i % len(regs)
		value[0] = byte(i) // an update that changes the value, not a versions-only one
		puts[0] = &registryv1.Publisher{
			RegisterId:        regs[r],
			DataInfoId:        keys[r%benchKeys],
			ClientVersion:     uint64(i/len(regs) + 1),
			RegisterTimestamp: int64(i),
			Zone:              "z1",
			Values:            [][]byte{value},
			SessionId:         "session-1",
			ConnId:            "conn-1",
		}
		s.Apply(puts, nil)
	}
}
