package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/strata-registry/strata/internal/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name.golden, or rewrites the file
// with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/registryctl -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (rerun with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

func renderString(t *testing.T, format string, v view) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := render(&b, format, v); err != nil {
		t.Fatalf("render %s: %v", format, err)
	}
	return b.Bytes()
}

// fixtureInfo is a cluster in mid-life: meta-2 is a non-voter missing
// from the gossip pool (no addresses), data-3 just joined and holds no
// slot yet.
func fixtureInfo() *registryv1.GetClusterInfoResponse {
	node := func(id string, role registryv1.Role, host string, port int, zone string) *registryv1.Node {
		return &registryv1.Node{
			Id: id, Role: role, Zone: zone, State: registryv1.NodeState_NODE_STATE_ALIVE,
			GrpcAddress: host + ":" + strconv.Itoa(port), HttpAddress: host + ":" + strconv.Itoa(port+1),
		}
	}
	return &registryv1.GetClusterInfoResponse{
		ClusterId: "c-7f3a", SlotCount: 8, Replicas: 2, TableEpoch: 12, Term: 4, CommitIndex: 310,
		Meta: []*registryv1.MetaPeer{
			{Id: "meta-0", RaftAddress: "10.0.1.1:9614", GrpcAddress: "10.0.1.1:9615", HttpAddress: "10.0.1.1:9616", Voter: true},
			{Id: "meta-1", RaftAddress: "10.0.1.2:9614", GrpcAddress: "10.0.1.2:9615", HttpAddress: "10.0.1.2:9616", Voter: true, Leader: true},
			{Id: "meta-2", RaftAddress: "10.0.1.3:9614"},
		},
		// Deliberately out of role order: the view sorts.
		Members: []*registryv1.Node{
			node("session-1", registryv1.Role_ROLE_SESSION, "10.0.3.2", 9603, "az2"),
			node("data-0", registryv1.Role_ROLE_DATA, "10.0.2.1", 9622, "az1"),
			node("data-1", registryv1.Role_ROLE_DATA, "10.0.2.2", 9622, "az2"),
			node("data-2", registryv1.Role_ROLE_DATA, "10.0.2.3", 9622, ""),
			node("data-3", registryv1.Role_ROLE_DATA, "10.0.2.4", 9622, "az1"),
			node("session-0", registryv1.Role_ROLE_SESSION, "10.0.3.1", 9603, "az1"),
		},
	}
}

func fixtureSessions() *registryv1.ListSessionsResponse {
	return &registryv1.ListSessionsResponse{Sessions: []*registryv1.SessionInfo{
		{Node: &registryv1.Node{Id: "session-1"}, ClientCount: 7},
		{Node: &registryv1.Node{Id: "session-0"}, ClientCount: 42},
	}}
}

// fixtureTable has a slot in every sync state.
func fixtureTable() *registryv1.SlotTable {
	s := func(id uint32, leader string, epoch uint64, followers, synced []string) *registryv1.Slot {
		return &registryv1.Slot{Id: id, Leader: leader, LeaderEpoch: epoch, Followers: followers, Synced: synced}
	}
	return &registryv1.SlotTable{Epoch: 12, SlotCount: 8, Replicas: 2, Slots: []*registryv1.Slot{
		s(0, "data-0", 3, []string{"data-1"}, []string{"data-1"}),
		s(1, "data-1", 5, []string{"data-2"}, nil),                          // syncing
		s(2, "data-2", 2, []string{"data-0", "data-1"}, []string{"data-0"}), // a move in progress
		s(3, "", 4, nil, nil),                                     // no live leader
		s(4, "data-0", 1, nil, nil),                               // under-replicated
		s(5, "data-1", 1, []string{"data-0"}, []string{"data-0"}), // synced
		s(6, "data-2", 7, []string{"data-1"}, []string{"data-1"}), // synced
		s(7, "data-0", 2, []string{"data-2"}, []string{"data-2"}), // synced
	}}
}

func TestRender_Members_Golden(t *testing.T) {
	v := membersFrom(fixtureInfo(), fixtureSessions())
	golden(t, "members.table", renderString(t, "table", v))
	golden(t, "members.json", renderString(t, "json", v))
	golden(t, "members.yaml", renderString(t, "yaml", v))
}

func TestRender_Members_UnknownCountsShowQuestionMark(t *testing.T) {
	v := membersFrom(fixtureInfo(), nil)
	for _, m := range v.Members {
		if m.Connections != nil {
			t.Errorf("%s has connections %d without ListSessions", m.ID, *m.Connections)
		}
	}
	out := string(renderString(t, "table", v))
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "session") && !strings.HasSuffix(line, "?") {
			t.Errorf("session row without a ? for its unknown count: %q", line)
		}
	}
	if js := string(renderString(t, "json", v)); strings.Contains(js, "connections") {
		t.Errorf("json has connections although none is known:\n%s", js)
	}
}

func TestRender_Leader_Golden(t *testing.T) {
	v := leaderFrom(&registryv1.GetLeaderResponse{Term: 4, Leader: fixtureInfo().GetMeta()[1]})
	golden(t, "leader.table", renderString(t, "table", v))
	golden(t, "leader.json", renderString(t, "json", v))
}

func TestRender_Slots_Golden(t *testing.T) {
	v, err := slotsFrom(fixtureInfo(), fixtureTable(), "")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "slots.table", renderString(t, "table", v))
	golden(t, "slots.json", renderString(t, "json", v))

	v, err = slotsFrom(fixtureInfo(), fixtureTable(), "data-1")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "slots-node.table", renderString(t, "table", v))
}

