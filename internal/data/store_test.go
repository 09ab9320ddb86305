package data

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

var (
	keyA = record.DataInfoID("com.example.A", "", "")
	keyB = record.DataInfoID("com.example.B", "", "")
)

func testPub(key, regID string, cv uint64, ts int64, session string, vals ...string) *registryv1.Publisher {
	p := &registryv1.Publisher{
		RegisterId: regID, DataInfoId: key, ClientVersion: cv, RegisterTimestamp: ts,
		Zone: "z1", SessionId: session, ConnId: "conn-" + session,
	}
	for _, v := range vals {
		p.Values = append(p.Values, []byte(v))
	}
	return p
}

func testUnpub(key, regID string, cv uint64, ts int64) *registryv1.Unpublish {
	return &registryv1.Unpublish{DataInfoId: key, RegisterId: regID, ClientVersion: cv, RegisterTimestamp: ts}
}

func versionOf(t *testing.T, vs []*registryv1.DatumVersion, key string) uint64 {
	t.Helper()
	for _, v := range vs {
		if v.GetDataInfoId() == key {
			return v.GetVersion()
		}
	}
	t.Fatalf("no version for %q in %v", key, vs)
	return 0
}

func onlyPublisher(t *testing.T, s *SlotStore, key string) *registryv1.Publisher {
	t.Helper()
	d := s.Get(key)
	if d == nil || len(d.Publishers) != 1 {
		t.Fatalf("Get(%q) = %v, want one publisher", key, d)
	}
	return d.Publishers[0]
}

func TestSlotStore_PutRules(t *testing.T) {
	// Every case starts from r1 stored at (client version 2, timestamp 5),
	// session s1, conn conn-s1, zone z1, value "v".
	tests := []struct {
		name     string
		put      *registryv1.Publisher
		applied  bool // the stored record becomes put
		bumpsVer bool // the datum version changes
	}{
		{"higher client version", testPub(keyA, "r1", 3, 1, "s1", "v2"), true, true},
		{"same client version, later timestamp", testPub(keyA, "r1", 2, 6, "s1", "v2"), true, true},
		{"equal versions ignored", testPub(keyA, "r1", 2, 5, "s1", "v2"), false, false},
		{"older client version ignored", testPub(keyA, "r1", 1, 99, "s1", "v2"), false, false},
		{"same version, older timestamp ignored", testPub(keyA, "r1", 2, 4, "s1", "v2"), false, false},
		{"newer and identical: versions only", testPub(keyA, "r1", 3, 6, "s1", "v"), true, false},
		{"newer, other session", testPub(keyA, "r1", 3, 6, "s2", "v"), true, true},
		{"newer, other values count", testPub(keyA, "r1", 3, 6, "s1", "v", "w"), true, true},
		{"newer, no values", testPub(keyA, "r1", 3, 6, "s1"), true, true},
		{"newer, other conn", func() *registryv1.Publisher {
			p := testPub(keyA, "r1", 3, 6, "s1", "v")
			p.ConnId = "other"
			return p
		}(), true, true},
		{"newer, other zone", func() *registryv1.Publisher {
			p := testPub(keyA, "r1", 3, 6, "s1", "v")
			p.Zone = "z2"
			return p
		}(), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSlotStore(1, 16)
			v0 := versionOf(t, s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 2, 5, "s1", "v")}, nil), keyA)
			seq0 := s.Seq()
			v1 := versionOf(t, s.Apply([]*registryv1.Publisher{tt.put}, nil), keyA)
			if got := v1 != v0; got != tt.bumpsVer {
				t.Errorf("version %d -> %d, bump = %v, want %v", v0, v1, got, tt.bumpsVer)
			}
			if v1 < v0 {
				t.Errorf("version went back: %d -> %d", v0, v1)
			}
			if s.Version(keyA) != v1 {
				t.Errorf("Version = %d, Apply returned %d", s.Version(keyA), v1)
			}
			got := onlyPublisher(t, s, keyA)
			want := testPub(keyA, "r1", 2, 5, "s1", "v")
			if tt.applied {
				want = tt.put
			}
			if !proto.Equal(got, want) {
				t.Errorf("stored %v, want %v", got, want)
			}
			// An applied put is an op (even one that only updates versions: a
			// follower needs them); an ignored one is not.
			if ops := s.Seq() - seq0; (ops == 1) != tt.applied || ops > 1 {
				t.Errorf("%d ops appended, applied = %v", ops, tt.applied)
			}
		})
	}
}

func TestSlotStore_DeleteRules(t *testing.T) {
	// r1 stored at (2, 5) next to r2, so the datum survives the delete.
	tests := []struct {
		name    string
		del     *registryv1.Unpublish
		removed bool
	}{
		{"stored newer by client version", testUnpub(keyA, "r1", 1, 99), false},
		{"stored newer by timestamp", testUnpub(keyA, "r1", 2, 4), false},
		{"equal removes", testUnpub(keyA, "r1", 2, 5), true},
		{"later timestamp removes", testUnpub(keyA, "r1", 2, 6), true},
		{"higher client version removes", testUnpub(keyA, "r1", 3, 0), true},
		{"unknown register id", testUnpub(keyA, "r9", 9, 9), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSlotStore(1, 16)
			v0 := versionOf(t, s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 2, 5, "s1", "v"), testPub(keyA, "r2", 1, 1, "s1", "v")}, nil), keyA)
			seq0 := s.Seq()
			v1 := versionOf(t, s.Apply(nil, []*registryv1.Unpublish{tt.del}), keyA)
			d := s.Get(keyA)
			has := slices.ContainsFunc(d.GetPublishers(), func(p *registryv1.Publisher) bool { return p.RegisterId == "r1" })
			if has == tt.removed {
				t.Errorf("r1 present = %v, want removed = %v", has, tt.removed)
			}
			if (v1 > v0) != tt.removed || v1 < v0 {
				t.Errorf("version %d -> %d, removed = %v", v0, v1, tt.removed)
			}
			if ops := s.Seq() - seq0; (ops == 1) != tt.removed || ops > 1 {
				t.Errorf("%d ops appended, removed = %v", ops, tt.removed)
			}
		})
	}
}

