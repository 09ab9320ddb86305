package wire

import (
	"iter"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// One push may serve several subscriptions of a connection to the same
// key: register_id names the first, also_register_ids the others, and one
// ack (AckAll) acks it for all of them.

// RegisterIDs yields every subscriber p is for: register_id, then
// also_register_ids.
func RegisterIDs(p *registryv1.Push) iter.Seq[string] {
	return func(yield func(string) bool) {
		if !yield(p.GetRegisterId()) {
			return
		}
		for _, id := range p.GetAlsoRegisterIds() {
			if !yield(id) {
				return
			}
		}
	}
}

// AckAll returns the one ack that acks p for all of its subscribers.
func AckAll(p *registryv1.Push) *registryv1.PushAck {
	return &registryv1.PushAck{RegisterId: p.GetRegisterId(), AlsoRegisterIds: p.GetAlsoRegisterIds(), Version: p.GetVersion()}
}