func TestSlots_NodeFilter(t *testing.T) {
	v, err := slotsFrom(fixtureInfo(), fixtureTable(), "data-1")
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, r := range v.Slots {
		got = append(got, r.Slot)
	}
	if want := []uint32{0, 1, 2, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("slots of data-1 = %v, want %v", got, want)
	}
	if want := (nodeSlots{Node: "data-1", Leads: 2, Follows: 3, Syncing: 1}); len(v.Nodes) != 1 || v.Nodes[0] != want {
		t.Errorf("summary = %+v, want only %+v", v.Nodes, want)
	}

	// A member holding nothing is a valid filter with no rows.
	if v, err = slotsFrom(fixtureInfo(), fixtureTable(), "data-3"); err != nil || len(v.Slots) != 0 {
		t.Errorf("data-3: %d slots, err %v; want none and no error", len(v.Slots), err)
	}
	if _, err = slotsFrom(fixtureInfo(), fixtureTable(), "data-9"); err == nil || !strings.Contains(err.Error(), "data-9") {
		t.Errorf("unknown node: err = %v, want one naming data-9", err)
	}
}

func TestSlots_NoTableYet(t *testing.T) {
	info := fixtureInfo()
	info.TableEpoch = 0
	v, err := slotsFrom(info, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if out := string(renderString(t, "table", v)); !strings.Contains(out, "no slot table yet") {
		t.Errorf("table output %q does not say there is no table", out)
	}
	if js := string(renderString(t, "json", v)); !strings.Contains(js, `"slots": []`) {
		t.Errorf("json without a table should have an empty slots list:\n%s", js)
	}
}

func TestRender_SlotOf_Golden(t *testing.T) {
	// This key falls in slot 2 of 8, which is mid-move: a leader and two
	// followers, one still syncing.
	key := record.DataInfoID("com.example.users", "", "")
	v, err := slotOfFrom(key, fixtureInfo(), fixtureTable())
	if err != nil {
		t.Fatal(err)
	}
	if v.Slot != 2 {
		t.Fatalf("fixture assumption broken: %s is in slot %d, not 2", key, v.Slot)
	}
	golden(t, "slot-of.table", renderString(t, "table", v))
	golden(t, "slot-of.json", renderString(t, "json", v))
}

// TestSlotOf_MatchesServerFormula pins the key -> slot mapping to the one
// documented for the servers (xxhash of the dataInfoID modulo the slot
// count), computed here without internal/slot.
func TestSlotOf_MatchesServerFormula(t *testing.T) {
	for _, count := range []uint32{1, 8, 256, 16384} {
		for _, id := range []string{"a", "com.example.orders", "svc/with spaces & <html>", "数据"} {
			key := record.DataInfoID(id, "", "")
			info := &registryv1.GetClusterInfoResponse{SlotCount: count}
			v, err := slotOfFrom(key, info, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := uint32(xxhash.Sum64String(key) % uint64(count)); v.Slot != want {
				t.Errorf("slot of %q with %d slots = %d, want %d", key, count, v.Slot, want)
			}
		}
	}
}

func TestDataInfoID(t *testing.T) {
	long := strings.Repeat("x", record.MaxDataIDBytes+1)
	for _, tc := range []struct {
		arg, instance, group string
		want                 string // "" for an error
	}{
		{"orders", "", "", "orders#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"},
		{"orders", "", "PAY", "orders#@#DEFAULT_INSTANCE_ID#@#PAY"},
		{"orders", "dc1", "PAY", "orders#@#dc1#@#PAY"},
		{"orders#@#dc1#@#PAY", "", "", "orders#@#dc1#@#PAY"},
		{"orders#@#dc1#@#PAY", "", "G", ""}, // both forms at once
		{"orders#@#dc1", "", "", ""},        // two parts
		{"", "", "", ""},                    // empty data ID
		{long, "", "", ""},                  // over the limit
	} {
		got, err := dataInfoID(tc.arg, tc.instance, tc.group)
		if tc.want == "" {
			if err == nil {
				t.Errorf("dataInfoID(%.20q, %q, %q) = %q, want an error", tc.arg, tc.instance, tc.group, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("dataInfoID(%q, %q, %q) = %q, %v; want %q", tc.arg, tc.instance, tc.group, got, err, tc.want)
		}
	}
}

func fixtureHealth() healthView {
	return healthView{Healthy: false, Nodes: []healthRow{
		{Node: "meta-0", Role: "meta", Address: "10.0.1.1:9616", Status: healthReady},
		{Node: "meta-1", Role: "meta", Address: "10.0.1.2:9616", Status: healthReady},
		{Node: "meta-2", Role: "meta", Status: healthNoAddress, Detail: "no HTTP address known (not in the gossip pool)"},
		{Node: "data-0", Role: "data", Address: "10.0.2.1:9623", Status: healthNotReady, Detail: "slots migrating (2 slots)"},
		{Node: "data-1", Role: "data", Address: "10.0.2.2:9623", Status: healthUnreachable, Detail: "Get \"http://10.0.2.2:9623/readyz\": dial tcp 10.0.2.2:9623: connect: connection refused"},
		{Node: "session-0", Role: "session", Address: "10.0.3.1:9604", Status: healthReady},
	}}
}

func TestRender_Health_Golden(t *testing.T) {
	v := fixtureHealth()
	golden(t, "health.table", renderString(t, "table", v))
	golden(t, "health.json", renderString(t, "json", v))
	err := v.err()
	if err == nil || !strings.Contains(err.Error(), "3 of 6 nodes not ready") || !strings.Contains(err.Error(), "data-1 (unreachable)") {
		t.Errorf("err = %v, want it to count and name the nodes not ready", err)
	}
}

func TestRender_UnknownFormat(t *testing.T) {
	err := render(&bytes.Buffer{}, "xml", leaderView{})
	if err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("err = %v, want one naming the format", err)
	}
}
