package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/record"
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

// fixtureHealth is mid-rebalance: meta-1 (the leader) counts moves, one
// handover not yet reported by its new leader.
func fixtureHealth() healthView {
	one := 1
	return healthView{Healthy: false, Slots: slotsHealth{
		State: slotsMoving, From: "meta-1", TableEpoch: 12, PendingMoves: 3, FollowersSyncing: 2, Handovers: &one, HandoversUnreported: &one,
	}, Nodes: []healthRow{
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
	golden(t, "health.yaml", renderString(t, "yaml", v))
	err := v.err()
	if err == nil || !strings.Contains(err.Error(), "3 of 6 nodes not ready") || !strings.Contains(err.Error(), "data-1 (unreachable)") {
		t.Errorf("err = %v, want it to count and name the nodes not ready", err)
	}
}

// The slot line in every state, and what --wait-settled makes of it:
// only the leader's "settled" (handovers known) ends the wait.
func TestRender_HealthSlots_EveryState(t *testing.T) {
	n := func(i int) *int { return &i }
	ready := []healthRow{{Node: "meta-0", Role: "meta", Address: "10.0.1.1:9616", Status: healthReady}}
	for _, tc := range []struct {
		name    string
		slots   slotsHealth
		line    string
		waitFor string // unsettled(); "" = settled
	}{
		{"settled by the leader", slotsHealth{State: slotsSettled, From: "meta-0", TableEpoch: 9, Handovers: n(0), HandoversUnreported: n(0)},
			"slots (meta-0, table epoch 9): settled\n", ""},
		{"moving", slotsHealth{State: slotsMoving, From: "meta-0", TableEpoch: 9, PendingMoves: 1, FollowersSyncing: 4, Handovers: n(2), HandoversUnreported: n(0)},
			"slots (meta-0, table epoch 9): moving: 1 pending moves, 4 followers syncing, 2 handovers\n", "slots moving: 1 pending moves, 4 followers syncing, 2 handovers"},
		{"settled by a follower", slotsHealth{State: slotsSettled, From: "meta-0", TableEpoch: 9},
			"slots (meta-0, table epoch 9): settled (handovers unknown: the meta leader did not answer)", "slots settled (handovers unknown"},
		{"moving by a follower", slotsHealth{State: slotsMoving, From: "meta-0", TableEpoch: 9, FollowersSyncing: 1},
			"slots (meta-0, table epoch 9): moving: 0 pending moves, 1 followers syncing, handovers unknown", "handovers unknown"},
		{"no meta answer", slotsHealth{State: slotsUnknown},
			"slots: unknown: no meta node answered with the slot detail\n", "slots unknown"},
		{"arranger error", slotsHealth{State: slotsUnknown, From: "meta-0", Error: "slot arranger: bad table"},
			"slots (meta-0, table epoch 0): unknown: slot arranger: bad table", "bad table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := healthView{Healthy: true, Slots: tc.slots, Nodes: ready}
			if out := string(renderString(t, "table", v)); !strings.Contains(out, tc.line) {
				t.Errorf("table output lacks %q:\n%s", tc.line, out)
			}
			if v.err() != nil {
				t.Errorf("moves changed the exit status: %v", v.err())
			}
			got := v.unsettled()
			if (tc.waitFor == "") != (got == "") || !strings.Contains(got, tc.waitFor) {
				t.Errorf("unsettled() = %q, want %q", got, tc.waitFor)
			}
		})
	}
	// A node not ready is waited for even when the slots are settled.
	v := healthView{Healthy: false, Slots: slotsHealth{State: slotsSettled, Handovers: n(0)},
		Nodes: []healthRow{{Node: "data-0", Role: "data", Status: healthNotReady}}}
	if got := v.unsettled(); !strings.Contains(got, "data-0 (not_ready)") {
		t.Errorf("unsettled() with a node not ready = %q", got)
	}
}

func TestRender_UnknownFormat(t *testing.T) {
	err := render(&bytes.Buffer{}, "xml", leaderView{})
	if err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("err = %v, want one naming the format", err)
	}
}