func TestSlotStore_Apply_ReturnsEveryKeyInOrder(t *testing.T) {
	s := NewSlotStore(1, 16)
	s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 5, 5, "s1", "a")}, nil)
	vA := s.Version(keyA)
	keyC := record.DataInfoID("C", "", "")
	got := s.Apply(
		[]*registryv1.Publisher{
			testPub(keyB, "r1", 1, 1, "s1", "b"),
			testPub(keyA, "r1", 1, 1, "s1", "old"), // ignored: stored is newer
			nil,                                    // skipped
			{DataInfoId: keyA},                     // no register ID: skipped
			testPub(keyB, "r2", 1, 1, "s1", "b"),
		},
		[]*registryv1.Unpublish{testUnpub(keyC, "r1", 1, 1), nil})
	want := []*registryv1.DatumVersion{
		{DataInfoId: keyB, Version: s.Version(keyB)},
		{DataInfoId: keyA, Version: vA},
		{DataInfoId: keyC, Version: 0},
	}
	if !slices.EqualFunc(got, want, func(a, b *registryv1.DatumVersion) bool { return proto.Equal(a, b) }) {
		t.Fatalf("Apply returned %v, want %v", got, want)
	}
	if s.Version(keyB) <= vA {
		t.Errorf("B's version %d not above earlier version %d", s.Version(keyB), vA)
	}
	if datums, pubs := s.Stats(); datums != 2 || pubs != 3 {
		t.Errorf("Stats = %d datums, %d publishers; want 2, 3", datums, pubs)
	}
	if keys := s.Keys(); !slices.Equal(keys, []string{keyA, keyB}) {
		t.Errorf("Keys = %v", keys)
	}
}

func TestSlotStore_DeletedAndRecreated_GetsHigherVersion(t *testing.T) {
	s := NewSlotStore(1, 16)
	v1 := versionOf(t, s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 1, 1, "s1", "v")}, nil), keyA)
	// Other keys move the slot-wide counter meanwhile; irrelevant to A.
	vDel := versionOf(t, s.Apply(nil, []*registryv1.Unpublish{testUnpub(keyA, "r1", 1, 1)}), keyA)
	if vDel <= v1 {
		t.Fatalf("deletion version %d not above %d", vDel, v1)
	}
	// Gone, but readers see the version that emptied it, as the notice said.
	if s.Get(keyA) != nil || s.Version(keyA) != vDel {
		t.Fatalf("emptied datum: %v, version %d, want none at version %d", s.Get(keyA), s.Version(keyA), vDel)
	}
	if d, _ := s.Stats(); d != 0 {
		t.Fatalf("%d datums after deleting the only one", d)
	}
	// The same registration at the same version stays deleted (tombstone);
	// a newer one re-creates the datum.
	v2 := versionOf(t, s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 2, 1, "s1", "v")}, nil), keyA)
	if v2 <= vDel {
		t.Fatalf("re-created datum has version %d, not above deletion %d", v2, vDel)
	}
	// Deleted and re-created within one batch: the batch reports the datum.
	s.Apply([]*registryv1.Publisher{testPub(keyB, "r1", 1, 1, "s1", "v")}, nil)
	vs := s.Apply(nil, []*registryv1.Unpublish{testUnpub(keyB, "r1", 1, 1)})
	vs2 := s.Apply([]*registryv1.Publisher{testPub(keyB, "r1", 2, 1, "s1", "v")}, nil)
	if versionOf(t, vs2, keyB) <= versionOf(t, vs, keyB) {
		t.Fatalf("B re-created at %v after deletion at %v", vs2, vs)
	}
}

func TestSlotStore_VersionLayout(t *testing.T) {
	s := NewSlotStore(1, 16)
	s.SetLeaderEpoch(3)
	v := versionOf(t, s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 1, 1, "s1")}, nil), keyA)
	if want := uint64(3)<<VersionEpochShift | 1; v != want {
		t.Fatalf("first version at epoch 3 = %#x, want %#x", v, want)
	}
	v2 := versionOf(t, s.Apply([]*registryv1.Publisher{testPub(keyB, "r1", 1, 1, "s1")}, nil), keyB)
	if v2 != v+1 {
		t.Fatalf("next version %#x, want %#x", v2, v+1)
	}
	// An epoch that does not grow never makes versions go back.
	s.SetLeaderEpoch(1)
	v3 := versionOf(t, s.Apply([]*registryv1.Publisher{testPub(keyB, "r2", 1, 1, "s1")}, nil), keyB)
	if v3 <= v2 {
		t.Fatalf("version %#x after a lower epoch, not above %#x", v3, v2)
	}
}

