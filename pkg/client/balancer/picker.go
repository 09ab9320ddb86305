package balancer

import (
	"sort"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/resolver"
)

// aggregate returns the state to report for children: a weighted picker
// over the READY serving ones, or why there is none; draw(n) returns a
// random number in [0, n) and must be safe for concurrent use. es is what
// endpointsharding reported; it stands when there are no children (no
// endpoints yet, or a resolver error before any).
func aggregate(children []endpointsharding.ChildState, es grpcbalancer.State, draw func(uint64) uint64) grpcbalancer.State {
	if len(children) == 0 {
		return es
	}
	ready := &weightedPicker{draw: draw}
	var connecting bool
	var failing grpcbalancer.Picker
	for _, c := range children {
		if !resolver.EndpointState(c.Endpoint).Serving() {
			continue // draining: its child keeps the connection, but no picks
		}
		switch c.State.ConnectivityState {
		case connectivity.Ready:
			ready.add(c.State.Picker, min(max(resolver.EndpointWeight(c.Endpoint), 1), discovery.MaxWeight))
		case connectivity.Connecting, connectivity.Idle:
			connecting = true // an idle child is reconnected by endpointsharding
		case connectivity.TransientFailure:
			if failing == nil {
				failing = c.State.Picker // fails picks with its own error
			}
		}
	}
	switch {
	case len(ready.pickers) > 0:
		return grpcbalancer.State{ConnectivityState: connectivity.Ready, Picker: ready}
	case connecting:
		return grpcbalancer.State{ConnectivityState: connectivity.Connecting, Picker: base.NewErrPicker(grpcbalancer.ErrNoSubConnAvailable)}
	case failing != nil:
		return grpcbalancer.State{ConnectivityState: connectivity.TransientFailure, Picker: failing}
	default:
		err := status.Errorf(codes.Unavailable, "strata balancer: none of the %d instances is serving (all draining)", len(children))
		return grpcbalancer.State{ConnectivityState: connectivity.TransientFailure, Picker: base.NewErrPicker(err)}
	}
}

// weightedPicker hands each pick to one of its children's pickers, drawn
// with chances in proportion to their weights. Immutable once built, so
// picks run concurrently without a lock.
type weightedPicker struct {
	pickers []grpcbalancer.Picker
	cum     []uint64 // cum[i]: the weights of pickers[0..i]
	draw    func(n uint64) uint64
}

func (p *weightedPicker) add(picker grpcbalancer.Picker, weight int) {
	var sum uint64
	if n := len(p.cum); n > 0 {
		sum = p.cum[n-1]
	}
	p.pickers = append(p.pickers, picker)
	p.cum = append(p.cum, sum+uint64(weight))
}

func (p *weightedPicker) Pick(info grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	r := p.draw(p.cum[len(p.cum)-1])
	return p.pickers[sort.Search(len(p.cum), func(i int) bool { return p.cum[i] > r })].Pick(info)
}