// fixtureSnapshot has a value of every kind a table must cope with: plain,
// with spaces and JSON's <, > and &, with a newline, binary, and empty.
func fixtureSnapshot() client.Snapshot {
	return client.Snapshot{Version: 7, Values: []client.Value{
		{Data: []byte("10.0.0.1:8080"), Zone: "az1", PublisherID: "3f2a9c0d41e84b7a9d3c5e6f70812345"},
		{Data: []byte(`{"addr": "10.0.0.2:8080", "tags": "<a&b>"}`), PublisherID: "9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"},
		{Data: []byte("line one\nline two"), Zone: "az2", PublisherID: "00112233445566778899aabbccddeeff"},
		{Data: []byte{0xff, 0x00, 0x01}, Zone: "az2", PublisherID: "ffeeddccbbaa99887766554433221100"},
		{Data: []byte{}, Zone: "az1", PublisherID: "00000000000000000000000000000001"},
	}}
}

const fixtureKey = "com.example.echo#@#DEFAULT_INSTANCE_ID#@#RPC"

// streamString renders views as a streaming command (sub, pub) emits them.
func streamString(t *testing.T, format string, vs ...view) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, v := range vs {
		if err := emit(&b, format, v); err != nil {
			t.Fatalf("emit %s: %v", format, err)
		}
	}
	return b.Bytes()
}

func TestRender_Sub_Golden(t *testing.T) {
	empty := snapshotFrom(fixtureKey, client.Snapshot{})
	full := snapshotFrom(fixtureKey, fixtureSnapshot())
	golden(t, "sub.table", streamString(t, "table", empty, full))
	golden(t, "sub.json", streamString(t, "json", empty, full))
	golden(t, "sub.yaml", streamString(t, "yaml", empty, full))
}

func TestRender_Get_Golden(t *testing.T) {
	v := snapshotFrom(fixtureKey, fixtureSnapshot())
	golden(t, "get.table", renderString(t, "table", v))
	golden(t, "get.json", renderString(t, "json", v))
}

func TestRender_Pub_Golden(t *testing.T) {
	pub := pubView{Event: "published", DataInfoID: fixtureKey, RegisterID: "3f2a9c0d41e84b7a9d3c5e6f70812345", Version: 1, Session: "10.0.3.1:9603"}
	unpub := pub
	unpub.Event = "unpublished"
	golden(t, "pub.table", streamString(t, "table", pub, unpub))
	golden(t, "pub.json", streamString(t, "json", pub, unpub))
}

// TestSnapshot_JSONIsLossless checks that every value survives sub's JSON:
// text as "data", anything else as "data_base64", never both.
func TestSnapshot_JSONIsLossless(t *testing.T) {
	want := fixtureSnapshot()
	out := streamString(t, "json", snapshotFrom(fixtureKey, want))
	if n := bytes.Count(out, []byte("\n")); n != 1 {
		t.Fatalf("one snapshot is %d lines of JSON, want 1:\n%s", n, out)
	}
	var got struct {
		Values []struct {
			Data        *string `json:"data"`
			DataBase64  *string `json:"data_base64"`
			PublisherID string  `json:"publisher_id"`
		} `json:"values"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Values) != len(want.Values) {
		t.Fatalf("%d values, want %d", len(got.Values), len(want.Values))
	}
	for i, v := range got.Values {
		var data []byte
		switch {
		case v.Data != nil && v.DataBase64 == nil:
			data = []byte(*v.Data)
		case v.Data == nil && v.DataBase64 != nil:
			var err error
			if data, err = base64.StdEncoding.DecodeString(*v.DataBase64); err != nil {
				t.Fatalf("value %d: %v", i, err)
			}
		default:
			t.Fatalf("value %d: data %v, data_base64 %v; want exactly one", i, v.Data, v.DataBase64)
		}
		if !bytes.Equal(data, want.Values[i].Data) || v.PublisherID != want.Values[i].PublisherID {
			t.Errorf("value %d = %q from %s, want %q from %s", i, data, v.PublisherID, want.Values[i].Data, want.Values[i].PublisherID)
		}
	}
}

func TestDataCell(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1:8080":   "10.0.0.1:8080",
		"with spaces":     "with spaces",
		"数据":              "数据",
		"":                `""`,
		"a\nb":            `"a\nb"`,
		"tab\there":       `"tab\there"`,
		"\xff\x00":        `"\xff\x00"`,
		"trailing space ": "trailing space ",
	} {
		if got := dataCell([]byte(in)); got != want {
			t.Errorf("dataCell(%q) = %s, want %s", in, got, want)
		}
	}
}
