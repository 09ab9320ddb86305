package session

import (
	"context"
	"errors"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/catalog"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// listServices lists one page of the services the slot leaders of this
// session's table hold (internal/catalog), those caller may subscribe to.
// The caller's rights go into the query, not after it: each of its
// subscribe prefixes, narrowed by the query's prefix, is listed and the
// pages merged, so every key in the answer, the cursor included, is one
// the caller may see (filtering a page after cutting it would hand out a
// hidden key as the next cursor, and paging with limit 1 would list every
// name). Both client APIs serve it: ListServices on the gRPC port and
// GET /v1/services on the HTTP API.
func (s *Server) listServices(ctx context.Context, caller *access.Caller, q catalog.Query) (catalog.Page, error) {
	if err := q.Check(); err != nil {
		return catalog.Page{}, err
	}
	tv := s.table.Load()
	if tv == nil {
		return catalog.Page{}, errNoTable
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	addr := func(id slot.NodeID) (string, bool) {
		a := s.dataAddr(id)
		return a, a != ""
	}
	dial := func(peer identity.Peer, addr string) (registryv1.DataServiceClient, error) {
		conn, err := s.Pool().Get(addr, peer)
		if err != nil {
			return nil, err
		}
		return registryv1.NewDataServiceClient(conn), nil
	}
	perms := s.Perms(caller)
	var out catalog.Page
	more := false
	for _, prefix := range visiblePrefixes(perms.Subscribe, q.Prefix) {
		sub := q
		sub.Prefix = prefix
		page, err := catalog.List(ctx, tv.t, addr, dial, sub)
		if err != nil {
			return catalog.Page{}, err
		}
		out.Entries = append(out.Entries, page.Entries...)
		out.Missing = append(out.Missing, page.Missing...)
		more = more || page.Next != ""
	}
	slices.SortFunc(out.Entries, func(a, b catalog.Entry) int { return strings.Compare(a.DataInfoID, b.DataInfoID) })
	out.Entries = slices.CompactFunc(out.Entries, func(a, b catalog.Entry) bool { return a.DataInfoID == b.DataInfoID })
	// A prefix right that reaches into a key's separator can match a key
	// whose data ID it does not: keep the rule Subscribe applies.
	out.Entries = slices.DeleteFunc(out.Entries, func(e catalog.Entry) bool { return !perms.CanSubscribe(e.DataID) })
	if len(out.Entries) > q.Limit {
		out.Entries, more = out.Entries[:q.Limit], true
	}
	if more && len(out.Entries) > 0 {
		out.Next = out.Entries[len(out.Entries)-1].DataInfoID
	}
	slices.Sort(out.Missing)
	out.Missing = slices.Compact(out.Missing)
	return out, nil
}

// visiblePrefixes returns the key prefixes to list for a query prefix and
// the caller's subscribe rights: each right narrowed by the query (the
// longer of the two where one extends the other; none where they part),
// without prefixes another one covers. A "*" right lists the query as is.
func visiblePrefixes(rights []string, query string) []string {
	var out []string
	for _, r := range rights {
		switch {
		case r == access.Any || strings.HasPrefix(query, r):
			out = append(out, query)
		case strings.HasPrefix(r, query):
			out = append(out, r)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	// Drop a prefix that a shorter one already covers: sorted, a covering
	// prefix comes before what it covers.
	var kept []string
	for _, p := range out {
		if !slices.ContainsFunc(kept, func(k string) bool { return strings.HasPrefix(p, k) }) {
			kept = append(kept, p)
		}
	}
	return kept
}

// ListServices implements the client API's service enumeration.
func (v *clientService) ListServices(ctx context.Context, req *registryv1.ListServicesRequest) (*registryv1.ListServicesResponse, error) {
	caller := access.FromContext(ctx)
	if caller == nil {
		return nil, status.Error(codes.Unauthenticated, "session: unauthenticated call")
	}
	if req.GetLimit() > catalog.MaxLimit {
		return nil, status.Errorf(codes.InvalidArgument, "session: limit %d out of range 1..%d", req.GetLimit(), catalog.MaxLimit)
	}
	q := catalog.Query{Prefix: req.GetPrefix(), After: req.GetAfter(), Limit: int(req.GetLimit())}
	page, err := v.s.listServices(ctx, caller, q)
	switch {
	case err == nil:
	case errors.Is(err, catalog.ErrInvalid):
		return nil, status.Errorf(codes.InvalidArgument, "session: %v", err)
	case status.Code(err) != codes.Unknown: // a status already (no table yet)
		return nil, err
	default:
		return nil, status.Errorf(codes.Unavailable, "session: list services: %v", err)
	}
	resp := &registryv1.ListServicesResponse{Next: page.Next, MissingSlots: page.Missing}
	for _, e := range page.Entries {
		resp.Services = append(resp.Services, &registryv1.ServiceEntry{DataInfoId: e.DataInfoID, DataId: e.DataID,
			InstanceId: e.InstanceID, Group: e.Group, Publishers: uint32(e.Publishers)})
	}
	return resp, nil
}