// TestSlotStore_LeaderChange_VersionsKeepIncreasing simulates a failover: B
// takes A's data (complete or lagging) and leads at a higher epoch; every
// version B hands out is above every version A did.
func TestSlotStore_LeaderChange_VersionsKeepIncreasing(t *testing.T) {
	for _, lagging := range []bool{false, true} {
		t.Run(fmt.Sprintf("lagging=%v", lagging), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			a := NewSlotStore(1, 1<<12)
			a.SetLeaderEpoch(1)
			var early *registryv1.SlotSnapshot
			var maxA uint64
			for i := range 300 {
				for _, v := range randomBatch(rng, a) {
					maxA = max(maxA, v.GetVersion())
				}
				if i == 100 {
					early = a.Snapshot()
				}
			}
			snap := a.Snapshot()
			if lagging {
				snap = early
			}
			b := NewSlotStore(1, 1<<12)
			b.Restore(snap)
			b.ResetLog()
			// The next leader epoch is above every epoch A led at (random
			// batches bump A's now and then).
			a.mu.RLock()
			next := a.epoch + 1
			a.mu.RUnlock()
			b.SetLeaderEpoch(next)
			for _, key := range testKeys {
				vs := b.Apply([]*registryv1.Publisher{testPub(key, "new", 1, 1, "s9", "x")}, nil)
				if v := versionOf(t, vs, key); v <= maxA {
					t.Fatalf("B wrote %s at version %#x, A reached %#x", key, v, maxA)
				}
			}
			if _, ok := b.OpsAfter(0, 0); !ok {
				t.Fatal("B's log after ResetLog does not start at seq 0")
			}
		})
	}
}

var (
	testKeys     = makeKeys(12)
	testRegs     = []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"}
	testSessions = []string{"s0", "s1", "s2", "s3"}
	testValues   = []string{"", "a", "b", "10.0.0.1:80"}
)

func makeKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = record.DataInfoID(fmt.Sprintf("svc-%d", i), "", "")
	}
	return keys
}

// randomBatch applies one random write to s: a batch of puts and deletes
// over few keys, register IDs, versions and values (so every rule fires:
// newer, older, equal, identical), now and then a session's removal or an
// epoch change. It returns what the write returned.
func randomBatch(rng *rand.Rand, s *SlotStore) []*registryv1.DatumVersion {
	switch rng.IntN(40) {
	case 0:
		return s.RemoveSession(testSessions[rng.IntN(len(testSessions))])
	case 1:
		s.mu.RLock()
		e := s.epoch
		s.mu.RUnlock()
		s.SetLeaderEpoch(e + 1)
		return nil
	}
	var puts []*registryv1.Publisher
	var dels []*registryv1.Unpublish
	for range rng.IntN(4) + 1 {
		key := testKeys[rng.IntN(len(testKeys))]
		reg := testRegs[rng.IntN(len(testRegs))]
		cv, ts := rng.Uint64N(6), rng.Int64N(4)
		if rng.IntN(4) == 0 {
			dels = append(dels, testUnpub(key, reg, cv, ts))
			continue
		}
		var vals []string
		for range rng.IntN(3) {
			vals = append(vals, testValues[rng.IntN(len(testValues))])
		}
		puts = append(puts, testPub(key, reg, cv, ts, testSessions[rng.IntN(len(testSessions))], vals...))
	}
	return s.Apply(puts, dels)
}

func checkSameState(t *testing.T, leader, follower *SlotStore) {
	t.Helper()
	ls, fs := leader.Snapshot(), follower.Snapshot()
	if !proto.Equal(ls, fs) {
		t.Fatalf("follower snapshot differs from leader's:\nleader   %v\nfollower %v", ls, fs)
	}
	ld, fd := leader.Digests(), follower.Digests()
	if !slices.EqualFunc(ld, fd, func(a, b *registryv1.SessionDigest) bool { return proto.Equal(a, b) }) {
		t.Fatalf("digests differ: leader %v, follower %v", ld, fd)
	}
	ln, lp := leader.Stats()
	fn, fp := follower.Stats()
	if ln != fn || lp != fp {
		t.Fatalf("stats differ: leader %d/%d, follower %d/%d", ln, lp, fn, fp)
	}
}

func TestSlotStore_FollowerReplay_MatchesLeader(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	leader := NewSlotStore(3, 1<<14)
	leader.SetLeaderEpoch(1)
	last := map[string]uint64{}
	for range 2000 {
		for _, v := range randomBatch(rng, leader) {
			if v.GetVersion() != 0 && v.GetVersion() < last[v.GetDataInfoId()] {
				t.Fatalf("%s went back from %d to %d", v.GetDataInfoId(), last[v.GetDataInfoId()], v.GetVersion())
			}
			last[v.GetDataInfoId()] = max(last[v.GetDataInfoId()], v.GetVersion())
		}
	}
	if _, pubs := leader.Stats(); pubs == 0 {
		t.Fatal("random ops left nothing to compare")
	}
	follower := NewSlotStore(3, 1<<14)
	// Replay in pages, as a replication stream would.
	for {
		ops, ok := leader.OpsAfter(follower.Seq(), 97)
		if !ok {
			t.Fatalf("leader's log lost ops after %d", follower.Seq())
		}
		if len(ops) == 0 {
			break
		}
		for _, op := range ops {
			if err := follower.ApplyOp(op); err != nil {
				t.Fatalf("ApplyOp(seq %d): %v", op.GetSeq(), err)
			}
		}
	}
	if follower.Seq() != leader.Seq() {
		t.Fatalf("follower at seq %d, leader at %d", follower.Seq(), leader.Seq())
	}
	checkSameState(t, leader, follower)
	// The follower's own log matches the leader's, so it could serve it.
	lo, _ := leader.OpsAfter(0, 0)
	fo, _ := follower.OpsAfter(0, 0)
	if !slices.EqualFunc(lo, fo, func(a, b *registryv1.ReplicateOp) bool { return proto.Equal(a, b) }) {
		t.Fatal("follower's op log differs from the leader's")
	}
}

