package discovery

import (
	"errors"
	"reflect"
	"testing"

	"github.com/strata-registry/strata/pkg/client"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   Instance
		want Instance // zero: an error is expected
	}{
		{"weight 0 is the default", Instance{Addr: "10.0.0.1:80"}, Instance{Addr: "10.0.0.1:80", Weight: DefaultWeight}},
		{"weight kept", Instance{Addr: "10.0.0.1:80", Weight: 7}, Instance{Addr: "10.0.0.1:80", Weight: 7}},
		{"max weight", Instance{Addr: "h:1", Weight: MaxWeight}, Instance{Addr: "h:1", Weight: MaxWeight}},
		{"ipv6 and zone", Instance{Addr: "[::1]:65535", Zone: "az1"}, Instance{Addr: "[::1]:65535", Weight: 1, Zone: "az1"}},
		{"host name", Instance{Addr: "echo.internal:8080"}, Instance{Addr: "echo.internal:8080", Weight: 1}},
		{"no address", Instance{}, Instance{}},
		{"no port", Instance{Addr: "10.0.0.1"}, Instance{}},
		{"no host", Instance{Addr: ":8080"}, Instance{}},
		{"named port", Instance{Addr: "h:http"}, Instance{}},
		{"port 0", Instance{Addr: "h:0"}, Instance{}},
		{"port too big", Instance{Addr: "h:65536"}, Instance{}},
		{"negative weight", Instance{Addr: "h:1", Weight: -1}, Instance{}},
		{"weight too big", Instance{Addr: "h:1", Weight: MaxWeight + 1}, Instance{}},
	}
	for _, tt := range tests {
		got, err := normalize(tt.in)
		if tt.want.Addr == "" {
			if !errors.Is(err, client.ErrInvalidArgument) {
				t.Errorf("%s: normalize(%+v) = %+v, %v; want ErrInvalidArgument", tt.name, tt.in, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: normalize(%+v) = %+v, %v; want %+v", tt.name, tt.in, got, err, tt.want)
		}
	}
}

func TestNormalize_CopiesMetadata(t *testing.T) {
	md := map[string]string{"k": "v"}
	got, err := normalize(Instance{Addr: "h:1", Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	md["k"] = "changed"
	if got.Metadata["k"] != "v" {
		t.Fatalf("the caller's map reaches the stored instance: %v", got.Metadata)
	}
}

func TestEncode_Format(t *testing.T) {
	b, err := encode(Instance{Addr: "10.0.0.1:8080", Weight: 10, Zone: "az1", Metadata: map[string]string{"version": "1.4.2"}})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":1,"addr":"10.0.0.1:8080","weight":10,"zone":"az1","metadata":{"version":"1.4.2"}}`
	if string(b) != want {
		t.Fatalf("encoded %s\nwant    %s", b, want)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		data string
		zone string
		want Instance // zero: not an instance
	}{
		{"full", `{"v":1,"addr":"10.0.0.1:8080","weight":10,"zone":"az1","metadata":{"a":"b"}}`, "az9",
			Instance{Addr: "10.0.0.1:8080", Weight: 10, Zone: "az1", Metadata: map[string]string{"a": "b"}}},
		{"zone from the publisher", `{"v":1,"addr":"h:1","weight":3}`, "az2", Instance{Addr: "h:1", Weight: 3, Zone: "az2"}},
		{"no weight", `{"v":1,"addr":"h:1"}`, "", Instance{Addr: "h:1", Weight: 1}},
		{"later version, unknown fields", `{"v":7,"addr":"h:1","weight":2,"priority":5}`, "", Instance{Addr: "h:1", Weight: 2}},
		{"round trip of encode", mustEncode(t, Instance{Addr: "h:2", Weight: 1}), "z", Instance{Addr: "h:2", Weight: 1, Zone: "z"}},
		{"raw bytes", "10.0.0.1:8080", "", Instance{}},
		{"empty", "", "", Instance{}},
		{"null", "null", "", Instance{}},
		{"array", `[1,2]`, "", Instance{}},
		{"no version", `{"addr":"h:1"}`, "", Instance{}},
		{"version 0", `{"v":0,"addr":"h:1"}`, "", Instance{}},
		{"bad address", `{"v":1,"addr":"nohost"}`, "", Instance{}},
		{"negative weight", `{"v":1,"addr":"h:1","weight":-4}`, "", Instance{}},
		{"wrong type", `{"v":1,"addr":"h:1","weight":"ten"}`, "", Instance{}},
	}
	for _, tt := range tests {
		got, err := decode([]byte(tt.data), tt.zone)
		if tt.want.Addr == "" {
			if err == nil {
				t.Errorf("%s: decode(%q) = %+v; want an error", tt.name, tt.data, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: decode(%q) = %+v, %v; want %+v", tt.name, tt.data, got, err, tt.want)
		}
	}
}

func mustEncode(t *testing.T, inst Instance) string {
	b, err := encode(inst)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
