package discovery

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/strata-registry/strata/pkg/client"
)

func TestNormalize_State(t *testing.T) {
	tests := []struct {
		in      State
		want    State
		wantErr bool
	}{
		{StateServing, StateServing, false},
		{"serving", StateServing, false},
		{StateDraining, StateDraining, false},
		{StateDisabled, StateDisabled, false},
		{"paused", "", true},
		{"DRAINING", "", true},
		{" draining", "", true},
	}
	for _, tt := range tests {
		got, err := normalize(Instance{Addr: "h:1", State: tt.in})
		if tt.wantErr {
			if !errors.Is(err, client.ErrInvalidArgument) {
				t.Errorf("state %q: %+v, %v; want ErrInvalidArgument", tt.in, got, err)
			}
			continue
		}
		if err != nil || got.State != tt.want {
			t.Errorf("state %q: %+v, %v; want state %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEncode_StateOnlyWhenNotServing(t *testing.T) {
	for _, tt := range []struct {
		state State
		want  string
	}{
		{StateServing, `{"v":1,"addr":"h:1","weight":1}`},
		{StateDraining, `{"v":1,"addr":"h:1","weight":1,"state":"draining"}`},
		{StateDisabled, `{"v":1,"addr":"h:1","weight":1,"state":"disabled"}`},
	} {
		if got := mustEncode(t, Instance{Addr: "h:1", Weight: 1, State: tt.state}); got != tt.want {
			t.Errorf("state %q encodes as %s; want %s", tt.state, got, tt.want)
		}
	}
}

func TestDecode_State(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    State
		serving bool
	}{
		{"absent: a writer from before states", `{"v":1,"addr":"h:1"}`, StateServing, true},
		{"spelled out", `{"v":1,"addr":"h:1","state":"serving"}`, StateServing, true},
		{"draining", `{"v":1,"addr":"h:1","state":"draining"}`, StateDraining, false},
		{"disabled", `{"v":1,"addr":"h:1","state":"disabled"}`, StateDisabled, false},
		{"unknown, from a newer writer: kept, not serving", `{"v":2,"addr":"h:1","state":"warming"}`, "warming", false},
		{"case matters", `{"v":1,"addr":"h:1","state":"Serving"}`, "Serving", false},
	}
	for _, tt := range tests {
		got, err := decode([]byte(tt.data), "z")
		if err != nil || got.State != tt.want || got.State.Serving() != tt.serving {
			t.Errorf("%s: decode(%s) = %+v, %v; want state %q (serving %v)", tt.name, tt.data, got, err, tt.want, tt.serving)
		}
	}
	if got, err := decode([]byte(`{"v":1,"addr":"h:1","state":3}`), ""); err == nil {
		t.Errorf("a state that is not a string decodes as %+v", got)
	}
	// An unknown state does not excuse the rest.
	if got, err := decode([]byte(`{"v":1,"addr":"nohost","state":"warming"}`), ""); err == nil {
		t.Errorf("a bad address with an unknown state decodes as %+v", got)
	}
}

func TestSet_PerAddress_KeepsTheOneTakingMostTraffic(t *testing.T) {
	set := Set{Instances: []Instance{
		{Addr: "a:1", Weight: 1, State: StateDisabled},
		{Addr: "a:1", Weight: 2, State: StateDraining},
		{Addr: "a:1", Weight: 3},
		{Addr: "a:1", Weight: 4},
		{Addr: "b:1", Weight: 5, State: "warming"},
		{Addr: "b:1", Weight: 6, State: StateDisabled},
		{Addr: "c:1", Weight: 7, State: StateDisabled},
		{Addr: "d:1", Weight: 8, State: StateDraining},
		{Addr: "d:1", Weight: 9, State: "warming"},
	}}
	want := []Instance{
		{Addr: "a:1", Weight: 3},
		{Addr: "b:1", Weight: 5, State: "warming"},
		{Addr: "c:1", Weight: 7, State: StateDisabled},
		{Addr: "d:1", Weight: 8, State: StateDraining},
	}
	if got := set.PerAddress(); !reflect.DeepEqual(got, want) {
		t.Fatalf("PerAddress:\n got %+v\nwant %+v", got, want)
	}
	if got := (Set{}).PerAddress(); len(got) != 0 {
		t.Fatalf("PerAddress of an empty set: %+v", got)
	}
}

func TestRegistration_SetState_RefusesUnknownStates(t *testing.T) {
	// Nothing is sent for a refused state, so no session is needed.
	inst := Instance{Addr: "h:1", Weight: 4, Zone: "az1"}
	r := &Registration{inst: inst}
	if err := r.SetState(context.Background(), "paused"); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("SetState(paused): %v; want ErrInvalidArgument", err)
	}
	if got := r.Instance(); !reflect.DeepEqual(got, inst) {
		t.Fatalf("after a refused SetState the instance is %+v; want %+v", got, inst)
	}
}

// An operator's mark (registryctl drain, carried in the snapshot) holds an
// instance back, never pushes forward one its owner holds back.
func TestWatcher_Set_AppliesOperatorMarks(t *testing.T) {
	w := &Watcher{service: "svc", logger: slog.New(slog.DiscardHandler)}
	val := func(addr, state string) client.Value {
		v := `{"v":1,"addr":"` + addr + `"`
		if state != "" {
			v += `,"state":"` + state + `"`
		}
		return client.Value{Data: []byte(v + "}"), PublisherID: addr}
	}
	set := w.set(client.Snapshot{Version: 7, Values: []client.Value{
		val("h:1", ""), val("h:2", ""), val("h:3", "disabled"), val("h:4", "draining"), val("h:5", ""),
	}, InstanceStates: []client.InstanceState{
		{Addr: "h:1", State: "draining"}, {Addr: "h:2", State: "disabled"}, {Addr: "h:3", State: "draining"},
		{Addr: "h:4", State: "disabled"}, {Addr: "h:5", State: "sleeping"}, {Addr: "h:9", State: "disabled"},
	}})
	want := map[string]State{"h:1": StateDraining, "h:2": StateDisabled, "h:3": StateDisabled, "h:4": StateDisabled, "h:5": "sleeping"}
	if len(set.Instances) != len(want) {
		t.Fatalf("%d instances, want %d", len(set.Instances), len(want))
	}
	for _, inst := range set.Instances {
		if inst.State != want[inst.Addr] {
			t.Errorf("%s: state %q, want %q", inst.Addr, inst.State, want[inst.Addr])
		}
	}
	if set.Instances[4].State.Serving() {
		t.Error("a mark this version does not know made an instance serving; it must hold it back")
	}
}
