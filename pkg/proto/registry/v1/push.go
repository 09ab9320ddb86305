package registryv1

import "iter"

// Hand-written helpers on generated types (protoc does not touch this file).

// RegisterIDs yields every subscriber a push is for: register_id, then
// also_register_ids.
func (x *Push) RegisterIDs() iter.Seq[string] {
	return func(yield func(string) bool) {
		if !yield(x.GetRegisterId()) {
			return
		}
		for _, id := range x.GetAlsoRegisterIds() {
			if !yield(id) {
				return
			}
		}
	}
}

// AckAll returns the one ack that acks the push for all of its subscribers.
func (x *Push) AckAll() *PushAck {
	return &PushAck{RegisterId: x.GetRegisterId(), AlsoRegisterIds: x.GetAlsoRegisterIds(), Version: x.GetVersion()}
}
