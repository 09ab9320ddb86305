package strata

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-kratos/kratos/v2/registry"

	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
)

func TestInstances_OnePerEndpoint_WithTheAdaptersKeys(t *testing.T) {
	si := &registry.ServiceInstance{ID: "echo-1", Name: "com.example.Echo", Version: "v1.2.0",
		Metadata:  map[string]string{"region": "eu", "weight": "7"},
		Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false", "http://10.0.0.1:8000", "grpc://10.0.0.1:9000?isSecure=false"}}
	got, err := instances(si)
	if err != nil {
		t.Fatal(err)
	}
	md := func(ep string) map[string]string {
		return map[string]string{"region": "eu", "weight": "7", MetadataID: "echo-1", MetadataVersion: "v1.2.0", MetadataEndpoint: ep}
	}
	want := []endpoint{
		{"grpc://10.0.0.1:9000?isSecure=false", discovery.Instance{Addr: "10.0.0.1:9000", Weight: 7, Metadata: md("grpc://10.0.0.1:9000?isSecure=false")}},
		{"http://10.0.0.1:8000", discovery.Instance{Addr: "10.0.0.1:8000", Weight: 7, Metadata: md("http://10.0.0.1:8000")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("instances:\n got %+v\nwant %+v", got, want)
	}
	if _, ok := si.Metadata[MetadataID]; ok {
		t.Fatal("instances changed the caller's metadata")
	}
}

func TestInstances_WeightFromMetadata_OnlyWhenAValidWeight(t *testing.T) {
	for _, tc := range []struct {
		weight string
		want   int
	}{{"", discovery.DefaultWeight}, {"12", 12}, {"0", discovery.DefaultWeight}, {"-3", discovery.DefaultWeight},
		{"heavy", discovery.DefaultWeight}, {"4294967296", discovery.DefaultWeight}} {
		md := map[string]string{}
		if tc.weight != "" {
			md["weight"] = tc.weight
		}
		got, err := instances(&registry.ServiceInstance{ID: "a", Name: "s", Metadata: md, Endpoints: []string{"grpc://127.0.0.1:1"}})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].inst.Weight != tc.want {
			t.Errorf("weight %q: Weight %d, want %d", tc.weight, got[0].inst.Weight, tc.want)
		}
	}
}

func TestInstances_RefusesWhatCannotBeRegistered(t *testing.T) {
	ep := []string{"grpc://127.0.0.1:9000"}
	for name, si := range map[string]*registry.ServiceInstance{
		"nil":             nil,
		"no name":         {ID: "a", Endpoints: ep},
		"no ID":           {Name: "s", Endpoints: ep},
		"no endpoints":    {ID: "a", Name: "s"},
		"reserved key":    {ID: "a", Name: "s", Endpoints: ep, Metadata: map[string]string{"kratos.id": "b"}},
		"no scheme":       {ID: "a", Name: "s", Endpoints: []string{"127.0.0.1:9000"}},
		"no port":         {ID: "a", Name: "s", Endpoints: []string{"grpc://127.0.0.1"}},
		"port 0":          {ID: "a", Name: "s", Endpoints: []string{"grpc://127.0.0.1:0"}},
		"port too high":   {ID: "a", Name: "s", Endpoints: []string{"grpc://127.0.0.1:65536"}},
		"no host":         {ID: "a", Name: "s", Endpoints: []string{"grpc://:9000"}},
		"one bad of many": {ID: "a", Name: "s", Endpoints: append(ep, "grpc://x")},
	} {
		if _, err := instances(si); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("%s: error %v, want one matching client.ErrInvalidArgument", name, err)
		}
	}
}

// kratosInstance is a Strata instance as the adapter registers it.
func kratosInstance(addr, id, version, ep string, md map[string]string) discovery.Instance {
	m := map[string]string{MetadataID: id, MetadataEndpoint: ep}
	if version != "" {
		m[MetadataVersion] = version
	}
	for k, v := range md {
		m[k] = v
	}
	return discovery.Instance{Addr: addr, Weight: 1, Zone: "az1", Metadata: m}
}

func TestServiceInstances_GroupsByKratosID_PlainInstancesAsGRPC_OnlyServing(t *testing.T) {
	drained := kratosInstance("10.0.0.2:8000", "b", "", "http://10.0.0.2:8000", nil)
	drained.State = discovery.StateDraining
	disabledPlain := discovery.Instance{Addr: "10.0.0.9:1", Weight: 1, State: discovery.StateDisabled}
	newerState := discovery.Instance{Addr: "10.0.0.8:1", Weight: 1, State: "paused"}
	set := discovery.Set{Instances: []discovery.Instance{
		kratosInstance("10.0.0.1:8000", "a", "v2", "http://10.0.0.1:8000", map[string]string{"region": "eu"}),
		kratosInstance("10.0.0.1:9000", "a", "v2", "grpc://10.0.0.1:9000", map[string]string{"region": "eu"}),
		drained,
		kratosInstance("10.0.0.2:9000", "b", "", "grpc://10.0.0.2:9000", nil),
		{Addr: "10.0.0.3:7000", Weight: 5, Zone: "az2", Metadata: map[string]string{"team": "x"}},
		{Addr: "10.0.0.3:7000", Weight: 2, Zone: "az2"}, // registered twice: one instance
		{Addr: "10.0.0.4:7000", Weight: 3, Metadata: map[string]string{"weight": "9"}},
		{Addr: "10.0.0.5:1", Weight: 1, Metadata: map[string]string{MetadataID: "c"}}, // no endpoint
		disabledPlain, newerState,
		kratosInstance("10.0.0.6:9000", "gone", "", "grpc://10.0.0.6:9000", nil),
	}}
	set.Instances[len(set.Instances)-1].State = discovery.StateDisabled
	got, bad := serviceInstances("com.example.Echo", set)
	want := []*registry.ServiceInstance{
		{ID: "10.0.0.3:7000", Name: "com.example.Echo", Metadata: map[string]string{"team": "x", "weight": "5"},
			Endpoints: []string{"grpc://10.0.0.3:7000", "grpcs://10.0.0.3:7000"}},
		{ID: "10.0.0.4:7000", Name: "com.example.Echo", Metadata: map[string]string{"weight": "9"},
			Endpoints: []string{"grpc://10.0.0.4:7000", "grpcs://10.0.0.4:7000"}},
		{ID: "a", Name: "com.example.Echo", Version: "v2", Metadata: map[string]string{"region": "eu"},
			Endpoints: []string{"grpc://10.0.0.1:9000", "http://10.0.0.1:8000"}},
		{ID: "b", Name: "com.example.Echo", Endpoints: []string{"grpc://10.0.0.2:9000"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("serviceInstances:\n got %s\nwant %s", show(got), show(want))
	}
	if bad != 1 {
		t.Errorf("bad = %d, want 1 (the record with an ID and no endpoint)", bad)
	}
}

func TestServiceInstances_ReadsBackWhatInstancesRegisters(t *testing.T) {
	si := &registry.ServiceInstance{ID: "echo-1", Name: "com.example.Echo", Version: "v1",
		Metadata:  map[string]string{"a": "b"},
		Endpoints: []string{"http://127.0.0.1:8000?isSecure=false", "grpc://127.0.0.1:9000?isSecure=false"}}
	eps, err := instances(si)
	if err != nil {
		t.Fatal(err)
	}
	var set discovery.Set
	for _, e := range eps {
		set.Instances = append(set.Instances, e.inst)
	}
	got, _ := serviceInstances(si.Name, set)
	if len(got) != 1 || !got[0].Equal(si) {
		t.Fatalf("read back %s, registered %s", show(got), show([]*registry.ServiceInstance{si}))
	}
}

func TestSameLists_ComparesWhatKratosSees(t *testing.T) {
	a := []*registry.ServiceInstance{{ID: "a", Name: "s", Endpoints: []string{"grpc://1.2.3.4:5"}}}
	b := cloneList(a)
	if !sameLists(a, b) || !sameLists(nil, []*registry.ServiceInstance{}) {
		t.Fatal("equal lists compare unequal")
	}
	b[0].Metadata = map[string]string{"k": "v"}
	if sameLists(a, b) || sameLists(a, nil) {
		t.Fatal("different lists compare equal")
	}
	if a[0].Metadata != nil {
		t.Fatal("cloneList shares metadata with the original")
	}
}

// show prints a list with its instances' fields.
func show(list []*registry.ServiceInstance) string {
	var b strings.Builder
	for _, si := range list {
		fmt.Fprintf(&b, "\n  %+v", *si)
	}
	return b.String()
}
