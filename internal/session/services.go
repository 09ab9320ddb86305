package session

import (
	"context"
	"errors"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/catalog"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// listServices lists one page of the services the slot leaders of this
// session's table hold (internal/catalog), keeping those caller may
// subscribe to. The page is cut before filtering, so it may hold fewer
// than the limit, even none; its Next continues after it all the same.
// Both client APIs serve it: ListServices on the gRPC port and GET
// /v1/services on the HTTP API.
func (s *Server) listServices(ctx context.Context, caller *access.Caller, q catalog.Query) (catalog.Page, error) {
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
	page, err := catalog.List(ctx, tv.t, addr, dial, q)
	if err != nil {
		return page, err
	}
	perms := s.Perms(caller)
	page.Entries = slices.DeleteFunc(page.Entries, func(e catalog.Entry) bool { return !perms.CanSubscribe(e.DataID) })
	return page, nil
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
