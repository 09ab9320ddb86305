package data

import (
	"context"
	"fmt"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/node"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// policy is who may call each DataService method (node.Policy): sessions
// write, read and watch; data nodes replicate; operators may read, and
// so may meta, for its admin API and console.
var policy = node.Policy{
	registryv1.DataService_Publish_FullMethodName:        {identity.RoleSession},
	registryv1.DataService_PublishSlots_FullMethodName:   {identity.RoleSession},
	registryv1.DataService_GetDatums_FullMethodName:      {identity.RoleSession, identity.RoleMeta, identity.RoleAdmin},
	registryv1.DataService_GetVersions_FullMethodName:    {identity.RoleSession, identity.RoleAdmin},
	registryv1.DataService_SlotDigest_FullMethodName:     {identity.RoleSession, identity.RoleAdmin},
	registryv1.DataService_ListPublishers_FullMethodName: {identity.RoleSession, identity.RoleAdmin},
	// Service enumeration: sessions for their clients, meta for the
	// admin API and console.
	registryv1.DataService_ListDataInfoIds_FullMethodName: {identity.RoleSession, identity.RoleMeta, identity.RoleAdmin},
	registryv1.DataService_WatchChanges_FullMethodName:    {identity.RoleSession},
	registryv1.DataService_Replicate_FullMethodName:       {identity.RoleData},
}

// ownSession checks that the caller is the session whose process id it
// writes or watches under: a session process is "<node id>@<start>".
func ownSession(ctx context.Context, sessionID string) error {
	c := access.FromContext(ctx)
	if c.Is(identity.RoleSession, access.ProcNode(sessionID)) {
		return nil
	}
	return fmt.Errorf("%w: %s may not act for session %q", ErrDenied, c, sessionID)
}

// ownFollower checks that the caller is the data node it replicates for.
func ownFollower(ctx context.Context, follower string) error {
	c := access.FromContext(ctx)
	if c.Is(identity.RoleData, follower) {
		return nil
	}
	return fmt.Errorf("%w: %s may not replicate as data node %q", ErrDenied, c, follower)
}
