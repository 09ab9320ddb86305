package session

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/slot"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestPublishers_InternsKeysAndOrigins_ForgetsTheLastOne: every stored
// publication of a key shares one copy of its data info ID, those of one
// connection share one origin, and the table forgets a key and an origin
// once nothing of them is stored.
func TestPublishers_InternsKeysAndOrigins_ForgetsTheLastOne(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	ps := newPublishers(clk)
	o, _ := newOwners(10).acquire("alice", 10)
	reserve := func(int) error { o.reserve(1 << 20); return nil }
	fresh := func(s string) string { return string([]byte(s)) } // a copy of its own each time
	mk := func(reg string) *registryv1.Publisher {
		return &registryv1.Publisher{DataInfoId: fresh("com.example.svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"), RegisterId: reg,
			ClientVersion: 1, RegisterTimestamp: 1, Zone: fresh("z1"), SessionId: "sess-1", ConnId: fresh("c1")}
	}
	a, b := mk("r1"), mk("r2")
	for _, p := range []*registryv1.Publisher{a, b} {
		if _, err := ps.put(p, 3, "alice c", o, reserve); err != nil {
			t.Fatal(err)
		}
	}
	ea, eb := ps.byKey[pubKey{a.GetDataInfoId(), "r1"}], ps.byKey[pubKey{b.GetDataInfoId(), "r2"}]
	if unsafe.StringData(ea.key) != unsafe.StringData(eb.key) || unsafe.StringData(a.GetDataInfoId()) != unsafe.StringData(b.GetDataInfoId()) {
		t.Fatal("two publications of one key hold two copies of it (stored, or as forwarded)")
	}
	if ea.origin != eb.origin {
		t.Fatal("two publications of one connection hold two origins")
	}
	if gone := ps.removeOwn(pubKey{a.GetDataInfoId(), "r1"}, "alice c"); gone != ea {
		t.Fatalf("removeOwn returned %p, want the stored entry %p", gone, ea)
	}
	if n := ps.keys.m[eb.key].n; n != 1 {
		t.Fatalf("after one removal the key counts %d holders, want 1", n)
	}
	ps.removeOwn(pubKey{b.GetDataInfoId(), "r2"}, "alice c")
	if ps.keys.len() != 0 || ps.origins.len() != 0 || len(ps.holders) != 0 || len(ps.slots) != 0 {
		t.Fatalf("after the last removal: %d keys, %d origins, %d holders, %d slots left, want none",
			ps.keys.len(), ps.origins.len(), len(ps.holders), len(ps.slots))
	}
	if o.held.Load() != 0 {
		t.Fatalf("the owner still counts %d publications", o.held.Load())
	}
}

// TestPublishers_ValuesPackedInOneAllocation_ComeBackAsStored: an entry
// keeps its values in one allocation, and the record built from it (what
// anti-entropy sends) has them back as they came, empty ones and none too.
func TestPublishers_ValuesPackedInOneAllocation_ComeBackAsStored(t *testing.T) {
	for _, vs := range [][][]byte{nil, {{}}, {[]byte("a")}, {[]byte("a"), {}, bytes.Repeat([]byte{7}, 300)}, {bytes.Repeat([]byte{1}, 1<<20)}} {
		packed := packValues(vs)
		want := 0
		for _, v := range vs {
			want += len(binary.AppendUvarint(nil, uint64(len(v)))) + len(v)
		}
		if cap(packed) != want {
			t.Fatalf("%d values packed into a buffer of %d bytes, want exactly %d", len(vs), cap(packed), want)
		}
		got := unpackValues(packed)
		if len(got) != len(vs) {
			t.Fatalf("%d values came back as %d", len(vs), len(got))
		}
		for i := range vs {
			if !bytes.Equal(got[i], vs[i]) {
				t.Fatalf("value %d of %d came back as %d bytes, want %d", i, len(vs), len(got[i]), len(vs[i]))
			}
		}
	}
}

