package meta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/slot"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// forwardedKey marks a request a follower forwarded, so a second follower
// (during an election) answers "not leader" instead of forwarding again.
const forwardedKey = "strata-forwarded"

// leaderKey is the response header naming the leader's gRPC address when a
// node could not serve or forward a leader-only call.
const leaderKey = "strata-meta-leader"

// service implements registryv1.MetaServiceServer.
type service struct {
	registryv1.UnimplementedMetaServiceServer
	s *Server
}

// RegisterNode adds a data or session node, or confirms it. Only the node
// itself may register (its certificate names it). Registering the same node
// again is a no-op; the same id at another address is the node moving. On a
// node without TLS, where nothing is proven, another address is refused
// unless the gossip pool shows the node alive there.
func (v *service) RegisterNode(ctx context.Context, req *registryv1.RegisterNodeRequest) (*registryv1.RegisterNodeResponse, error) {
	m, err := memberFromProto(req.GetNode())
	if err != nil {
		return nil, toStatus(err)
	}
	c := caller(ctx)
	if err := claim(c, m.Role, m.ID); err != nil {
		return nil, toStatus(err)
	}
	if resp, ok, err := forward(ctx, v.s, func(c registryv1.MetaServiceClient, ctx context.Context) (*registryv1.RegisterNodeResponse, error) {
		return c.RegisterNode(ctx, req)
	}); ok {
		return resp, err
	}
	if err := v.s.register(m, !c.Insecure); err != nil {
		return nil, toStatus(err)
	}
	return &registryv1.RegisterNodeResponse{TableEpoch: v.s.fsm.Current().Table.Epoch}, nil
}

// register adds or updates m; proven says the caller's certificate named
// it, which makes it the authority on where it lives.
func (s *Server) register(m Member, proven bool) error {
	st := s.fsm.Current()
	if !st.Initialized() {
		return ErrNotInitialized
	}
	old, exists := st.Members[m.ID]
	if exists && old == m {
		return nil
	}
	if exists && old.Role != m.Role {
		return invalid("node %s is registered as %s, not %s", m.ID, old.Role, m.Role)
	}
	if exists && !proven && old.GRPC != m.GRPC && !s.poolShows(m) {
		return fmt.Errorf("%w: %s is at %s, not %s", ErrDuplicateNode, m.ID, old.GRPC, m.GRPC)
	}
	if mustReadmit(st, m) {
		return s.readmit(m)
	}
	// A move, if any, was judged above.
	return s.propose(command{Op: opUpsert, Member: &m, Replace: exists})
}

// poolShows reports whether the gossip pool shows m alive where it says it
// is: without TLS, the authority on where a node lives now.
func (s *Server) poolShows(m Member) bool {
	for _, p := range s.Agent().Members() {
		if p.ID == m.ID && p.State == cluster.StateAlive && p.Meta.GRPC == m.GRPC && p.Meta.Role == m.Role {
			return true
		}
	}
	return false
}

// mustReadmit reports whether data node m registering in state st is a
// new process of a node the slot table still gives slots to: its records
// lived in the old process's memory and are gone. Either meta knows it
// under another process id (a crash and quick restart, which gossip may
// never notice), or meta removed it (it left the pool on a graceful stop)
// and it came back before the arranger moved its slots: a chaos run saw a
// restart within 30 ms take back 85 leaderships at their old leader
// epochs, its versions counting again from below where subscribers were,
// so its keys' pushes stood still for 14 s.
func mustReadmit(st *State, m Member) bool {
	if m.Role != cluster.RoleData {
		return false
	}
	if old, exists := st.Members[m.ID]; exists {
		return old.Proc != "" && m.Proc != "" && old.Proc != m.Proc
	}
	return slices.ContainsFunc(st.Table.Slots, func(row slot.Slot) bool { return row.Has(slot.NodeID(m.ID)) })
}

