package meta

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// policy is who may call each MetaService method (node.Policy). Meta nodes
// may call the leader-only methods because followers forward them; the
// leader then judges the identity the follower forwards for.
var policy = node.Policy{
	registryv1.MetaService_RegisterNode_FullMethodName:   {identity.RoleData, identity.RoleSession, identity.RoleMeta},
	registryv1.MetaService_Heartbeat_FullMethodName:      {identity.RoleData, identity.RoleSession, identity.RoleMeta},
	registryv1.MetaService_WatchSlotTable_FullMethodName: {identity.RoleData, identity.RoleSession, identity.RoleMeta, identity.RoleAdmin},
	registryv1.MetaService_ListSessions_FullMethodName:   {identity.RoleClient, identity.RoleData, identity.RoleSession, identity.RoleMeta, identity.RoleAdmin},
	registryv1.MetaService_GetLeader_FullMethodName:      {identity.RoleClient, identity.RoleData, identity.RoleSession, identity.RoleMeta, identity.RoleAdmin},
	registryv1.MetaService_GetClusterInfo_FullMethodName: {identity.RoleData, identity.RoleSession, identity.RoleMeta, identity.RoleAdmin},
	registryv1.MetaService_Enroll_FullMethodName:         {identity.RoleEnroll},
	// Operator marks on instances: set by operators (meta: forwarded),
	// followed by data leaders; operators may watch them too.
	registryv1.MetaService_SetInstanceState_FullMethodName:    {identity.RoleAdmin, identity.RoleMeta},
	registryv1.MetaService_WatchInstanceStates_FullMethodName: {identity.RoleData, identity.RoleMeta, identity.RoleAdmin},
}

// forwardedForKey names the identity a follower forwards a call for.
const forwardedForKey = "strata-forwarded-for"

// caller returns who a call is really from: the authenticated caller, or,
// for a call a meta follower forwarded, the identity it forwards for
// (which the follower authenticated; only meta nodes may say so).
func caller(ctx context.Context) *access.Caller {
	c := access.FromContext(ctx)
	if c == nil || c.Insecure || !c.Is(identity.RoleMeta, "") {
		return c
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(forwardedForKey); len(v) == 1 {
		if id, err := identity.Parse(v[0]); err == nil {
			return &access.Caller{ID: id}
		}
	}
	return c
}

// forwardFor adds to an outgoing context whom a forwarded call is for.
func forwardFor(ctx, out context.Context) context.Context {
	if c := caller(ctx); c != nil && !c.Insecure {
		return metadata.AppendToOutgoingContext(out, forwardedForKey, c.ID.String())
	}
	return out
}

// identityRole is the identity role of a member role.
func identityRole(r cluster.Role) identity.Role { return identity.Role(r) }

// claim checks that the caller is the node it registers or heartbeats as:
// a data node only as itself, a session only as itself.
func claim(c *access.Caller, role cluster.Role, id string) error {
	if c.Is(identityRole(role), id) {
		return nil
	}
	return permissionDenied("%s may not act as %s node %s", c, role, id)
}

// claimAny is claim for a call that names the node but not its role
// (Heartbeat): the caller must be that data or session node.
func claimAny(c *access.Caller, id string) error {
	if c.Is(identity.RoleData, id) || c.Is(identity.RoleSession, id) {
		return nil
	}
	return permissionDenied("%s may not heartbeat as node %s", c, id)
}