// TestPublishers_Model_ListsAndCountsFollowEveryChange drives the
// registry through random puts, updates, refusals and removals (one
// client's, all of a client's) and checks it against a plain model after
// every step: each slot's list and digest, each client's count, and every
// entry's places in its two lists.
func TestPublishers_Model_ListsAndCountsFollowEveryChange(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	ps := newPublishers(clk)
	o, _ := newOwners(10).acquire("alice", 1<<20)
	reserve := func(int) error { o.reserve(1 << 20); return nil }
	model := map[pubKey]modelPub{}
	rng := rand.New(rand.NewPCG(1, 2))
	clients := []string{"alice a", "alice b", "alice c"}
	for step := range 5000 {
		clk.Advance(time.Microsecond)
		k := pubKey{fmt.Sprintf("svc%d", rng.IntN(7)), fmt.Sprintf("r%d", rng.IntN(40))}
		sl := slot.ID(len(k.key)+int(k.key[3])) % 4 // a key's slot is fixed, as its hash's
		client := clients[rng.IntN(len(clients))]
		switch op := rng.IntN(10); {
		case op < 6:
			old, held := model[k]
			v := uint64(1)
			if held {
				v = old.version + uint64(rng.IntN(2)) // sometimes equal: a newer stamp still wins
			}
			val := fmt.Sprintf("v%d", step)
			p := &registryv1.Publisher{DataInfoId: k.key, RegisterId: k.registerID, ClientVersion: v, Values: [][]byte{[]byte(val)},
				SessionId: "sess-1", ConnId: client}
			stored, err := ps.put(p, sl, client, o, reserve)
			switch {
			case held && old.client != client:
				if err != errTaken {
					t.Fatalf("step %d: put of another client's publication: %v, want errTaken", step, err)
				}
			case err != nil || !stored:
				t.Fatalf("step %d: put = %v, %v, want stored", step, stored, err)
			default:
				model[k] = modelPub{client: client, slot: sl, version: v, value: val}
			}
		case op < 9:
			e := ps.removeOwn(k, client)
			if m, held := model[k]; held && m.client == client {
				if e == nil {
					t.Fatalf("step %d: removeOwn of a held publication found nothing", step)
				}
				delete(model, k)
			} else if e != nil {
				t.Fatalf("step %d: removeOwn removed what the client does not hold", step)
			}
		default:
			gone := ps.removeClient(client)
			n := 0
			for mk, m := range model {
				if m.client == client {
					delete(model, mk)
					n++
				}
			}
			if len(gone) != n {
				t.Fatalf("step %d: removeClient removed %d, the client held %d", step, len(gone), n)
			}
		}
		checkAgainstModel(t, step, ps, model)
	}
	if o.held.Load() != int64(len(model)) {
		t.Fatalf("the owner counts %d publications, the model holds %d", o.held.Load(), len(model))
	}
}

// modelPub is what the model holds of a publication.
type modelPub struct {
	client  string
	slot    slot.ID
	version uint64
	value   string
}

// checkAgainstModel compares ps with the model's publications.
func checkAgainstModel(t *testing.T, step int, ps *publishers, model map[pubKey]modelPub) {
	t.Helper()
	perSlot, perClient, total := map[slot.ID]int{}, map[string]int{}, 0
	for k, m := range model {
		client, sl, version, value := m.client, m.slot, m.version, m.value
		total++
		perSlot[sl]++
		perClient[client]++
		e := ps.byKey[k]
		if e == nil || e.holder.clientID != client || e.slot != sl || e.version != version {
			t.Fatalf("step %d: %v stored as %+v, want client %q slot %d version %d", step, k, e, client, sl, version)
		}
		if vs := unpackValues(e.values); len(vs) != 1 || string(vs[0]) != value {
			t.Fatalf("step %d: %v holds values %q, want %q", step, k, vs, value)
		}
		if ps.slots[sl].entries[e.slotAt] != e || e.holder.entries[e.holderAt] != e {
			t.Fatalf("step %d: %v is not where it says it is in its lists", step, k)
		}
	}
	if ps.count() != total || len(ps.slots) != len(perSlot) || len(ps.holders) != len(perClient) {
		t.Fatalf("step %d: %d stored in %d slots for %d clients, want %d in %d for %d", step, ps.count(), len(ps.slots), len(ps.holders), total, len(perSlot), len(perClient))
	}
	for sl, n := range perSlot {
		list, _ := ps.inSlot(sl)
		if len(list) != n || ps.digestOf(sl).Count != uint32(n) {
			t.Fatalf("step %d: slot %d lists %d, digest counts %d, want %d", step, sl, len(list), ps.digestOf(sl).Count, n)
		}
	}
	for client, n := range perClient {
		if got := ps.ofClientCount(client); got != n {
			t.Fatalf("step %d: %s holds %d, want %d", step, client, got, n)
		}
	}
}