// readmit takes a restarted data node back in three steps: remove it, let
// the arranger move its slots (failover to followers, new leader epochs),
// and add it again, empty, to be given slots as a follower. Keeping it
// under its old assignment would let it lead slots it no longer holds, at
// the same leader epoch, handing out versions it already used.
func (s *Server) readmit(m Member) error {
	s.logger.Info("data node restarted; moving its slots before taking it back", "member", m.ID, "proc", m.Proc)
	// Removing a node meta already removed changes nothing.
	if err := s.propose(command{Op: opRemove, NodeID: m.ID}); err != nil {
		return err
	}
	s.handovers.forget(m.ID) // the old process's report
	s.runArranger()
	return s.propose(command{Op: opUpsert, Member: &m, Replace: true})
}

// Heartbeat records a data node's per-slot sync status (proposing only what
// changed) and the handovers it has in flight (leader soft state), and a
// session node's client count.
func (v *service) Heartbeat(ctx context.Context, req *registryv1.HeartbeatRequest) (*registryv1.HeartbeatResponse, error) {
	if err := validNodeID(req.GetNodeId()); err != nil {
		return nil, toStatus(invalid("%v", err))
	}
	c := caller(ctx)
	// Checked here too, so a follower forwards nothing a stranger sent;
	// the leader's heartbeat checks the member's role as well.
	if err := claimAny(c, req.GetNodeId()); err != nil {
		return nil, toStatus(err)
	}
	if resp, ok, err := forward(ctx, v.s, func(c registryv1.MetaServiceClient, ctx context.Context) (*registryv1.HeartbeatResponse, error) {
		return c.Heartbeat(ctx, req)
	}); ok {
		return resp, err
	}
	if err := v.s.heartbeat(req, c); err != nil {
		return nil, toStatus(err)
	}
	return &registryv1.HeartbeatResponse{TableEpoch: v.s.fsm.Current().Table.Epoch}, nil
}

func (s *Server) heartbeat(req *registryv1.HeartbeatRequest, c *access.Caller) error {
	st := s.fsm.Current()
	m, ok := st.Members[req.GetNodeId()]
	if !ok {
		return fmt.Errorf("%w: %s (register first)", ErrUnknownNode, req.GetNodeId())
	}
	if err := claim(c, m.Role, m.ID); err != nil {
		return err
	}
	if m.Role == cluster.RoleSession {
		if len(req.GetSlots()) > 0 {
			return invalid("session node %s reported slot status; only data nodes hold slots", m.ID)
		}
		if len(req.GetHandoverSlots()) > 0 {
			return invalid("session node %s reported handover slots; only data nodes lead slots", m.ID)
		}
		s.loads.set(m.ID, req.GetClientCount())
		return nil
	}
	if len(req.GetSlots()) > st.Settings.Count {
		return invalid("%d slot reports, the cluster has %d slots", len(req.GetSlots()), st.Settings.Count)
	}
	rows := make([]syncRow, 0, len(req.GetSlots()))
	for _, r := range req.GetSlots() {
		if int(r.GetSlotId()) >= st.Settings.Count {
			return invalid("slot %d out of range: the cluster has %d slots (0..%d)", r.GetSlotId(), st.Settings.Count, st.Settings.Count-1)
		}
		rows = append(rows, syncRow{Slot: slot.ID(r.GetSlotId()), LeaderEpoch: r.GetLeaderEpoch(), Synced: r.GetSynced()})
	}
	if len(req.GetHandoverSlots()) > st.Settings.Count {
		return invalid("%d handover slots reported, the cluster has %d slots", len(req.GetHandoverSlots()), st.Settings.Count)
	}
	for _, id := range req.GetHandoverSlots() {
		if int(id) >= st.Settings.Count {
			return invalid("handover slot %d out of range: the cluster has %d slots (0..%d)", id, st.Settings.Count, st.Settings.Count-1)
		}
	}
	// Soft state, kept whether or not the sync proposal below succeeds:
	// it is what the node reports now, and the next heartbeat replaces it.
	s.handovers.set(m.ID, req.GetTableEpoch(), req.GetHandoverSlots())
	changes := syncChanges(st, slot.NodeID(m.ID), rows)
	if len(changes) == 0 {
		return nil
	}
	if err := s.propose(command{Op: opSync, NodeID: m.ID, Sync: changes}); err != nil {
		return err
	}
	s.signalArrange()
	return nil
}

