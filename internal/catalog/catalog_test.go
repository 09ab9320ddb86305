package catalog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// A listing names every slot it could not include: leaderless, led by a
// node without a known address, or led by one that could not be reached.
func TestList_NamesTheSlotsItCouldNotInclude(t *testing.T) {
	tb := slot.Table{Epoch: 3, Slots: []slot.Slot{
		{ID: 0, Leader: "a"}, {ID: 1, Leader: ""}, {ID: 2, Leader: "b"}, {ID: 3, Leader: "a"}, {ID: 4, Leader: "gone"},
	}}
	addr := func(id slot.NodeID) (string, bool) {
		if id == "gone" {
			return "", false
		}
		return string(id) + ":1", true
	}
	var (
		mu     sync.Mutex
		dialed []string
	)
	dial := func(p identity.Peer, a string) (registryv1.DataServiceClient, error) { // called by one goroutine per leader
		if p.Role != identity.RoleData {
			t.Errorf("dialed %v; want a data node's identity", p)
		}
		mu.Lock()
		defer mu.Unlock()
		dialed = append(dialed, p.Name+"@"+a)
		return nil, errors.New("unreachable")
	}
	p, err := List(context.Background(), tb, addr, dial, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Missing, []uint32{0, 1, 2, 3, 4}) || len(p.Entries) != 0 || p.Next != "" {
		t.Fatalf("page %+v; want every slot missing, nothing listed", p)
	}
	slices.Sort(dialed)
	if !slices.Equal(dialed, []string{"a@a:1", "b@b:1"}) {
		t.Fatalf("dialed %v; want each leader with an address once", dialed)
	}
}

func TestQuery_Check(t *testing.T) {
	q := Query{}
	if err := q.Check(); err != nil || q.Limit != DefaultLimit {
		t.Fatalf("zero query: %v, limit %d; want the default limit", err, q.Limit)
	}
	for _, bad := range []Query{
		{Limit: -1}, {Limit: MaxLimit + 1},
		{Prefix: strings.Repeat("p", 775)}, {After: "\xff"},
	} {
		if err := bad.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v; want ErrInvalid", bad, err)
		}
	}
}
