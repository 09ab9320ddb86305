package record

import (
	"errors"
	"strings"
	"testing"
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

// TestValidateID: one rule for every ID a client makes up (within its
// limit), one kind per
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
			checkErr(t, ValidateID("client_id", tt.id, MaxRegisterIDBytes), tt.kind, tt.msg)
		})
	}
	// ValidateRegisterID is the same rule under its field's name.
	checkErr(t, ValidateRegisterID(strings.Repeat("r", MaxRegisterIDBytes+1)), ErrTooLarge, "register_id is 129 bytes, at most 128 allowed")
}
