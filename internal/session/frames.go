package session

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/publisher"
	"github.com/strata-registry/strata/internal/push"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// What a client frame may hold, checked before anything else looks at it.
// These are pure (no state, no clock of their own): the edge a client
// reaches, and what FuzzClientFrame drives. Rights, rates and quotas are
// the connection's, checked after.

// checkHello checks a stream's first frame.
func checkHello(h *registryv1.Hello) error {
	if err := record.ValidateID("client_id", h.GetClientId(), record.MaxRegisterIDBytes); err != nil {
		return toStatus(err)
	}
	if len(h.GetZone()) > record.MaxZoneBytes {
		return status.Errorf(codes.InvalidArgument, "session: zone is %d bytes, at most %d allowed", len(h.GetZone()), record.MaxZoneBytes)
	}
	return nil
}

// publisherOf builds the publisher a RegisterPublisher frame asks for, on
// a connection of owner (the identity's name, "" without TLS) from zone:
// validated, its register ID qualified by the owner, stamped with the
// session's process, the connection and now.
func publisherOf(rp *registryv1.RegisterPublisher, owner, zone, proc, connID string, now time.Time) (*registryv1.Publisher, error) {
	p := &registryv1.Publisher{
		RegisterId: publisher.Owned(owner, rp.GetRegisterId()), DataInfoId: record.DataInfoID(rp.GetDataId(), rp.GetInstanceId(), rp.GetGroup()),
		ClientVersion: rp.GetVersion(), RegisterTimestamp: now.UnixNano(), Zone: zone, Values: rp.GetValues(),
		SessionId: proc, ConnId: connID,
	}
	if err := publisher.ValidateClient(rp.GetRegisterId(), p); err != nil {
		return nil, toStatus(err)
	}
	return p, nil
}

// subscriberOf checks a RegisterSubscriber frame and returns the key and
// scope it asks for.
func subscriberOf(rs *registryv1.RegisterSubscriber) (key string, scope push.Scope, err error) {
	key = record.DataInfoID(rs.GetDataId(), rs.GetInstanceId(), rs.GetGroup())
	if _, _, _, err := record.ParseDataInfoID(key); err != nil {
		return "", 0, toStatus(err)
	}
	if err := record.ValidateRegisterID(rs.GetRegisterId()); err != nil {
		return "", 0, toStatus(err)
	}
	switch rs.GetScope() {
	case registryv1.Scope_SCOPE_ZONE:
		scope = push.ScopeZone
	case registryv1.Scope_SCOPE_DATACENTER:
		scope = push.ScopeDatacenter
	case registryv1.Scope_SCOPE_GLOBAL, registryv1.Scope_SCOPE_UNSPECIFIED:
		scope = push.ScopeGlobal
	default:
		return "", 0, status.Errorf(codes.InvalidArgument, "session: unknown scope %d", rs.GetScope())
	}
	return key, scope, nil
}