// WatchSlotTable sends every table newer than the request's epoch, oldest
// first, then each new one as it commits. It is served from this node's
// replica, so any meta node can serve watchers.
func (v *service) WatchSlotTable(req *registryv1.WatchSlotTableRequest, stream grpc.ServerStreamingServer[registryv1.SlotTable]) error {
	last := req.GetAfterEpoch()
	// After the first look, the stream resumes from what it sent, so even a
	// watcher that started before any table sees every epoch.
	resume := last > 0
	for {
		st, changed := v.s.fsm.Watch()
		for _, t := range st.TablesAfter(last, resume) {
			if err := stream.Send(tableToProto(st, t)); err != nil {
				return err
			}
			last = t.Epoch
		}
		resume = true
		if err := v.s.awaitChange(stream.Context(), changed); err != nil {
			return err
		}
	}
}

// awaitChange waits for changed (the FSM published a newer state), for
// the watcher to go, or for this node to stop; a watch stream loops on it.
func (s *Server) awaitChange(ctx context.Context, changed <-chan struct{}) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopping:
		return status.Error(codes.Unavailable, ErrShuttingDown.Error())
	case <-changed:
		return nil
	}
}

// ListSessions returns the live sessions, lightest first (the caller's zone
// first when it names one). Loads live on the leader, so followers forward.
func (v *service) ListSessions(ctx context.Context, req *registryv1.ListSessionsRequest) (*registryv1.ListSessionsResponse, error) {
	if resp, ok, err := forward(ctx, v.s, func(c registryv1.MetaServiceClient, ctx context.Context) (*registryv1.ListSessionsResponse, error) {
		return c.ListSessions(ctx, req)
	}); ok {
		return resp, err
	}
	if len(req.GetZone()) > maxZoneLen {
		return nil, toStatus(invalid("zone is %d bytes, at most %d allowed", len(req.GetZone()), maxZoneLen))
	}
	st := v.s.fsm.Current()
	var out []*registryv1.SessionInfo
	for _, id := range sortedIDs(st.Members) {
		m := st.Members[id]
		if m.Role != cluster.RoleSession {
			continue
		}
		out = append(out, &registryv1.SessionInfo{Node: memberToProto(m), ClientCount: v.s.loads.get(id)})
	}
	zone := req.GetZone()
	slices.SortStableFunc(out, func(a, b *registryv1.SessionInfo) int {
		az, bz := a.GetNode().GetZone() == zone, b.GetNode().GetZone() == zone
		if zone != "" && az != bz {
			if az {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.GetClientCount(), b.GetClientCount())
	})
	return &registryv1.ListSessionsResponse{Sessions: out}, nil
}

// GetLeader answers from this node's view.
func (v *service) GetLeader(ctx context.Context, _ *registryv1.GetLeaderRequest) (*registryv1.GetLeaderResponse, error) {
	_, id := v.s.raft.raft.LeaderWithID()
	resp := &registryv1.GetLeaderResponse{Term: v.s.raft.raft.CurrentTerm()}
	if id != "" {
		for _, p := range v.s.metaPeers() {
			if p.GetId() == string(id) {
				resp.Leader = p
			}
		}
	}
	return resp, nil
}

// GetClusterInfo answers from this node's replica.
func (v *service) GetClusterInfo(ctx context.Context, _ *registryv1.GetClusterInfoRequest) (*registryv1.GetClusterInfoResponse, error) {
	st := v.s.fsm.Current()
	resp := &registryv1.GetClusterInfoResponse{
		ClusterId:   st.ClusterID,
		SlotCount:   uint32(st.Settings.Count),
		Replicas:    uint32(st.Settings.Replicas),
		Meta:        v.s.metaPeers(),
		TableEpoch:  st.Table.Epoch,
		Term:        v.s.raft.raft.CurrentTerm(),
		CommitIndex: v.s.raft.raft.CommitIndex(),
	}
	for _, id := range sortedIDs(st.Members) {
		resp.Members = append(resp.Members, memberToProto(st.Members[id]))
	}
	return resp, nil
}

// metaPeers lists the Raft servers with the addresses the pool announces.
func (s *Server) metaPeers() []*registryv1.MetaPeer {
	fut := s.raft.raft.GetConfiguration()
	if fut.Error() != nil {
		return nil
	}
	_, leader := s.raft.raft.LeaderWithID()
	pool := map[string]cluster.Member{}
	for _, m := range s.Agent().Members() {
		if m.Meta.Role == cluster.RoleMeta {
			pool[m.ID] = m
		}
	}
	var out []*registryv1.MetaPeer
	for _, srv := range fut.Configuration().Servers {
		p := &registryv1.MetaPeer{
			Id: string(srv.ID), RaftAddress: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, Leader: srv.ID == leader,
		}
		if m, ok := pool[string(srv.ID)]; ok {
			p.GrpcAddress, p.HttpAddress = m.Meta.GRPC, m.Meta.HTTP
		}
		if string(srv.ID) == s.cfg.NodeID {
			p.GrpcAddress, p.HttpAddress = s.GRPCAddr(), s.HTTPAddr()
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *registryv1.MetaPeer) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return out
}

// leaderGRPC returns the leader's gRPC address, or "" when unknown.
func (s *Server) leaderGRPC() string {
	_, addr := s.leaderPeer()
	return addr
}

// leaderPeer returns the leader's id and gRPC address ("" when unknown).
func (s *Server) leaderPeer() (id, addr string) {
	for _, p := range s.metaPeers() {
		if p.GetLeader() {
			return p.GetId(), p.GetGrpcAddress()
		}
	}
	return "", ""
}

// forward sends a leader-only call to the leader when this node is not it.
// ok is false when this node should serve the call itself.
func forward[R any](ctx context.Context, s *Server, call func(registryv1.MetaServiceClient, context.Context) (R, error)) (resp R, ok bool, err error) {
	if s.raft.raft.State() == raft.Leader {
		if !s.leaderReady.Load() {
			// A new leader serves once it has applied what earlier leaders
			// committed; until then its state may be behind a follower's.
			return resp, true, toStatus(ErrLeaderNotReady)
		}
		return resp, false, nil
	}
	leaderID, leader := s.leaderPeer()
	md, _ := metadata.FromIncomingContext(ctx)
	if leader == "" || len(md.Get(forwardedKey)) > 0 {
		_ = grpc.SetHeader(ctx, metadata.Pairs(leaderKey, leader))
		return resp, true, toStatus(&NotLeaderError{Leader: leader})
	}
	conn, err := s.Pool().Get(leader, identity.Peer{Role: identity.RoleMeta, Name: leaderID})
	if err != nil {
		return resp, true, toStatus(&NotLeaderError{Leader: leader})
	}
	out := forwardFor(ctx, metadata.AppendToOutgoingContext(ctx, forwardedKey, s.cfg.NodeID))
	resp, err = call(registryv1.NewMetaServiceClient(conn), out)
	return resp, true, err
}

// toStatus maps meta errors to gRPC statuses; it is the only place that
// does. Anything unrecognized is Internal.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var nle *NotLeaderError
	switch {
	case errors.As(err, &nle):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrNotIssuer):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrDuplicateNode):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ErrUnknownNode):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader), errors.Is(err, ErrNotInitialized), errors.Is(err, ErrLeaderNotReady),
		errors.Is(err, ErrShuttingDown), errors.Is(err, ErrStaleTable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
