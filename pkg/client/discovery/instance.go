package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"strconv"

	"github.com/strata-registry/strata/pkg/client"
)

// DefaultWeight is the weight of an instance registered with Weight 0.
const DefaultWeight = 1

// MaxWeight is the largest weight an instance may have (it fits the
// uint32 weights of gRPC's weighted balancers).
const MaxWeight = math.MaxInt32

// FormatVersion is the version of the record format Register writes (the
// "v" field). Readers accept any version from 1 on and ignore fields they
// do not know, so later versions may only add fields.
const FormatVersion = 1

// Instance is one reachable copy of a service.
//
// Its JSON form, with a "v" field holding FormatVersion, is the value of
// the record Register publishes, for example
//
//	{"v":1,"addr":"10.0.0.1:8080","weight":10,"zone":"az1","metadata":{"version":"1.4.2"}}
//
// so clients in other languages can read and write it. A draining or
// disabled instance adds "state":"draining" (or "disabled"); a serving one
// leaves the field out, so records of writers that predate it read as
// serving.
type Instance struct {
	// Addr is where the instance serves, as host:port with a non-empty
	// host and a numeric port (what a gRPC or HTTP client dials).
	// Required.
	Addr string `json:"addr"`
	// Weight is the instance's share of traffic relative to the others,
	// 0 to MaxWeight; Register stores 0 as DefaultWeight, so watchers
	// always see at least 1.
	Weight int `json:"weight,omitempty"`
	// Zone is the instance's availability zone. When empty, watchers see
	// the zone of the client that registered it (client.WithZone).
	Zone string `json:"zone,omitempty"`
	// Metadata is free-form; the whole encoded instance must fit one
	// record value (1 MiB), or Register returns client.ErrTooLarge.
	Metadata map[string]string `json:"metadata,omitempty"`
	// State says whether the instance takes new traffic (see State; the
	// zero value is StateServing). Register and Update accept the three
	// states declared here; a watcher also reads a state it does not know
	// (from a newer writer) and keeps it as read: not serving.
	State State `json:"state,omitempty"`
}

// wire is the record format: an Instance with its format version.
type wire struct {
	V int `json:"v"`
	Instance
}

// normalize validates inst and returns it as stored: Weight 0 becomes
// DefaultWeight, and Metadata is copied so later changes by the caller do
// not reach the registration. Errors wrap client.ErrInvalidArgument.
func normalize(inst Instance) (Instance, error) {
	if err := checkAddr(inst.Addr); err != nil {
		return Instance{}, invalidf("instance address %q: %v", inst.Addr, err)
	}
	if inst.Weight < 0 || inst.Weight > MaxWeight {
		return Instance{}, invalidf("instance weight %d is outside 0..%d", inst.Weight, MaxWeight)
	}
	if inst.Weight == 0 {
		inst.Weight = DefaultWeight
	}
	if !inst.State.known() {
		return Instance{}, invalidf("instance state %q is not one of %q, %q, %q", inst.State, stateServingName, StateDraining, StateDisabled)
	}
	if inst.State == stateServingName {
		inst.State = StateServing
	}
	inst.Metadata = maps.Clone(inst.Metadata)
	return inst, nil
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: discovery: %s", client.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// encode returns the record value of a normalized instance.
func encode(inst Instance) ([]byte, error) {
	return json.Marshal(wire{V: FormatVersion, Instance: inst})
}

// decode reads a record value published from zone: an instance in any
// format version from 1 on, checked as Register checks it, with Zone
// defaulting to zone. Anything else (other JSON, raw bytes) is an error.
// A state Register would refuse is kept as read rather than refused: a
// newer writer may add states, and such an instance must reach watchers
// as one that is not serving, not vanish from the list.
func decode(data []byte, zone string) (Instance, error) {
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return Instance{}, err
	}
	if w.V < 1 {
		return Instance{}, errors.New(`no format version ("v") in the record`)
	}
	var unknown State // set aside so normalize checks the rest
	if !w.State.known() {
		unknown, w.State = w.State, StateServing
	}
	inst, err := normalize(w.Instance)
	if err != nil {
		return Instance{}, err
	}
	if unknown != "" {
		inst.State = unknown
	}
	if inst.Zone == "" {
		inst.Zone = zone
	}
	return inst, nil
}
