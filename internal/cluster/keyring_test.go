package cluster

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	k32 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"one", k32 + "\n", 1, ""},
		{"two with comments", "# c\n\n" + k32 + "\n  " + k16 + "  \n", 2, ""},
		{"none", "# only a comment\n", 0, "no key"},
		{"not base64", "!!!\n", 0, "line 1: not base64"},
		{"wrong size", base64.StdEncoding.EncodeToString([]byte("short")) + "\n", 0, "line 1"},
		{"twice", k32 + "\n" + k32 + "\n", 0, "line 2: a key listed twice"},
		{"too large", strings.Repeat("#", KeyFileMaxBytes+1), 0, "at most"},
	}
	for _, tc := range tests {
		keys, err := ParseKeys([]byte(tc.in))
		switch {
		case tc.wantErr == "" && (err != nil || len(keys) != tc.want):
			t.Errorf("%s: ParseKeys = %d keys, %v; want %d", tc.name, len(keys), err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: ParseKeys error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKeys(FormatKeys([][]byte{k}))
	if err != nil || len(back) != 1 || !bytes.Equal(back[0], k) {
		t.Errorf("FormatKeys/ParseKeys round trip = %v, %v", back, err)
	}
}
