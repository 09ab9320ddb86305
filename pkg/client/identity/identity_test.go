package identity

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    ID
		wantErr string // substring; "" means valid
	}{
		{"spiffe://prod/data/data-3", ID{"prod", RoleData, "data-3"}, ""},
		{"spiffe://dev.local/client/orders@eu", ID{"dev.local", RoleClient, "orders@eu"}, ""},
		{"spiffe://prod/admin/ops", ID{"prod", RoleAdmin, "ops"}, ""},
		{"https://prod/data/data-3", ID{}, "is not spiffe"},
		{"spiffe://prod/data", ID{}, "no /role/name"},
		{"spiffe://prod/data/", ID{}, "name is empty"},
		{"spiffe://prod/data/a/b", ID{}, "slash"},
		{"spiffe://prod/oracle/x", ID{}, "unknown role"},
		{"spiffe://Prod/data/x", ID{}, "lower-case"},
		{"spiffe:///data/x", ID{}, "cluster name"},
		{"spiffe://prod/data/x?y=1", ID{}, "is not spiffe"},
		{"spiffe://u@prod/data/x", ID{}, "is not spiffe"},
		{"spiffe://prod/data/a%20b", ID{}, "space"},
		{"%zz", ID{}, "invalid"},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Parse(%q) = %v", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Parse(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
		case tc.wantErr == "" && got != tc.want:
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if tc.wantErr == "" && got.String() != tc.in {
			t.Errorf("Parse(%q).String() = %q, want it back", tc.in, got.String())
		}
	}
}

func TestFromCert_OneSpiffeURI(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name    string
		uris    []*url.URL
		wantErr string
	}{
		{"one", []*url.URL{u("spiffe://c/session/s1")}, ""},
		{"one among others", []*url.URL{u("https://example.com/x"), u("spiffe://c/session/s1")}, ""},
		{"none", nil, "names no spiffe"},
		{"two", []*url.URL{u("spiffe://c/session/s1"), u("spiffe://c/data/d1")}, "names 2 identities"},
		{"malformed", []*url.URL{u("spiffe://c/nope")}, "no /role/name"},
	}
	for _, tc := range tests {
		id, err := FromCert(&x509.Certificate{URIs: tc.uris})
		if tc.wantErr == "" {
			if err != nil || id != (ID{"c", RoleSession, "s1"}) {
				t.Errorf("%s: FromCert = %+v, %v", tc.name, id, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: FromCert error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}
