package record

import (
	"errors"
	"strings"
	"testing"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func TestDataInfoID_FillsDefaults(t *testing.T) {
	tests := []struct {
		dataID, instanceID, group string
		want                      string
	}{
		{"svc", "", "", "svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"},
		{"svc", "i1", "", "svc#@#i1#@#DEFAULT_GROUP"},
		{"svc", "", "g1", "svc#@#DEFAULT_INSTANCE_ID#@#g1"},
		{"com.foo.Bar:1.0", "i", "g", "com.foo.Bar:1.0#@#i#@#g"},
	}
	for _, tt := range tests {
		got := DataInfoID(tt.dataID, tt.instanceID, tt.group)
		if got != tt.want {
			t.Errorf("DataInfoID(%q, %q, %q) = %q, want %q", tt.dataID, tt.instanceID, tt.group, got, tt.want)
		}
		d, i, g, err := ParseDataInfoID(got)
		if err != nil {
			t.Fatalf("ParseDataInfoID(%q): %v", got, err)
		}
		if DataInfoID(d, i, g) != got || d != tt.dataID {
			t.Errorf("round trip of %q gave (%q, %q, %q)", got, d, i, g)
		}
	}
}

func TestParseDataInfoID_Rejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		kind error
		msg  string // substring of the error message
	}{
		{"empty", "", ErrInvalid, "data_info_id is empty"},
		{"one part", "svc", ErrInvalid, "has 1 parts"},
		{"two parts", "svc#@#i", ErrInvalid, "has 2 parts"},
		{"four parts", "svc#@#i#@#g#@#x", ErrInvalid, "has 4 parts"},
		{"empty data ID", "#@#i#@#g", ErrInvalid, "data ID is empty"},
		{"empty instance", "svc#@##@#g", ErrInvalid, "instance ID is empty"},
		{"empty group", "svc#@#i#@#", ErrInvalid, "group is empty"},
		{"bad utf8", "sv\xffc#@#i#@#g", ErrInvalid, "data ID is not valid UTF-8"},
		{"data ID too long", DataInfoID(strings.Repeat("a", 513), "", ""), ErrTooLarge, "data ID is 513 bytes, at most 512 allowed"},
		{"group too long", DataInfoID("a", "", strings.Repeat("g", 129)), ErrTooLarge, "group is 129 bytes, at most 128 allowed"},
		{"whole too long", strings.Repeat("a", MaxDataInfoIDBytes+1), ErrTooLarge, "data_info_id is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := ParseDataInfoID(tt.in)
			checkErr(t, err, tt.kind, tt.msg)
		})
	}
}

func TestParseDataInfoID_AcceptsLimits(t *testing.T) {
	s := DataInfoID(strings.Repeat("d", MaxDataIDBytes), strings.Repeat("i", MaxInstanceIDBytes), strings.Repeat("g", MaxGroupBytes))
	if len(s) != MaxDataInfoIDBytes {
		t.Fatalf("longest id is %d bytes, MaxDataInfoIDBytes is %d", len(s), MaxDataInfoIDBytes)
	}
	if _, _, _, err := ParseDataInfoID(s); err != nil {
		t.Fatalf("id at every limit refused: %v", err)
	}
	if _, _, _, err := ParseDataInfoID(DataInfoID("服务", "", "")); err != nil {
		t.Fatalf("UTF-8 data ID refused: %v", err)
	}
}

func checkErr(t *testing.T, err, kind error, msg string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q does not wrap %v", err, kind)
	}
	other := ErrInvalid
	if kind == ErrInvalid {
		other = ErrTooLarge
	}
	if errors.Is(err, other) {
		t.Fatalf("error %q wraps both kinds", err)
	}
	if !strings.HasPrefix(err.Error(), "record: ") {
		t.Errorf("error %q lacks the record: prefix", err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not mention %q", err, msg)
	}
}

func validPublisher() *registryv1.Publisher {
	return &registryv1.Publisher{
		RegisterId:        "0b7e3c1e-6a55-4d5f-9d69-7c1f3f1ad2c1",
		DataInfoId:        DataInfoID("com.example.Echo", "", ""),
		ClientVersion:     1,
		RegisterTimestamp: 1,
		Zone:              "z1",
		Values:            [][]byte{[]byte("10.0.0.1:8080")},
		SessionId:         "session-1/abc",
		ConnId:            "10.0.0.9:51234",
	}
}