func TestSlotStore_ApplyOp_Refuses(t *testing.T) {
	leader := NewSlotStore(1, 16)
	leader.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 1, 1, "s1", "v"), testPub(keyA, "r2", 1, 1, "s1", "v")}, nil)
	ops, _ := leader.OpsAfter(0, 0)
	if len(ops) != 2 {
		t.Fatalf("%d ops, want 2", len(ops))
	}
	tests := []struct {
		name string
		op   *registryv1.ReplicateOp
		want error
	}{
		{"gap", ops[1], ErrOpOutOfOrder},
		{"nil", nil, ErrBadOp},
		{"no key", &registryv1.ReplicateOp{Seq: 1, DeleteRegisterId: "r1"}, ErrBadOp},
		{"empty", &registryv1.ReplicateOp{Seq: 1, DataInfoId: keyA}, ErrBadOp},
		{"put and delete", &registryv1.ReplicateOp{Seq: 1, DataInfoId: keyA, Put: testPub(keyA, "r1", 1, 1, "s1"), DeleteRegisterId: "r1"}, ErrBadOp},
		{"put of other key", &registryv1.ReplicateOp{Seq: 1, DataInfoId: keyA, Put: testPub(keyB, "r1", 1, 1, "s1")}, ErrBadOp},
		{"put without register id", &registryv1.ReplicateOp{Seq: 1, DataInfoId: keyA, Put: testPub(keyA, "", 1, 1, "s1")}, ErrBadOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewSlotStore(1, 16)
			ch := f.Changed()
			if err := f.ApplyOp(tt.op); !errors.Is(err, tt.want) {
				t.Fatalf("ApplyOp = %v, want %v", err, tt.want)
			}
			if f.Seq() != 0 || f.Get(keyA) != nil {
				t.Fatalf("refused op changed the store: seq %d, %v", f.Seq(), f.Get(keyA))
			}
			select {
			case <-ch:
				t.Fatal("refused op fired Changed")
			default:
			}
		})
	}
	// In order works; the same op again (a duplicate) is refused.
	f := NewSlotStore(1, 16)
	if err := f.ApplyOp(ops[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.ApplyOp(ops[0]); !errors.Is(err, ErrOpOutOfOrder) {
		t.Fatalf("replayed op: %v, want ErrOpOutOfOrder", err)
	}
	if err := f.ApplyOp(ops[1]); err != nil {
		t.Fatal(err)
	}
	checkSameState(t, leader, f)
}

func TestSlotStore_OpsAfter_Ring(t *testing.T) {
	s := NewSlotStore(1, 4)
	for i := range 10 {
		s.Apply([]*registryv1.Publisher{testPub(keyA, fmt.Sprintf("r%d", i), 1, 1, "s1")}, nil)
	}
	seqs := func(ops []*registryv1.ReplicateOp) []uint64 {
		var out []uint64
		for _, op := range ops {
			out = append(out, op.GetSeq())
		}
		return out
	}
	tests := []struct {
		after  uint64
		limit  int
		want   []uint64
		wantOK bool
	}{
		{6, 0, []uint64{7, 8, 9, 10}, true}, // the whole ring
		{7, 0, []uint64{8, 9, 10}, true},
		{6, 2, []uint64{7, 8}, true},
		{9, 5, []uint64{10}, true},
		{10, 0, nil, true},  // up to date
		{5, 0, nil, false},  // op 6 fell out of the ring
		{0, 0, nil, false},  // from scratch: snapshot
		{11, 0, nil, false}, // beyond the log: another epoch's seq
	}
	for _, tt := range tests {
		ops, ok := s.OpsAfter(tt.after, tt.limit)
		if ok != tt.wantOK || !slices.Equal(seqs(ops), tt.want) {
			t.Errorf("OpsAfter(%d, %d) = %v, %v; want %v, %v", tt.after, tt.limit, seqs(ops), ok, tt.want, tt.wantOK)
		}
	}
	if len(s.log) > 4 {
		t.Errorf("log holds %d ops, cap 4", len(s.log))
	}

	none := NewSlotStore(1, 0)
	none.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 1, 1, "s1")}, nil)
	if _, ok := none.OpsAfter(0, 0); ok {
		t.Error("a store without a log claims to hold op 1")
	}
	if _, ok := none.OpsAfter(1, 0); !ok {
		t.Error("a store without a log refuses an up-to-date follower")
	}

	// A store that stops logging (a follower's) keeps its seq and drops
	// its ops; logging again, it logs from the next op on.
	s.SetLogCap(0)
	s.Apply([]*registryv1.Publisher{testPub(keyA, "r20", 1, 1, "s1")}, nil)
	if s.LogLen() != 0 || s.Seq() != 11 {
		t.Errorf("after SetLogCap(0) and one more op: log %d ops, seq %d; want 0, 11", s.LogLen(), s.Seq())
	}
	s.SetLogCap(4)
	s.Apply([]*registryv1.Publisher{testPub(keyA, "r21", 1, 1, "s1")}, nil)
	if ops, ok := s.OpsAfter(11, 0); !ok || !slices.Equal(seqs(ops), []uint64{12}) {
		t.Errorf("logging again: OpsAfter(11) = %v, %v; want [12], true", seqs(ops), ok)
	}
}

