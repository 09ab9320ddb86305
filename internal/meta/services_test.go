package meta_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/strata-registry/strata/internal/catalog"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/record"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// listPage GETs one page of /api/v1/services with query.
func listPage(t *testing.T, c *testcluster.Cluster, base string, query url.Values) catalog.Page {
	t.Helper()
	code, body := get(t, c, base+"/api/v1/services?"+query.Encode(), "s3cret")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/services?%s: %d %s", query.Encode(), code, body)
	}
	var p catalog.Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("/api/v1/services: %v: %s", err, body)
	}
	return p
}

// listAll pages through /api/v1/services with pages of limit and returns
// every key with its publisher count, in the order listed.
func listAll(t *testing.T, c *testcluster.Cluster, base, prefix string, limit int) (keys []string, counts map[string]int) {
	t.Helper()
	counts = map[string]int{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("more than 100 pages: the cursor does not advance")
		}
		p := listPage(t, c, base, url.Values{"prefix": {prefix}, "after": {after}, "limit": {fmt.Sprint(limit)}})
		if len(p.Missing) > 0 {
			t.Fatalf("page after %q misses slots %v in a settled cluster", after, p.Missing)
		}
		if len(p.Entries) > limit {
			t.Fatalf("page of %d entries, limit %d", len(p.Entries), limit)
		}
		for _, e := range p.Entries {
			keys = append(keys, e.DataInfoID)
			counts[e.DataInfoID] = e.Publishers
		}
		if p.Next == "" {
			return keys, counts
		}
		after = p.Next
	}
}

// Service enumeration goes over every slot leader: it lists each key once,
// in byte order, with its publisher count, through pages of any size and
// by prefix, and a key's publishers read from its leader.
func TestMeta_Services_ListsEveryKeyOncePagedAndByPrefix(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 3, MetaConfig: func(_ int, cfg *meta.Config) {
		cfg.AdminToken = "s3cret"
		cfg.Slots = 16
	}})
	sess := c.StartSession(t, "session-0")
	c.WaitDataSettled(t)
	var want []string
	for i := range 23 {
		key := record.DataInfoID(fmt.Sprintf("com.example.svc-%02d", i), "", "")
		want = append(want, key)
		sess.Publish(t, &registryv1.Publisher{RegisterId: "r1", DataInfoId: key, ClientVersion: 1, ConnId: "conn-1", Zone: "z1",
			Values: [][]byte{[]byte(`{"v":1,"addr":"10.0.0.1:80"}`)}})
	}
	other := record.DataInfoID("org.other", "", "RPC")
	want = append(want, other)
	for _, r := range []string{"r1", "r2", "r3"} {
		sess.Publish(t, &registryv1.Publisher{RegisterId: r, DataInfoId: other, ClientVersion: 1, ConnId: "conn-1", Zone: "z1", Values: [][]byte{[]byte(r)}})
	}
	slices.Sort(want)
	base := c.URL(c.WaitLeader(t).Server().HTTPAddr(), "")

	for _, limit := range []int{1, 5, 24, 1000} {
		keys, counts := listAll(t, c, base, "", limit)
		if !slices.Equal(keys, want) {
			t.Fatalf("pages of %d listed %d keys %v; want %d %v", limit, len(keys), keys, len(want), want)
		}
		if counts[other] != 3 || counts[want[0]] != 1 {
			t.Fatalf("pages of %d: %s has %d publishers, %s %d; want 3 and 1", limit, other, counts[other], want[0], counts[want[0]])
		}
	}
	keys, _ := listAll(t, c, base, "com.example.svc-1", 4)
	if len(keys) != 10 || !strings.HasPrefix(keys[0], "com.example.svc-10") || !strings.HasPrefix(keys[9], "com.example.svc-19") {
		t.Fatalf("prefix com.example.svc-1 listed %v; want svc-10..svc-19", keys)
	}
	p := listPage(t, c, base, url.Values{"prefix": {"org."}})
	if len(p.Entries) != 1 || p.Entries[0].DataID != "org.other" || p.Entries[0].Group != "RPC" || p.Next != "" {
		t.Fatalf("prefix org.: %+v; want org.other in group RPC, no next page", p)
	}

	code, body := get(t, c, base+"/api/v1/service?data_info_id="+url.QueryEscape(other), "s3cret")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/service: %d %s", code, body)
	}
	var d struct {
		DataInfoID string `json:"data_info_id"`
		Version    uint64 `json:"version"`
		Publishers []struct {
			RegisterID string   `json:"register_id"`
			Session    string   `json:"session"`
			Values     []string `json:"values"`
		} `json:"publishers"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if d.DataInfoID != other || d.Version == 0 || len(d.Publishers) != 3 || d.Publishers[1].Values[0] != "r2" || d.Publishers[1].Session != sess.Proc {
		t.Fatalf("/api/v1/service: %s; want 3 publishers r1..r3 of %s", body, sess.Proc)
	}
}

// Bad queries get 400 with the reason; no token, 401.
func TestMeta_Services_BadInput(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, MetaConfig: func(_ int, cfg *meta.Config) {
		cfg.AdminToken = "s3cret"
		cfg.Slots = 4
	}})
	c.WaitDataSettled(t)
	base := c.URL(c.WaitLeader(t).Server().HTTPAddr(), "")
	long := strings.Repeat("x", record.MaxDataInfoIDBytes+1)
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/services?limit=abc", "limit must be a number"},
		{"/api/v1/services?limit=-1", "limit -1 out of range"},
		{"/api/v1/services?limit=1001", "limit 1001 out of range"},
		{"/api/v1/services?prefix=" + long, fmt.Sprintf("prefix is %d bytes", len(long))},
		{"/api/v1/services?after=%ff", "after is not valid UTF-8"},
		{"/api/v1/service", "data_info_id"},
		{"/api/v1/service?data_info_id=" + url.QueryEscape("a#@#b"), "data_info_id"},
	} {
		code, body := get(t, c, base+tc.path, "s3cret")
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want 400 saying %q", tc.path, code, body, tc.want)
		}
	}
	for _, path := range []string{"/api/v1/services", "/api/v1/service?data_info_id=a"} {
		if code, _ := get(t, c, base+path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", path, code)
		}
	}
	// An empty cluster lists nothing, completely.
	if p := listPage(t, c, base, nil); len(p.Entries) != 0 || p.Next != "" || len(p.Missing) != 0 {
		t.Errorf("empty cluster: %+v; want no entries, no next, nothing missing", p)
	}
}