func TestValidatePublisher(t *testing.T) {
	tests := []struct {
		name   string
		modify func(p *registryv1.Publisher) *registryv1.Publisher
		kind   error
		msg    string
	}{
		{"valid", func(p *registryv1.Publisher) *registryv1.Publisher { return p }, nil, ""},
		{"no values", func(p *registryv1.Publisher) *registryv1.Publisher { p.Values = nil; return p }, nil, ""},
		{"empty zone and conn", func(p *registryv1.Publisher) *registryv1.Publisher { p.Zone, p.ConnId = "", ""; return p }, nil, ""},
		{"value at limit", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Values = [][]byte{make([]byte, MaxValueBytes)}
			return p
		}, nil, ""},
		{"values at count limit", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Values = make([][]byte, MaxValues)
			return p
		}, nil, ""},
		{"nil", func(*registryv1.Publisher) *registryv1.Publisher { return nil }, ErrInvalid, "publisher is nil"},
		{"bad data info id", func(p *registryv1.Publisher) *registryv1.Publisher { p.DataInfoId = "svc"; return p }, ErrInvalid, "data_info_id"},
		{"oversized data id", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.DataInfoId = DataInfoID(strings.Repeat("x", 600), "", "")
			return p
		}, ErrTooLarge, "data ID is 600 bytes, at most 512 allowed"},
		{"empty register id", func(p *registryv1.Publisher) *registryv1.Publisher { p.RegisterId = ""; return p }, ErrInvalid, "register_id is empty"},
		{"register id with space", func(p *registryv1.Publisher) *registryv1.Publisher { p.RegisterId = "a b"; return p }, ErrInvalid, "space or control"},
		{"register id with control", func(p *registryv1.Publisher) *registryv1.Publisher { p.RegisterId = "a\x00b"; return p }, ErrInvalid, "space or control"},
		{"register id too long", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.RegisterId = strings.Repeat("r", MaxStoredRegisterIDBytes+1)
			return p
		}, ErrTooLarge, "register_id is 258 bytes, at most 257 allowed"},
		{"empty session", func(p *registryv1.Publisher) *registryv1.Publisher { p.SessionId = ""; return p }, ErrInvalid, "session_id is empty"},
		{"session too long", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.SessionId = strings.Repeat("s", 257)
			return p
		}, ErrTooLarge, "session_id is 257 bytes, at most 256 allowed"},
		{"zone too long", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Zone = strings.Repeat("z", 65)
			return p
		}, ErrTooLarge, "zone is 65 bytes, at most 64 allowed"},
		{"conn too long", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.ConnId = strings.Repeat("c", 257)
			return p
		}, ErrTooLarge, "conn_id is 257 bytes"},
		{"zone bad utf8", func(p *registryv1.Publisher) *registryv1.Publisher { p.Zone = "\xff"; return p }, ErrInvalid, "zone is not valid UTF-8"},
		{"value too large", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Values = [][]byte{nil, nil, make([]byte, MaxValueBytes+1)}
			return p
		}, ErrTooLarge, "record: value 2 is 1048577 bytes, at most 1048576 allowed"},
		{"too many values", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Values = make([][]byte, MaxValues+1)
			return p
		}, ErrTooLarge, "publisher has 65 values, at most 64 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidatePublisher(tt.modify(validPublisher())), tt.kind, tt.msg)
		})
	}
}

// TestValidateID: one rule for every ID a client makes up, one kind per
// failure (too long: ErrTooLarge; anything else: ErrInvalid), and the
// message names the field it was given.
func TestValidateID(t *testing.T) {
	tests := []struct {
		name, id string
		kind     error
		msg      string
	}{
		{"valid", "c-1", nil, ""},
		{"at the limit", strings.Repeat("c", MaxRegisterIDBytes), nil, ""},
		{"UTF-8", "客户端", nil, ""},
		{"empty", "", ErrInvalid, "client_id is empty"},
		{"too long", strings.Repeat("c", MaxRegisterIDBytes+1), ErrTooLarge, "client_id is 129 bytes, at most 128 allowed"},
		{"not UTF-8", "c\xff", ErrInvalid, "client_id is not valid UTF-8"},
		{"space", "c 1", ErrInvalid, "client_id \"c 1\" has a space or control character"},
		{"control", "c\x001", ErrInvalid, "space or control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidateID("client_id", tt.id), tt.kind, tt.msg)
		})
	}
	// ValidateRegisterID is the same rule under its field's name.
	checkErr(t, ValidateRegisterID(strings.Repeat("r", MaxRegisterIDBytes+1)), ErrTooLarge, "register_id is 129 bytes, at most 128 allowed")
}