func TestSlotStore_SnapshotRestore_ThenOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	leader := NewSlotStore(2, 64)
	leader.SetLeaderEpoch(1)
	for range 500 {
		randomBatch(rng, leader)
	}
	if _, ok := leader.OpsAfter(0, 0); ok {
		t.Fatal("test needs the log to have wrapped")
	}
	snap := leader.Snapshot()
	if snap.GetSeq() != leader.Seq() {
		t.Fatalf("snapshot seq %d, store seq %d", snap.GetSeq(), leader.Seq())
	}
	follower := NewSlotStore(2, 64)
	// Old contents of the follower are replaced, not merged.
	follower.Apply([]*registryv1.Publisher{testPub(record.DataInfoID("stale", "", ""), "x", 1, 1, "sx", "x")}, nil)
	follower.Restore(snap)
	checkSameState(t, leader, follower)
	// A snapshot is a deep copy: changing it changes neither store.
	for _, d := range snap.Datums {
		for _, p := range d.Publishers {
			for _, v := range p.Values {
				clear(v)
			}
			p.ClientVersion++
		}
	}
	checkSameState(t, leader, follower)
	if !proto.Equal(follower.Snapshot(), leader.Snapshot()) {
		t.Fatal("mutating a snapshot changed a store")
	}

	for range 30 {
		randomBatch(rng, leader)
	}
	ops, ok := leader.OpsAfter(follower.Seq(), 0)
	if !ok {
		t.Fatal("leader lost the ops after the snapshot")
	}
	for _, op := range ops {
		if err := follower.ApplyOp(op); err != nil {
			t.Fatal(err)
		}
	}
	checkSameState(t, leader, follower)

	follower.ResetLog()
	if follower.Seq() != 0 {
		t.Fatalf("Seq after ResetLog = %d", follower.Seq())
	}
	if ops, ok := follower.OpsAfter(0, 0); !ok || len(ops) != 0 {
		t.Fatalf("OpsAfter(0) after ResetLog = %v, %v", ops, ok)
	}
	if _, pubs := follower.Stats(); pubs == 0 {
		t.Fatal("ResetLog dropped the datums")
	}

	follower.Restore(nil)
	if d, p := follower.Stats(); d != 0 || p != 0 || len(follower.Digests()) != 0 {
		t.Fatalf("Restore(nil) left %d datums, %d publishers", d, p)
	}
}

func TestSlotStore_RemoveSession_KeepsReRegistered(t *testing.T) {
	s := NewSlotStore(1, 64)
	s.Apply([]*registryv1.Publisher{
		testPub(keyA, "r1", 1, 1, "s1", "a"),
		testPub(keyA, "r2", 1, 1, "s1", "a"),
		testPub(keyA, "r3", 1, 1, "s2", "a"),
		testPub(keyB, "r4", 1, 1, "s1", "b"),
	}, nil)
	// The client of r1 reconnected to s2 and re-registered there.
	s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 1, 2, "s2", "a")}, nil)
	vA, vB := s.Version(keyA), s.Version(keyB)
	seq := s.Seq()

	vs := s.RemoveSession("s1")

	if got := versionOf(t, vs, keyA); got <= vA || got != s.Version(keyA) {
		t.Errorf("A's version %d -> %d (store says %d)", vA, got, s.Version(keyA))
	}
	if got := versionOf(t, vs, keyB); got <= vB {
		t.Errorf("B (now empty) reported at %d, was %d", got, vB)
	}
	if s.Get(keyB) != nil {
		t.Errorf("B still has %v", s.Get(keyB))
	}
	var ids []string
	for _, p := range s.Get(keyA).GetPublishers() {
		ids = append(ids, p.RegisterId+"@"+p.SessionId)
	}
	if !slices.Equal(ids, []string{"r1@s2", "r3@s2"}) {
		t.Errorf("A holds %v, want r1@s2 r3@s2", ids)
	}
	if s.Seq()-seq != 2 {
		t.Errorf("%d ops for removing two publishers", s.Seq()-seq)
	}
	if ds := s.Digests(); len(ds) != 1 || ds[0].SessionId != "s2" || ds[0].Count != 2 {
		t.Errorf("Digests = %v, want only s2 with 2", ds)
	}
	if s.Publishers("s1") != nil {
		t.Errorf("s1 still owns %v", s.Publishers("s1"))
	}
	if vs := s.RemoveSession("s1"); vs != nil || s.Seq()-seq != 2 {
		t.Errorf("second removal returned %v and appended ops", vs)
	}
}

