// Package catalog enumerates the keys (dataInfoIDs, the services) a
// cluster holds. No node has them all: each slot leader has its slots'
// keys. List asks every leader at once for its first page and merges the
// answers, which gives the cluster's first page: the first limit keys
// after a cursor are each among the first limit keys of the leader that
// holds them.
//
// A listing is a snapshot of each leader at the moment it answered, not
// of the cluster at one instant; keys added or removed during paging may
// be missed or seen, but a key present throughout is listed exactly once,
// because pages are cut by key order, not by position. A slot that could
// not be listed (no leader, leader unreachable, migrating) is named in
// Page.Missing rather than failing the whole listing: an operator still
// sees the rest, and knows the list is partial.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// MaxLimit is the largest page (the data nodes' cap, data.MaxListLimit).
const MaxLimit = 1000

// DefaultLimit is the page size when the caller gives none.
const DefaultLimit = 100

// ErrInvalid marks a bad query.
var ErrInvalid = errors.New("catalog: invalid query")

// Addr returns a data node's gRPC address, false when the caller knows
// none (the node left its view).
type Addr func(slot.NodeID) (string, bool)

// Dial returns a DataService client for a data node (from the caller's
// connection pool, with the node's identity checked).
type Dial func(peer identity.Peer, addr string) (registryv1.DataServiceClient, error)

// Query is one page request.
type Query struct {
	// Prefix keeps keys that start with it.
	Prefix string
	// After is the cursor: the Next of the previous page ("" for the first).
	After string
	// Limit is the page size, 1..MaxLimit; 0 means DefaultLimit.
	Limit int
}

// Check validates q and fills the default limit.
func (q *Query) Check() error {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit < 0 || q.Limit > MaxLimit:
		return fmt.Errorf("%w: limit %d out of range 1..%d", ErrInvalid, q.Limit, MaxLimit)
	}
	for _, f := range [...]struct{ name, v string }{{"prefix", q.Prefix}, {"after", q.After}} {
		if len(f.v) > record.MaxDataInfoIDBytes {
			return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalid, f.name, len(f.v), record.MaxDataInfoIDBytes)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrInvalid, f.name)
		}
	}
	return nil
}

// Entry is one key and how many publishers it has.
type Entry struct {
	DataInfoID string `json:"data_info_id"`
	DataID     string `json:"data_id"`
	InstanceID string `json:"instance_id"`
	Group      string `json:"group"`
	Publishers int    `json:"publishers"`
}

// Page is one page of a listing.
type Page struct {
	Entries []Entry `json:"services"`
	// Next is the cursor of the next page; "" when this is the last.
	Next string `json:"next"`
	// Missing are the slots whose keys this page could not include, sorted.
	Missing []uint32 `json:"missing_slots,omitempty"`
}

// List returns one page of the keys held by the leaders of table t. It
// fails only on a bad query or when ctx ends; leaderless slots and
// unreachable leaders make the page partial (Page.Missing).
func List(ctx context.Context, t slot.Table, addr Addr, dial Dial, q Query) (Page, error) {
	if err := q.Check(); err != nil {
		return Page{}, err
	}
	leaders, missing := group(t, addr)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		all  []*registryv1.DataInfoIdCount
		more bool
	)
	for _, l := range leaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := listOne(ctx, l, dial, q)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				missing = append(missing, l.slots...)
				return
			}
			all = append(all, resp.GetEntries()...)
			more = more || resp.GetMore()
			missing = append(missing, resp.GetNotServed()...)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Page{}, err
	}
	slices.SortFunc(all, func(a, b *registryv1.DataInfoIdCount) int {
		return strings.Compare(a.GetDataInfoId(), b.GetDataInfoId())
	})
	// A slot leads on one node only, but two tables can disagree for a
	// moment (a leader that has not applied a move): drop repeats.
	all = slices.CompactFunc(all, func(a, b *registryv1.DataInfoIdCount) bool { return a.GetDataInfoId() == b.GetDataInfoId() })
	if len(all) > q.Limit {
		all, more = all[:q.Limit], true
	}
	p := Page{Entries: make([]Entry, 0, len(all))}
	for _, e := range all {
		p.Entries = append(p.Entries, entry(e))
	}
	if more && len(all) > 0 {
		p.Next = all[len(all)-1].GetDataInfoId()
	}
	slices.Sort(missing)
	p.Missing = slices.Compact(missing)
	return p, nil
}

// leader is one data node and the slots it leads.
type leader struct {
	id    slot.NodeID
	addr  string
	slots []uint32
}

// group sorts t's slots by leader; slots without a leader, or whose
// leader has no known address, are missing.
func group(t slot.Table, addr Addr) (leaders []*leader, missing []uint32) {
	by := map[slot.NodeID]*leader{}
	for _, sl := range t.Slots {
		l, ok := by[sl.Leader]
		if !ok && sl.Leader != "" {
			if a, known := addr(sl.Leader); known {
				l = &leader{id: sl.Leader, addr: a}
				by[sl.Leader] = l
				leaders = append(leaders, l)
			}
		}
		if l == nil {
			missing = append(missing, uint32(sl.ID))
			continue
		}
		l.slots = append(l.slots, uint32(sl.ID))
	}
	return leaders, missing
}

func listOne(ctx context.Context, l *leader, dial Dial, q Query) (*registryv1.ListDataInfoIdsResponse, error) {
	c, err := dial(identity.Peer{Role: identity.RoleData, Name: string(l.id)}, l.addr)
	if err != nil {
		return nil, err
	}
	return c.ListDataInfoIds(ctx, &registryv1.ListDataInfoIdsRequest{
		SlotIds: l.slots, Prefix: q.Prefix, After: q.After, Limit: uint32(q.Limit),
	})
}

func entry(e *registryv1.DataInfoIdCount) Entry {
	out := Entry{DataInfoID: e.GetDataInfoId(), Publishers: int(e.GetPublishers())}
	out.DataID, out.InstanceID, out.Group, _ = record.ParseDataInfoID(e.GetDataInfoId())
	return out
}
