package session

import (
	"slices"
	"strings"
	"testing"
	"time"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestInstanceRecord_Check: what a registration may hold, as discovery's
// Register checks it, and how it is stored.
func TestInstanceRecord_Check(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   HTTPInstanceSpec
		says string // "" accepted
		want HTTPInstanceSpec
	}{
		{name: "plain", in: HTTPInstanceSpec{Addr: "10.0.0.1:80"}, want: HTTPInstanceSpec{Addr: "10.0.0.1:80", Weight: 1}},
		{name: "host name, weight, zone, state", in: HTTPInstanceSpec{Addr: "web:8443", Weight: 9, Zone: "az1", State: "draining"}, want: HTTPInstanceSpec{Addr: "web:8443", Weight: 9, Zone: "az1", State: "draining"}},
		{name: "serving is stored as discovery stores it", in: HTTPInstanceSpec{Addr: "[::1]:80", State: "serving"}, want: HTTPInstanceSpec{Addr: "[::1]:80", Weight: 1}},
		{name: "no port", in: HTTPInstanceSpec{Addr: "10.0.0.1"}, says: "instance address"},
		{name: "no host", in: HTTPInstanceSpec{Addr: ":80"}, says: "missing host"},
		{name: "port out of range", in: HTTPInstanceSpec{Addr: "h:65536"}, says: "1 to 65535"},
		{name: "port not a number", in: HTTPInstanceSpec{Addr: "h:http"}, says: "1 to 65535"},
		{name: "negative weight", in: HTTPInstanceSpec{Addr: "h:1", Weight: -1}, says: "weight -1"},
		{name: "weight over the most", in: HTTPInstanceSpec{Addr: "h:1", Weight: 1 << 31}, says: "outside 0..2147483647"},
		{name: "unknown state", in: HTTPInstanceSpec{Addr: "h:1", State: "off"}, says: `state "off"`},
		{name: "zone too long", in: HTTPInstanceSpec{Addr: "h:1", Zone: strings.Repeat("z", 65)}, says: "zone is 65 bytes"},
	} {
		rec := instanceRecord{V: 1, HTTPInstanceSpec: tc.in}
		err := rec.check()
		switch {
		case tc.says == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.says)
		case tc.says == "" && (rec.Addr != tc.want.Addr || rec.Weight != tc.want.Weight || rec.Zone != tc.want.Zone || rec.State != tc.want.State):
			t.Errorf("%s: stored %+v, want %+v", tc.name, rec.HTTPInstanceSpec, tc.want)
		}
	}
}

// TestDecodeInstance_ReadsDiscoveryRecords_SkipsTheRest: records of any
// format version from 1, the zone from the publisher when the record has
// none, states shown as written; anything else is not an instance.
func TestDecodeInstance_ReadsDiscoveryRecords_SkipsTheRest(t *testing.T) {
	for _, tc := range []struct {
		value string
		ok    bool
		want  HTTPInstanceSpec
	}{
		{`{"v":1,"addr":"10.0.0.1:8080","weight":10,"zone":"az1","metadata":{"k":"v"}}`, true, HTTPInstanceSpec{Addr: "10.0.0.1:8080", Weight: 10, Zone: "az1"}},
		{`{"v":1,"addr":"10.0.0.1:8080"}`, true, HTTPInstanceSpec{Addr: "10.0.0.1:8080", Weight: 1, Zone: "pubzone"}},
		{`{"v":2,"addr":"10.0.0.1:8080","state":"warming","new":true}`, true, HTTPInstanceSpec{Addr: "10.0.0.1:8080", Weight: 1, Zone: "pubzone", State: "warming"}},
		{`{"addr":"10.0.0.1:8080"}`, false, HTTPInstanceSpec{}},
		{`{"v":1,"addr":"10.0.0.1"}`, false, HTTPInstanceSpec{}},
		{`10.0.0.1:8080`, false, HTTPInstanceSpec{}},
		{``, false, HTTPInstanceSpec{}},
	} {
		got, ok := decodeInstance("r1", []byte(tc.value), "pubzone")
		if ok != tc.ok {
			t.Errorf("%s: read %v, want %v", tc.value, ok, tc.ok)
			continue
		}
		if ok && (got.ID != "r1" || got.Addr != tc.want.Addr || got.Weight != tc.want.Weight || got.Zone != tc.want.Zone || got.State != tc.want.State) {
			t.Errorf("%s: read %+v, want %+v", tc.value, got, tc.want)
		}
	}
}