// TestSlotStore_ConditionalDelete_SparesMovedRegistration: a session whose
// client's grace ended deletes on condition that it still owns the
// registration; the client re-registered through another session, in
// either order relative to that delete, keeps its publication.
func TestSlotStore_ConditionalDelete_SparesMovedRegistration(t *testing.T) {
	expiry := func(ts int64) *registryv1.Unpublish {
		u := testUnpub(keyA, "r1", 3, ts)
		u.SessionId = "s1"
		return u
	}
	t.Run("moved before the delete", func(t *testing.T) {
		s := NewSlotStore(1, 64)
		s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 3, 10, "s1", "a")}, nil)
		s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 3, 20, "s2", "a")}, nil)
		seq := s.Seq()
		s.Apply(nil, []*registryv1.Unpublish{expiry(10)})
		if p := onlyPublisher(t, s, keyA); p.SessionId != "s2" || s.Seq() != seq {
			t.Errorf("after s1's conditional delete: %v (ops %d -> %d), want r1 kept on s2", p, seq, s.Seq())
		}
	})
	t.Run("delete before the move arrives", func(t *testing.T) {
		s := NewSlotStore(1, 64)
		s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 3, 10, "s1", "a")}, nil)
		s.Apply(nil, []*registryv1.Unpublish{expiry(10)})
		if d := s.Get(keyA); d != nil {
			t.Fatalf("s1 still owned r1, the delete should apply; have %v", d)
		}
		// The tombstone is at the stored timestamp: s1's stale copy stays
		// buried, s2's later registration does not.
		s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 3, 10, "s1", "a")}, nil)
		if d := s.Get(keyA); d != nil {
			t.Fatalf("stale copy came back: %v", d)
		}
		s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 3, 20, "s2", "a")}, nil)
		if p := onlyPublisher(t, s, keyA); p.SessionId != "s2" {
			t.Errorf("re-registration through s2 = %v", p)
		}
	})
	t.Run("unconditional delete removes whoever owns it", func(t *testing.T) {
		s := NewSlotStore(1, 64)
		s.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 3, 20, "s2", "a")}, nil)
		s.Apply(nil, []*registryv1.Unpublish{testUnpub(keyA, "r1", 3, 30)})
		if d := s.Get(keyA); d != nil {
			t.Errorf("unconditional delete left %v", d)
		}
	})
}

// TestSlotStore_Digests_MatchFromScratch checks the incremental digests
// against ones computed the way a session does, over Publishers(session).
func TestSlotStore_Digests_MatchFromScratch(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s := NewSlotStore(1, 16)
	for i := range 3000 {
		randomBatch(rng, s)
		if i%100 != 99 {
			continue
		}
		owners := map[string]bool{}
		for _, p := range s.Publishers("") {
			owners[p.SessionId] = true
		}
		ds := s.Digests()
		if len(ds) != len(owners) {
			t.Fatalf("step %d: %d digests for %d owning sessions", i, len(ds), len(owners))
		}
		for j, d := range ds {
			if j > 0 && ds[j-1].SessionId >= d.SessionId {
				t.Fatalf("digests not sorted: %v", ds)
			}
			var want publisher.Digest
			for _, p := range s.Publishers(d.SessionId) {
				if p.SessionId != d.SessionId {
					t.Fatalf("Publishers(%s) returned one of %s", d.SessionId, p.SessionId)
				}
				want.Add(p.RegisterId, p.ClientVersion, p.RegisterTimestamp)
			}
			if got := (publisher.Digest{Count: d.Count, Hash: d.Hash}); got != want {
				t.Fatalf("step %d: session %s digest %+v, from scratch %+v", i, d.SessionId, got, want)
			}
		}
	}
}

func TestSlotStore_Publishers_Sorted(t *testing.T) {
	s := NewSlotStore(1, 16)
	s.Apply([]*registryv1.Publisher{
		testPub(keyB, "r2", 1, 1, "s1"), testPub(keyA, "r9", 1, 1, "s2"),
		testPub(keyA, "r1", 1, 1, "s1"), testPub(keyB, "r1", 1, 1, "s1"),
	}, nil)
	var got []string
	for _, p := range s.Publishers("") {
		got = append(got, p.DataInfoId+"/"+p.RegisterId)
	}
	want := []string{keyA + "/r1", keyA + "/r9", keyB + "/r1", keyB + "/r2"}
	if !slices.Equal(got, want) {
		t.Fatalf("Publishers(\"\") = %v, want %v", got, want)
	}
	if n := len(s.Publishers("s1")); n != 3 {
		t.Fatalf("s1 owns %d, want 3", n)
	}
	if s.Publishers("nobody") != nil {
		t.Fatal("unknown session owns publishers")
	}
}

func TestSlotStore_CopiesInputAndOutput(t *testing.T) {
	s := NewSlotStore(1, 16)
	p := testPub(keyA, "r1", 1, 1, "s1", "value")
	s.Apply([]*registryv1.Publisher{p}, nil)
	copy(p.Values[0], "XXXXX")
	p.SessionId = "changed"
	got := onlyPublisher(t, s, keyA)
	if string(got.Values[0]) != "value" || got.SessionId != "s1" {
		t.Fatalf("store kept the caller's message: %v", got)
	}
	copy(got.Values[0], "YYYYY")
	if v := onlyPublisher(t, s, keyA).Values[0]; string(v) != "value" {
		t.Fatalf("Get returned the store's bytes: now %q", v)
	}
	ops, _ := s.OpsAfter(0, 0)
	if string(ops[0].GetPut().GetValues()[0]) != "value" {
		t.Fatalf("logged op changed: %v", ops[0])
	}
}

