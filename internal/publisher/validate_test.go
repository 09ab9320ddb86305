package publisher

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// checkErr: err is nil when kind is, else it wraps kind and mentions msg
// (pkg/client/record's tests check the errors' shape itself).
func checkErr(t *testing.T, err, kind error, msg string) {
	t.Helper()
	if (kind == nil) != (err == nil) || (err != nil && (!errors.Is(err, kind) || !strings.Contains(err.Error(), msg))) {
		t.Fatalf("error %v, want %v mentioning %q", err, kind, msg)
	}
}

func validPublisher() *registryv1.Publisher {
	return &registryv1.Publisher{
		RegisterId:        "0b7e3c1e-6a55-4d5f-9d69-7c1f3f1ad2c1",
		DataInfoId:        record.DataInfoID("com.example.Echo", "", ""),
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
			p.Values = [][]byte{make([]byte, record.MaxValueBytes)}
			return p
		}, nil, ""},
		{"values at count limit", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Values = make([][]byte, record.MaxValues)
			return p
		}, nil, ""},
		{"nil", func(*registryv1.Publisher) *registryv1.Publisher { return nil }, record.ErrInvalid, "publisher is nil"},
		{"bad data info id", func(p *registryv1.Publisher) *registryv1.Publisher { p.DataInfoId = "svc"; return p }, record.ErrInvalid, "data_info_id"},
		{"oversized data id", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.DataInfoId = record.DataInfoID(strings.Repeat("x", 600), "", "")
			return p
		}, record.ErrTooLarge, "data ID is 600 bytes, at most 512 allowed"},
		{"empty register id", func(p *registryv1.Publisher) *registryv1.Publisher { p.RegisterId = ""; return p }, record.ErrInvalid, "register_id is empty"},
		{"register id with space", func(p *registryv1.Publisher) *registryv1.Publisher { p.RegisterId = "a b"; return p }, record.ErrInvalid, "space or control"},
		{"register id with control", func(p *registryv1.Publisher) *registryv1.Publisher { p.RegisterId = "a\x00b"; return p }, record.ErrInvalid, "space or control"},
		{"register id too long", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.RegisterId = strings.Repeat("r", MaxStoredRegisterIDBytes+1)
			return p
		}, record.ErrTooLarge, "register_id is 258 bytes, at most 257 allowed"},
		{"empty session", func(p *registryv1.Publisher) *registryv1.Publisher { p.SessionId = ""; return p }, record.ErrInvalid, "session_id is empty"},
		{"session too long", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.SessionId = strings.Repeat("s", 257)
			return p
		}, record.ErrTooLarge, "session_id is 257 bytes, at most 256 allowed"},
		{"zone too long", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Zone = strings.Repeat("z", 65)
			return p
		}, record.ErrTooLarge, "zone is 65 bytes, at most 64 allowed"},
		{"conn too long", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.ConnId = strings.Repeat("c", 257)
			return p
		}, record.ErrTooLarge, "conn_id is 257 bytes"},
		{"zone bad utf8", func(p *registryv1.Publisher) *registryv1.Publisher { p.Zone = "\xff"; return p }, record.ErrInvalid, "zone is not valid UTF-8"},
		{"value too large", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Values = [][]byte{nil, nil, make([]byte, record.MaxValueBytes+1)}
			return p
		}, record.ErrTooLarge, "record: value 2 is 1048577 bytes, at most 1048576 allowed"},
		{"too many values", func(p *registryv1.Publisher) *registryv1.Publisher {
			p.Values = make([][]byte, record.MaxValues+1)
			return p
		}, record.ErrTooLarge, "publisher has 65 values, at most 64 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, Validate(tt.modify(validPublisher())), tt.kind, tt.msg)
		})
	}
}

// TestValidateClientPublisher: a session's publisher is checked once: the
// client's register ID by the client rule (its limit is 128 bytes, not the
// stored 257), the rest as Validate checks it; what it accepts,
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
		{"client id at its limit", strings.Repeat("r", record.MaxRegisterIDBytes), nil, nil, ""},
		{"client id past its limit", strings.Repeat("r", record.MaxRegisterIDBytes+1), nil, record.ErrTooLarge, "register_id is 129 bytes, at most 128 allowed"},
		{"empty client id", "", nil, record.ErrInvalid, "register_id is empty"},
		{"client id with a space", "r 1", nil, record.ErrInvalid, "space or control"},
		{"stored id past its limit", "r1", func(p *registryv1.Publisher) { p.RegisterId = strings.Repeat("o", MaxStoredRegisterIDBytes+1) }, record.ErrTooLarge, "register_id with its owner is 258 bytes, at most 257 allowed"},
		{"bad data info id", "r1", func(p *registryv1.Publisher) { p.DataInfoId = "svc" }, record.ErrInvalid, "data_info_id"},
		{"value too large", "r1", func(p *registryv1.Publisher) { p.Values = [][]byte{make([]byte, record.MaxValueBytes+1)} }, record.ErrTooLarge, "value 0 is 1048577 bytes"},
		{"empty session", "r1", func(p *registryv1.Publisher) { p.SessionId = "" }, record.ErrInvalid, "session_id is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, p := owned(tt.id, tt.modify)
			err := ValidateClient(id, p)
			checkErr(t, err, tt.kind, tt.msg)
			if err == nil {
				if err := Validate(p); err != nil {
					t.Fatalf("accepted for a client, refused as stored: %v", err)
				}
			}
		})
	}
	checkErr(t, ValidateClient("r1", nil), record.ErrInvalid, "publisher is nil")
}

func TestValidateUnpublish(t *testing.T) {
	ok := func() *registryv1.Unpublish {
		return &registryv1.Unpublish{DataInfoId: record.DataInfoID("svc", "", ""), RegisterId: "r1", ClientVersion: 3, RegisterTimestamp: 9}
	}
	tests := []struct {
		name   string
		modify func(u *registryv1.Unpublish) *registryv1.Unpublish
		kind   error
		msg    string
	}{
		{"valid", func(u *registryv1.Unpublish) *registryv1.Unpublish { return u }, nil, ""},
		{"nil", func(*registryv1.Unpublish) *registryv1.Unpublish { return nil }, record.ErrInvalid, "unpublish is nil"},
		{"empty register id", func(u *registryv1.Unpublish) *registryv1.Unpublish { u.RegisterId = ""; return u }, record.ErrInvalid, "register_id is empty"},
		{"bad data info id", func(u *registryv1.Unpublish) *registryv1.Unpublish { u.DataInfoId = "a#@#b"; return u }, record.ErrInvalid, "has 2 parts"},
		{"oversized data id", func(u *registryv1.Unpublish) *registryv1.Unpublish {
			u.DataInfoId = record.DataInfoID(strings.Repeat("x", 513), "", "")
			return u
		}, record.ErrTooLarge, "data ID is 513 bytes"},
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
