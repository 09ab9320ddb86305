package discovery

import "context"

// State says whether an instance takes new traffic. It is the single input
// the Picker, the gRPC resolver and its balancer read: the owner sets it
// through Register, Update or SetState, an operator may hold it back with
// `registryctl drain` (the watcher shows the one of the two that takes
// less traffic), and whatever a watcher sees in Instance.State is what
// they honour.
type State string

const (
	// StateServing is the zero value: the instance takes new traffic. It
	// is left out of the record's JSON; "serving" is read as the same.
	StateServing State = ""
	// StateDraining: the instance finishes what it has and gets nothing
	// new. Pick skips it; the resolver still lists it, so the balancer
	// keeps its connection (calls already on it complete) but sends it no
	// new RPC. Set it before stopping a server, wait out the calls in
	// flight, then Deregister.
	StateDraining State = "draining"
	// StateDisabled: the instance gets nothing. Pick skips it and the
	// resolver leaves it out, so gRPC closes its connections; the record
	// stays registered (a server kept out of rotation for inspection).
	StateDisabled State = "disabled"
)

// stateServingName is how other writers may spell StateServing.
const stateServingName = "serving"

// Serving reports whether s takes new traffic: only StateServing does. A
// state this version does not know (written by a newer client, which may
// add states) is not serving, so an instance is never sent traffic its
// owner did not mean it to get.
func (s State) Serving() bool { return s == StateServing }

// known reports whether s is a state Register and Update accept.
func (s State) known() bool {
	return s == StateServing || s == StateDraining || s == StateDisabled || s == stateServingName
}

// rank orders states by how much traffic they take: serving first, then
// draining and unknown states (listed, nothing new), then disabled.
func (s State) rank() int {
	switch {
	case s.Serving():
		return 0
	case s == StateDisabled:
		return 2
	default:
		return 1
	}
}

// under returns the state of an instance whose owner set s and on which an
// operator set mark (registryctl drain): the one that takes less traffic.
// An operator can hold an instance back, never push one its owner drains.
func (s State) under(mark State) State {
	if mark.rank() > s.rank() {
		return mark
	}
	return s
}

// PerAddress returns the Set's instances, one per address, in the Set's
// order. Of two registrations of one address (a server restarted before
// its old record went away, say) the one that takes more traffic is kept:
// serving before draining (or a state this version does not know), before
// disabled; the first in the Set among equals. The Picker and the gRPC
// resolver both read a Set this way.
func (s Set) PerAddress() []Instance {
	out := make([]Instance, 0, len(s.Instances))
	at := make(map[string]int, len(s.Instances))
	for _, inst := range s.Instances {
		i, seen := at[inst.Addr]
		switch {
		case !seen:
			at[inst.Addr] = len(out)
			out = append(out, inst)
		case inst.State.rank() < out[i].State.rank():
			out[i] = inst
		}
	}
	return out
}

// SetState changes the registered instance's state, keeping the rest, and
// returns once a session has stored the change (see Update for errors;
// a state other than StateServing, StateDraining and StateDisabled is
// client.ErrInvalidArgument).
func (r *Registration) SetState(ctx context.Context, s State) error {
	r.updating.Lock()
	defer r.updating.Unlock()
	inst := r.Instance()
	inst.State = s
	return r.storeLocked(ctx, inst)
}

// Drain marks the instance StateDraining: it keeps serving what it has and
// gets no new traffic. The same as SetState(ctx, StateDraining).
func (r *Registration) Drain(ctx context.Context) error { return r.SetState(ctx, StateDraining) }

// Undrain puts the instance back in service (StateServing), whether it was
// draining or disabled. The same as SetState(ctx, StateServing).
func (r *Registration) Undrain(ctx context.Context) error { return r.SetState(ctx, StateServing) }