// TestInstanceList_OperatorMarks_ShowWhenTheyTakeLessTraffic: a mark
// holds an instance back (draining over serving, disabled over draining),
// never brings one forward; values that are not instances are skipped.
func TestInstanceList_OperatorMarks_ShowWhenTheyTakeLessTraffic(t *testing.T) {
	rec := func(addr, state string) []byte {
		if state == "" {
			return []byte(`{"v":1,"addr":"` + addr + `"}`)
		}
		return []byte(`{"v":1,"addr":"` + addr + `","state":"` + state + `"}`)
	}
	d := &registryv1.Datum{Version: 7, Publishers: []*registryv1.Publisher{
		{RegisterId: "a", Values: [][]byte{rec("h:1", "")}},
		{RegisterId: "b", Values: [][]byte{rec("h:2", "draining")}},
		{RegisterId: "c", Values: [][]byte{rec("h:3", "disabled")}},
		{RegisterId: "d", Values: [][]byte{[]byte("raw bytes")}},
	}, InstanceStates: []*registryv1.InstanceState{{Addr: "h:1", State: "draining"}, {Addr: "h:2", State: "disabled"}, {Addr: "h:3", State: "draining"}}}
	l := instanceList("svc", d, false)
	if l.Index != 7 || l.Skipped != 1 || len(l.Instances) != 3 {
		t.Fatalf("listed %+v", l)
	}
	for i, want := range []string{"draining", "disabled", "disabled"} {
		if l.Instances[i].State != want {
			t.Errorf("%s: state %q, want %q", l.Instances[i].Addr, l.Instances[i].State, want)
		}
	}
}

// TestHTTPAPIConfig_Validate: TTL and wait bounds in order, positive
// intervals and caps.
func TestHTTPAPIConfig_Validate(t *testing.T) {
	if err := DefaultHTTPAPIConfig().validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if err := TestConfig().HTTPAPI.validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	for name, mutate := range map[string]func(*HTTPAPIConfig){
		"default TTL below the least": func(c *HTTPAPIConfig) { c.DefaultTTL = time.Second },
		"most TTL below the least":    func(c *HTTPAPIConfig) { c.MaxTTL = time.Second },
		"no least TTL":                func(c *HTTPAPIConfig) { c.MinTTL = 0 },
		"default wait over the most":  func(c *HTTPAPIConfig) { c.DefaultWait = time.Hour },
		"no expiry interval":          func(c *HTTPAPIConfig) { c.ExpiryInterval = 0 },
		"negative linger":             func(c *HTTPAPIConfig) { c.WatchLinger = -1 },
		"no watches":                  func(c *HTTPAPIConfig) { c.MaxWatchesPerIdentity = 0 },
		"no connections":              func(c *HTTPAPIConfig) { c.MaxConnections = 0 },
	} {
		c := DefaultHTTPAPIConfig()
		mutate(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVisiblePrefixes(t *testing.T) {
	for _, tc := range []struct {
		rights []string
		query  string
		want   []string
	}{
		{[]string{"*"}, "", []string{""}},
		{[]string{"*"}, "b.", []string{"b."}},
		{[]string{"a."}, "", []string{"a."}},
		{[]string{"a."}, "a.x", []string{"a.x"}},
		{[]string{"a."}, "b.", nil},
		{[]string{"a.", "a.x.", "b."}, "", []string{"a.", "b."}},
		{[]string{"a.x", "a.y"}, "a.", []string{"a.x", "a.y"}},
		{nil, "", nil},
	} {
		if got := visiblePrefixes(tc.rights, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("visiblePrefixes(%q, %q) = %q, want %q", tc.rights, tc.query, got, tc.want)
		}
	}
}