func TestSlotStore_Changed_FiresOnWrites(t *testing.T) {
	leader := NewSlotStore(1, 16)
	follower := NewSlotStore(1, 16)
	fired := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	tests := []struct {
		name  string
		store *SlotStore
		write func()
		fires bool
	}{
		{"put", leader, func() { leader.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 2, 2, "s1", "v")}, nil) }, true},
		{"ignored put", leader, func() { leader.Apply([]*registryv1.Publisher{testPub(keyA, "r1", 1, 1, "s1", "v")}, nil) }, false},
		{"ignored delete", leader, func() { leader.Apply(nil, []*registryv1.Unpublish{testUnpub(keyA, "r1", 1, 1)}) }, false},
		{"unknown session", leader, func() { leader.RemoveSession("nobody") }, false},
		{"apply op", follower, func() {
			ops, _ := leader.OpsAfter(0, 0)
			if err := follower.ApplyOp(ops[0]); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"remove session", leader, func() { leader.RemoveSession("s1") }, true},
		{"restore", follower, func() { follower.Restore(leader.Snapshot()) }, true},
		{"reset log", follower, func() { follower.ResetLog() }, true},
		{"reads", leader, func() {
			leader.Get(keyA)
			leader.Snapshot()
			leader.Digests()
			leader.OpsAfter(0, 0)
		}, false},
	}
	for _, tt := range tests {
		ch := tt.store.Changed()
		tt.write()
		if got := fired(ch); got != tt.fires {
			t.Errorf("%s: Changed fired = %v, want %v", tt.name, got, tt.fires)
		}
		if tt.fires && fired(tt.store.Changed()) {
			t.Errorf("%s: the next Changed channel is already closed", tt.name)
		}
	}
}

// TestSlotStore_Concurrent is a smoke test for -race: writers, a follower
// replicating through OpsAfter/Changed, and readers at once.
func TestSlotStore_Concurrent(t *testing.T) {
	leader := NewSlotStore(1, 1<<16)
	follower := NewSlotStore(1, 1<<16)
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for range 500 {
				randomBatch(rng, leader)
			}
		}()
	}
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, k := range leader.Keys() {
					if d := leader.Get(k); d != nil && len(d.Publishers) == 0 {
						t.Errorf("datum %s without publishers", k)
					}
				}
				leader.Snapshot()
				leader.Digests()
				leader.Publishers("s1")
				leader.Stats()
			}
		}()
	}
	replErr := make(chan error, 1)
	go func() {
		for {
			ch := leader.Changed()
			ops, ok := leader.OpsAfter(follower.Seq(), 100)
			if !ok {
				replErr <- fmt.Errorf("ops after %d fell out of the log", follower.Seq())
				return
			}
			for _, op := range ops {
				if err := follower.ApplyOp(op); err != nil {
					replErr <- err
					return
				}
			}
			if len(ops) > 0 {
				continue
			}
			select {
			case <-ch:
			case <-stop:
				replErr <- nil
				return
			}
		}
	}()
	writers.Wait()
	// Let the follower drain before stopping it.
	for {
		ch := follower.Changed()
		if follower.Seq() == leader.Seq() {
			break
		}
		select {
		case err := <-replErr:
			t.Fatalf("replication stopped: %v", err)
		case <-ch:
		}
	}
	close(stop)
	readers.Wait()
	if err := <-replErr; err != nil {
		t.Fatal(err)
	}
	checkSameState(t, leader, follower)
}

func TestStore_Unpublish_LeavesTombstone_StalePutCannotResurrect(t *testing.T) {
	s := NewSlotStore(1, 64)
	s.SetLeaderEpoch(1)
	key := "svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"
	p := &registryv1.Publisher{RegisterId: "r", DataInfoId: key, ClientVersion: 3, RegisterTimestamp: 30, SessionId: "s", Values: [][]byte{[]byte("x")}}
	s.Apply([]*registryv1.Publisher{p}, nil)
	s.Apply(nil, []*registryv1.Unpublish{{DataInfoId: key, RegisterId: "r", ClientVersion: 3, RegisterTimestamp: 30}})
	seq := s.Seq()
	// The same registration again (a retried batch, an anti-entropy list
	// read just before the unpublish) stays buried.
	s.Apply([]*registryv1.Publisher{p}, nil)
	if s.Get(key) != nil || s.Seq() != seq {
		t.Fatalf("a put not newer than its unpublish brought the record back: %v", s.Get(key))
	}
	// A genuinely newer registration is taken.
	newer := &registryv1.Publisher{RegisterId: "r", DataInfoId: key, ClientVersion: 4, RegisterTimestamp: 40, SessionId: "s", Values: [][]byte{[]byte("y")}}
	s.Apply([]*registryv1.Publisher{newer}, nil)
	if d := s.Get(key); d == nil || len(d.GetPublishers()) != 1 {
		t.Fatalf("a newer put after the unpublish was refused: %v", d)
	}

	// Followers keep the tombstone, through ops and through snapshots.
	for name, follower := range map[string]func() *SlotStore{
		"ops": func() *SlotStore {
			f := NewSlotStore(1, 64)
			ops, ok := s.OpsAfter(0, 100)
			if !ok {
				t.Fatal("log lost ops")
			}
			for _, op := range ops {
				if err := f.ApplyOp(op); err != nil {
					t.Fatal(err)
				}
			}
			return f
		},
		"snapshot": func() *SlotStore {
			f := NewSlotStore(1, 64)
			f.Restore(s.Snapshot())
			return f
		},
	} {
		f := follower()
		f.SetLeaderEpoch(2) // promoted
		f.Apply(nil, []*registryv1.Unpublish{{DataInfoId: key, RegisterId: "r", ClientVersion: 4, RegisterTimestamp: 40}})
		f.Apply([]*registryv1.Publisher{p}, nil) // the stale v3 arrives late
		if f.Get(key) != nil {
			t.Fatalf("%s: follower took a stale put after the unpublish", name)
		}
	}
}