// TestValidateClientPublisher: a session's publisher is checked once: the
// client's register ID by the client rule (its limit is 128 bytes, not the
// stored 257), the rest as ValidatePublisher checks it; what it accepts,
// data nodes accept.
func TestValidateClientPublisher(t *testing.T) {
	owned := func(id string, modify func(*registryv1.Publisher)) (string, *registryv1.Publisher) {
		p := validPublisher()
		p.RegisterId = Owned("orders", id)
		if modify != nil {
			modify(p)
		}
		return id, p
	}
	tests := []struct {
		name   string
		id     string
		modify func(*registryv1.Publisher)
		kind   error
		msg    string
	}{
		{"valid", "r1", nil, nil, ""},
		{"client id at its limit", strings.Repeat("r", MaxRegisterIDBytes), nil, nil, ""},
		{"client id past its limit", strings.Repeat("r", MaxRegisterIDBytes+1), nil, ErrTooLarge, "register_id is 129 bytes, at most 128 allowed"},
		{"empty client id", "", nil, ErrInvalid, "register_id is empty"},
		{"client id with a space", "r 1", nil, ErrInvalid, "space or control"},
		{"stored id past its limit", "r1", func(p *registryv1.Publisher) { p.RegisterId = strings.Repeat("o", MaxStoredRegisterIDBytes+1) }, ErrTooLarge, "at most 257 allowed"},
		{"bad data info id", "r1", func(p *registryv1.Publisher) { p.DataInfoId = "svc" }, ErrInvalid, "data_info_id"},
		{"value too large", "r1", func(p *registryv1.Publisher) { p.Values = [][]byte{make([]byte, MaxValueBytes+1)} }, ErrTooLarge, "value 0 is 1048577 bytes"},
		{"empty session", "r1", func(p *registryv1.Publisher) { p.SessionId = "" }, ErrInvalid, "session_id is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, p := owned(tt.id, tt.modify)
			err := ValidateClientPublisher(id, p)
			checkErr(t, err, tt.kind, tt.msg)
			if err == nil {
				if err := ValidatePublisher(p); err != nil {
					t.Fatalf("accepted for a client, refused as stored: %v", err)
				}
			}
		})
	}
	checkErr(t, ValidateClientPublisher("r1", nil), ErrInvalid, "publisher is nil")
}

func TestValidateUnpublish(t *testing.T) {
	ok := func() *registryv1.Unpublish {
		return &registryv1.Unpublish{DataInfoId: DataInfoID("svc", "", ""), RegisterId: "r1", ClientVersion: 3, RegisterTimestamp: 9}
	}
	tests := []struct {
		name   string
		modify func(u *registryv1.Unpublish) *registryv1.Unpublish
		kind   error
		msg    string
	}{
		{"valid", func(u *registryv1.Unpublish) *registryv1.Unpublish { return u }, nil, ""},
		{"nil", func(*registryv1.Unpublish) *registryv1.Unpublish { return nil }, ErrInvalid, "unpublish is nil"},
		{"empty register id", func(u *registryv1.Unpublish) *registryv1.Unpublish { u.RegisterId = ""; return u }, ErrInvalid, "register_id is empty"},
		{"bad data info id", func(u *registryv1.Unpublish) *registryv1.Unpublish { u.DataInfoId = "a#@#b"; return u }, ErrInvalid, "has 2 parts"},
		{"oversized data id", func(u *registryv1.Unpublish) *registryv1.Unpublish {
			u.DataInfoId = DataInfoID(strings.Repeat("x", 513), "", "")
			return u
		}, ErrTooLarge, "data ID is 513 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidateUnpublish(tt.modify(ok())), tt.kind, tt.msg)
		})
	}
}

func TestOwned_RoundTrip(t *testing.T) {
	for _, tc := range []struct{ owner, id, stored string }{
		{"orders", "3f2a", "orders/3f2a"},
		{"orders", "a/b", "orders/a/b"},
		{"", "a/b", "a/b"},
	} {
		if got := Owned(tc.owner, tc.id); got != tc.stored {
			t.Errorf("Owned(%q, %q) = %q, want %q", tc.owner, tc.id, got, tc.stored)
		}
		if got := ClientRegisterID(tc.stored, tc.owner != ""); got != tc.id {
			t.Errorf("ClientRegisterID(%q) = %q, want %q", tc.stored, got, tc.id)
		}
	}
}
