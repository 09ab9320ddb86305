package balancer

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	grpcresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

// countingPicker stands for a child's picker: it counts its picks and
// answers err.
type countingPicker struct {
	n   *int
	err error
}

func (p countingPicker) Pick(grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	*p.n++
	return grpcbalancer.PickResult{}, p.err
}

type child struct {
	weight int
	state  discovery.State
	conn   connectivity.State
	err    error
	picks  int
}

func childStates(cs []*child) []endpointsharding.ChildState {
	out := make([]endpointsharding.ChildState, len(cs))
	for i, c := range cs {
		ep := resolver.NewEndpoint(discovery.Instance{Addr: "10.0.0.1:80", Weight: c.weight, State: c.state})
		if c.weight < 0 {
			ep = grpcresolver.Endpoint{Addresses: []grpcresolver.Address{{Addr: "10.0.0.9:80"}}} // not from Strata
		}
		out[i] = endpointsharding.ChildState{Endpoint: ep,
			State: grpcbalancer.State{ConnectivityState: c.conn, Picker: countingPicker{&c.picks, c.err}}}
	}
	return out
}

func seeded() func(uint64) uint64 { return rand.New(rand.NewPCG(1, 2)).Uint64N }

func TestAggregate_PicksFollowWeights_NeverDraining(t *testing.T) {
	cs := []*child{
		{weight: 1, conn: connectivity.Ready},
		{weight: 2, conn: connectivity.Ready},
		{weight: 3, conn: connectivity.Ready},
		{weight: -1, conn: connectivity.Ready}, // no Strata attributes: weight 1
		{weight: 3, conn: connectivity.Ready, state: discovery.StateDraining},
		{weight: 50, conn: connectivity.Ready, state: "warming"},
		{weight: 50, conn: connectivity.Connecting},
		{weight: 50, conn: connectivity.TransientFailure},
	}
	st := aggregate(childStates(cs), grpcbalancer.State{}, seeded())
	if st.ConnectivityState != connectivity.Ready {
		t.Fatalf("state %v; want READY", st.ConnectivityState)
	}
	const n = 70_000
	for range n {
		if _, err := st.Picker.Pick(grpcbalancer.PickInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 4; i < len(cs); i++ {
		if cs[i].picks != 0 {
			t.Fatalf("child %d (%+v) was picked %d times", i, cs[i], cs[i].picks)
		}
	}
	// Chi-square, 3 degrees of freedom: 16.27 is the 0.1% bound of a fair
	// draw (the seed is fixed: this never flakes).
	var chi2 float64
	for i, w := range []float64{1, 2, 3, 1} {
		want := n * w / 7
		diff := float64(cs[i].picks) - want
		chi2 += diff * diff / want
	}
	if chi2 > 16.27 {
		t.Fatalf("picks %d %d %d %d for weights 1:2:3:1: chi-square %.1f", cs[0].picks, cs[1].picks, cs[2].picks, cs[3].picks, chi2)
	}
}

func TestAggregate_States(t *testing.T) {
	childErr := status.Error(codes.Unavailable, "connection refused")
	tests := []struct {
		name     string
		children []*child
		want     connectivity.State
		wantErr  func(error) bool
	}{
		{"serving connecting, draining ready: wait for the serving one",
			[]*child{{weight: 1, conn: connectivity.Connecting}, {weight: 1, conn: connectivity.Ready, state: discovery.StateDraining}},
			connectivity.Connecting, func(err error) bool { return errors.Is(err, grpcbalancer.ErrNoSubConnAvailable) }},
		{"serving idle: reconnecting",
			[]*child{{weight: 1, conn: connectivity.Idle}, {weight: 1, conn: connectivity.TransientFailure, err: childErr}},
			connectivity.Connecting, func(err error) bool { return errors.Is(err, grpcbalancer.ErrNoSubConnAvailable) }},
		{"serving failing, draining ready: fail with the child's error",
			[]*child{{weight: 1, conn: connectivity.TransientFailure, err: childErr}, {weight: 1, conn: connectivity.Ready, state: discovery.StateDraining}},
			connectivity.TransientFailure, func(err error) bool { return err == childErr }},
		{"all draining",
			[]*child{{weight: 1, conn: connectivity.Ready, state: discovery.StateDraining}, {weight: 1, conn: connectivity.Ready, state: "warming"}},
			connectivity.TransientFailure, func(err error) bool {
				return status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "none of the 2 instances is serving")
			}},
	}
	for _, tt := range tests {
		st := aggregate(childStates(tt.children), grpcbalancer.State{}, seeded())
		_, err := st.Picker.Pick(grpcbalancer.PickInfo{})
		if st.ConnectivityState != tt.want || !tt.wantErr(err) {
			t.Errorf("%s: state %v, pick error %v; want %v", tt.name, st.ConnectivityState, err, tt.want)
		}
		if tt.children[1].picks != 0 && tt.children[1].state != "" {
			t.Errorf("%s: the draining child was picked", tt.name)
		}
	}
	// No children: endpointsharding's own state stands.
	es := grpcbalancer.State{ConnectivityState: connectivity.TransientFailure}
	if st := aggregate(nil, es, seeded()); st != es {
		t.Errorf("no children: %+v; want %+v", st, es)
	}
}
