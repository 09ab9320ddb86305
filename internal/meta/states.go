package meta

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"

	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// Operator marks on instances (registryctl drain / undrain): an operator
// says "send no new traffic to 10.0.0.7:8080 of com.example.echo"
// (draining) or "none at all" (disabled) without touching the record, which
// belongs to the instance's owner. Marks live in the replicated state, so
// they outlast restarts of the instance, its session and any node; data
// leaders follow them (WatchInstanceStates), attach a key's marks to its
// datum and bump its version when they change, so every subscriber is
// pushed the change the way it is pushed a publish. The discovery layer
// applies a mark to the instance whose address it names.

// Instance states an operator may set. The empty state clears a mark.
const (
	StateDraining = "draining"
	StateDisabled = "disabled"
)

// Bounds of the marks: they are for operators, a handful at a time.
const (
	MaxMarks       = 10000
	MaxReasonBytes = 256
	MaxAddrBytes   = 256
)

// Mark is one operator mark, as the state holds it.
type Mark struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// SetBy is the operator identity; SetAtMs the leader's clock (Unix ms)
	// when it proposed the mark. Both are for people, not for Apply.
	SetBy   string `json:"set_by,omitempty"`
	SetAtMs int64  `json:"set_at_ms,omitempty"`
}

// markCmd sets (State non-empty) or clears one mark.
type markCmd struct {
	Key  string `json:"key"`
	Addr string `json:"addr"`
	Mark Mark   `json:"mark"`
}

// checkMark validates a mark command; Apply and the RPC both use it, so a
// replica refuses exactly what the leader refused.
func checkMark(c markCmd) error {
	if _, _, _, err := record.ParseDataInfoID(c.Key); err != nil {
		return invalid("data_info_id: %v", err)
	}
	if len(c.Addr) == 0 || len(c.Addr) > MaxAddrBytes {
		return invalid("addr must be 1..%d bytes, got %d", MaxAddrBytes, len(c.Addr))
	}
	if host, port, err := net.SplitHostPort(c.Addr); err != nil || host == "" || port == "" {
		return invalid("addr %q is not host:port", c.Addr)
	}
	switch c.Mark.State {
	case "", StateDraining, StateDisabled:
	default:
		return invalid("state %q: want %q, %q or \"\" (clear)", c.Mark.State, StateDraining, StateDisabled)
	}
	if len(c.Mark.Reason) > MaxReasonBytes || !utf8.ValidString(c.Mark.Reason) {
		return invalid("reason must be UTF-8 text of at most %d bytes", MaxReasonBytes)
	}
	return nil
}

// applyMark returns marks with c applied, sharing what c does not change.
func applyMark(marks map[string]map[string]Mark, c markCmd) (map[string]map[string]Mark, error) {
	if err := checkMark(c); err != nil {
		return nil, err
	}
	_, exists := marks[c.Key][c.Addr]
	if c.Mark.State == "" && !exists {
		return marks, nil
	}
	if c.Mark.State != "" && !exists && countMarks(marks) >= MaxMarks {
		return nil, invalid("%d instance marks already, at most %d: clear some first", MaxMarks, MaxMarks)
	}
	out := maps.Clone(marks)
	if out == nil {
		out = map[string]map[string]Mark{}
	}
	byAddr := maps.Clone(marks[c.Key])
	if byAddr == nil {
		byAddr = map[string]Mark{}
	}
	if c.Mark.State == "" {
		delete(byAddr, c.Addr)
	} else {
		byAddr[c.Addr] = c.Mark
	}
	if len(byAddr) == 0 {
		delete(out, c.Key)
	} else {
		out[c.Key] = byAddr
	}
	return out, nil
}

func countMarks(marks map[string]map[string]Mark) int {
	n := 0
	for _, m := range marks {
		n += len(m)
	}
	return n
}

// statesToProto is the whole set of marks, sorted by key then address.
func statesToProto(st *State) *registryv1.InstanceStates {
	out := &registryv1.InstanceStates{Index: st.StatesIndex}
	for _, key := range slices.Sorted(maps.Keys(st.Marks)) {
		for _, addr := range slices.Sorted(maps.Keys(st.Marks[key])) {
			m := st.Marks[key][addr]
			out.Entries = append(out.Entries, &registryv1.InstanceStateEntry{DataInfoId: key, Addr: addr, State: m.State,
				Reason: m.Reason, SetBy: m.SetBy, SetAtUnixMs: m.SetAtMs})
		}
	}
	return out
}

// SetInstanceState sets or clears an operator mark (leader; followers
// forward). The policy admits operators only.
func (v *service) SetInstanceState(ctx context.Context, req *registryv1.SetInstanceStateRequest) (*registryv1.SetInstanceStateResponse, error) {
	c := markCmd{Key: req.GetDataInfoId(), Addr: req.GetAddr(), Mark: Mark{State: req.GetState(), Reason: strings.TrimSpace(req.GetReason())}}
	if err := checkMark(c); err != nil {
		return nil, toStatus(err)
	}
	if resp, ok, err := forward(ctx, v.s, func(mc registryv1.MetaServiceClient, ctx context.Context) (*registryv1.SetInstanceStateResponse, error) {
		return mc.SetInstanceState(ctx, req)
	}); ok {
		return resp, err
	}
	// The policy let an operator or a meta node through; a meta node
	// only forwards, so the leader judges whom it forwards for.
	who := caller(ctx)
	if who == nil || (!who.Insecure && !who.Is(identity.RoleAdmin, "")) {
		return nil, toStatus(fmt.Errorf("%w: %s may not mark instances; operators only", ErrDenied, who))
	}
	c.Mark.SetBy = who.String()
	c.Mark.SetAtMs = v.s.clock.Now().UnixMilli()
	if err := v.s.propose(command{Op: opMark, Mark: &c}); err != nil {
		return nil, toStatus(err)
	}
	v.s.logger.Info("instance mark set", "data_info_id", c.Key, "addr", c.Addr, "state", c.Mark.State, "by", c.Mark.SetBy, "reason", c.Mark.Reason)
	return &registryv1.SetInstanceStateResponse{Index: v.s.fsm.Current().StatesIndex}, nil
}

// WatchInstanceStates streams the whole set of marks now and after every
// change, from this node's replicated state.
func (v *service) WatchInstanceStates(_ *registryv1.WatchInstanceStatesRequest, stream grpc.ServerStreamingServer[registryv1.InstanceStates]) error {
	sent := uint64(0)
	first := true
	for {
		st, changed := v.s.fsm.Watch()
		if first || st.StatesIndex != sent {
			if err := stream.Send(statesToProto(st)); err != nil {
				return err
			}
			sent, first = st.StatesIndex, false
		}
		if err := v.s.awaitChange(stream.Context(), changed); err != nil {
			return err
		}
	}
}