func TestStore_Tombstones_Bounded(t *testing.T) {
	s := NewSlotStore(1, 8)
	s.SetLeaderEpoch(1)
	for i := range TombstoneCap + 100 {
		key := fmt.Sprintf("k%d#@#i#@#g", i)
		s.Apply([]*registryv1.Publisher{{RegisterId: "r", DataInfoId: key, ClientVersion: 1, SessionId: "s"}}, nil)
		s.Apply(nil, []*registryv1.Unpublish{{DataInfoId: key, RegisterId: "r", ClientVersion: 1}})
	}
	if n := len(s.Snapshot().GetTombstones()); n != TombstoneCap {
		t.Fatalf("%d tombstones kept, cap %d", n, TombstoneCap)
	}
}

func TestStore_EmptiedDatum_ReadsAtItsDeletionVersion_AlsoAfterSnapshot(t *testing.T) {
	s := NewSlotStore(1, 64)
	s.SetLeaderEpoch(1)
	key := "svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"
	s.Apply([]*registryv1.Publisher{{RegisterId: "r", DataInfoId: key, ClientVersion: 1, RegisterTimestamp: 1, SessionId: "s"}}, nil)
	vs := s.Apply(nil, []*registryv1.Unpublish{{DataInfoId: key, RegisterId: "r", ClientVersion: 1, RegisterTimestamp: 1}})
	del := vs[0].GetVersion()
	if d := s.Read(key); d.GetVersion() != del || len(d.GetPublishers()) != 0 || s.Version(key) != del {
		t.Fatalf("emptied datum reads %v (version %d), want empty at the deletion version %d", d, s.Version(key), del)
	}
	if s.Get(key) != nil {
		t.Fatal("Get returns an emptied datum")
	}
	f := NewSlotStore(1, 64)
	f.Restore(s.Snapshot())
	if got := f.Read(key).GetVersion(); got != del {
		t.Fatalf("after a snapshot the emptied datum reads version %d, want %d", got, del)
	}
	if never := s.Read("other#@#i#@#g"); never.GetVersion() != 0 || len(never.GetPublishers()) != 0 {
		t.Fatalf("a key that never had publishers reads %v", never)
	}
}

func TestSlotStore_ReadAtMost_PassesOverLargeDatums_SharesValues(t *testing.T) {
	s := NewSlotStore(0, 16)
	mk := func(key, reg string, value []byte) *registryv1.Publisher {
		return &registryv1.Publisher{RegisterId: reg, DataInfoId: key, ClientVersion: 1, RegisterTimestamp: 1,
			Values: [][]byte{value}, SessionId: "s1", ConnId: "conn-1", Zone: "z1"}
	}
	small, big := mk("k", "r1", []byte("10.0.0.1:80")), mk("big", "r2", make([]byte, 5000))
	s.Apply([]*registryv1.Publisher{small, big}, nil)
	if d := s.ReadAtMost("big", 4096); d != nil {
		t.Fatalf("a 5000-byte datum read under a 4096-byte bound: %d publishers", len(d.GetPublishers()))
	}
	d := s.ReadAtMost("k", 4096)
	if d == nil || len(d.GetPublishers()) != 1 || d.GetVersion() != s.Version("k") {
		t.Fatalf("small datum: %v", d)
	}
	if want := s.Read("k"); !proto.Equal(d, want) {
		t.Fatalf("ReadAtMost %v, Read %v", d, want)
	}
	// Not there: an empty datum, as Read gives it.
	if d := s.ReadAtMost("none", 4096); d == nil || len(d.GetPublishers()) != 0 {
		t.Fatalf("missing key: %v", d)
	}
}

// TestSlotStore_Log_KeepsEachOpsContent_AfterUpdates: the log points at
// records rather than copying them, so an update must replace the record
// (copy on write): the first op still reads the first values.
func TestSlotStore_Log_KeepsEachOpsContent_AfterUpdates(t *testing.T) {
	s := NewSlotStore(0, 16)
	mk := func(cv uint64, value, conn string) *registryv1.Publisher {
		return &registryv1.Publisher{RegisterId: "r1", DataInfoId: "k", ClientVersion: cv, RegisterTimestamp: int64(cv),
			Values: [][]byte{[]byte(value)}, SessionId: "s1", ConnId: conn, Zone: "z1"}
	}
	s.Apply([]*registryv1.Publisher{mk(1, "v1", "c1")}, nil)
	s.Apply([]*registryv1.Publisher{mk(2, "v2", "c2")}, nil)
	s.Apply(nil, []*registryv1.Unpublish{{DataInfoId: "k", RegisterId: "r1", ClientVersion: 3, RegisterTimestamp: 3}})
	ops, ok := s.OpsAfter(0, 0)
	if !ok || len(ops) != 3 {
		t.Fatalf("ops %v ok %v, want 3", ops, ok)
	}
	for i, want := range []struct {
		cv    uint64
		value string
		conn  string
	}{{1, "v1", "c1"}, {2, "v2", "c2"}} {
		p := ops[i].GetPut()
		if ops[i].GetSeq() != uint64(i+1) || p.GetClientVersion() != want.cv || string(p.GetValues()[0]) != want.value || p.GetConnId() != want.conn || p.GetDataInfoId() != "k" {
			t.Fatalf("op %d: %v, want client version %d, value %s, conn %s", i+1, ops[i], want.cv, want.value, want.conn)
		}
	}
	if d := ops[2]; d.GetPut() != nil || d.GetDeleteRegisterId() != "r1" || d.GetDeleteClientVersion() != 3 || d.GetSeq() != 3 {
		t.Fatalf("op 3: %v, want the delete of r1 at 3", d)
	}
}
