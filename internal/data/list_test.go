package data_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// ListDataInfoIds answers for the slots the node leads, in byte order,
// paged by the last key, names the slots it does not lead, and refuses
// bad requests with InvalidArgument.
func TestData_ListDataInfoIds_PagesLedSlots_NamesOthers_RefusesBadInput(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2, MetaConfig: func(_ int, cfg *meta.Config) { cfg.Slots = 8 }})
	c.WaitDataSettled(t)
	s := c.StartSession(t, "session-a")
	var keys []string
	for i := range 12 {
		k := record.DataInfoID(fmt.Sprintf("svc-%02d", i), "", "")
		keys = append(keys, k)
		s.Publish(t, pub("", k, "r1", 1, "v"))
		if i == 0 {
			s.Publish(t, pub("", k, "r2", 1, "v"))
		}
	}
	n := c.Data(0)
	var led, other []uint32
	for _, sl := range c.WaitLeader(t).Server().State().Table.Slots {
		if string(sl.Leader) == n.ID {
			led = append(led, uint32(sl.ID))
		} else {
			other = append(other, uint32(sl.ID))
		}
	}
	var want []string
	tbl := c.WaitLeader(t).Server().State().Table
	for _, k := range keys {
		if r := c.RouteOf(t, k); string(tbl.Slots[r.Slot].Leader) == n.ID {
			want = append(want, k)
		}
	}
	cl := dataClientAs(t, c, n, identity.RoleMeta, "meta-0")
	var got []string
	after := ""
	for {
		resp, err := cl.ListDataInfoIds(ctxT(t), &registryv1.ListDataInfoIdsRequest{SlotIds: append(slices.Clone(led), other...), After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(resp.GetNotServed(), other) {
			t.Fatalf("not_served %v; want the slots led elsewhere %v", resp.GetNotServed(), other)
		}
		for _, e := range resp.GetEntries() {
			got = append(got, e.GetDataInfoId())
			if e.GetDataInfoId() == keys[0] && e.GetPublishers() != 2 {
				t.Errorf("%s: %d publishers, want 2", keys[0], e.GetPublishers())
			}
		}
		if !resp.GetMore() {
			break
		}
		after = got[len(got)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v; want the led keys in order %v", got, want)
	}

	long := strings.Repeat("p", record.MaxDataInfoIDBytes+1)
	for _, tc := range []struct {
		name string
		req  *registryv1.ListDataInfoIdsRequest
		want string
	}{
		{"no slots", &registryv1.ListDataInfoIdsRequest{Limit: 1}, "no slot ids"},
		{"slot out of range", &registryv1.ListDataInfoIdsRequest{SlotIds: []uint32{8}, Limit: 1}, "slot 8 out of range"},
		{"slot twice", &registryv1.ListDataInfoIdsRequest{SlotIds: []uint32{1, 1}, Limit: 1}, "slot 1 named twice"},
		{"too many slots", &registryv1.ListDataInfoIdsRequest{SlotIds: make([]uint32, 9), Limit: 1}, "9 slot ids"},
		{"limit 0", &registryv1.ListDataInfoIdsRequest{SlotIds: []uint32{0}}, "limit 0 out of range"},
		{"limit too big", &registryv1.ListDataInfoIdsRequest{SlotIds: []uint32{0}, Limit: data.MaxListLimit + 1}, "out of range"},
		{"prefix too long", &registryv1.ListDataInfoIdsRequest{SlotIds: []uint32{0}, Limit: 1, Prefix: long}, "prefix is"},
	} {
		_, err := cl.ListDataInfoIds(ctxT(t), tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want InvalidArgument saying %q", tc.name, err, tc.want)
		}
	}

	// The node's gRPC server metrics saw those calls: every one counted by
	// method and code, the unary ones timed, the session's open change
	// stream in flight.
	const method = "/registry.v1.DataService/ListDataInfoIds"
	handled := map[string]float64{}
	var timed uint64
	var streams float64
	mfs, err := n.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case mf.GetName() == "strata_grpc_server_handled_total" && labels["method"] == method:
				handled[labels["code"]] += m.GetCounter().GetValue()
			case mf.GetName() == "strata_grpc_server_handling_seconds" && labels["method"] == method:
				timed += m.GetHistogram().GetSampleCount()
			case mf.GetName() == "strata_grpc_server_streams_in_flight" && labels["method"] == "/registry.v1.DataService/WatchChanges":
				streams += m.GetGauge().GetValue()
			}
		}
	}
	if handled["OK"] < 1 || handled["InvalidArgument"] != 7 || timed != uint64(handled["OK"]+handled["InvalidArgument"]) || streams < 1 {
		t.Errorf("grpc server metrics: handled %v, %d timed, %v WatchChanges streams; want OK >= 1, 7 InvalidArgument, all timed, >= 1 stream", handled, timed, streams)
	}
}
