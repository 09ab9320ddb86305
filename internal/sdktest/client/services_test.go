package client_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// listAll follows ListServices' pages of limit from the start, until a
// complete listing (a slot in handover makes a page partial).
func listAll(t *testing.T, cl *client.Client, prefix string, limit int) []client.Service {
	t.Helper()
	var out []client.Service
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		out = nil
		q := client.ServiceQuery{Prefix: prefix, Limit: limit}
		for range 100 {
			p, err := cl.ListServices(sdktest.Ctx(t), q)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.MissingSlots) > 0 {
				return fmt.Errorf("slots %v missing", p.MissingSlots)
			}
			out = append(out, p.Services...)
			if p.Next == "" {
				return nil
			}
			q.After = p.Next
		}
		t.Fatal("more than 100 pages: the cursor does not advance")
		return nil
	})
	return out
}

// ListServices lists the cluster's keys through the session, paged by key,
// with their publisher counts, and only those the identity may subscribe
// to; a bad query fails before anything is sent.
func TestClient_ListServices_PagedByKey_OnlyWhatTheIdentityMaySee(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 2, Session: 1})
	c.WaitDataSettled(t)
	ctx := sdktest.Ctx(t)
	pub := sdktest.New(t, c, client.WithSessions(c.Session(0).Server().GRPCAddr()))
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("a.svc-%d", i)
		want = append(want, id)
		if _, err := pub.Publish(ctx, id, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"b.hidden", "b.hidden", "c.after"} {
		if _, err := pub.Publish(ctx, id, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// Acked by the session; on the leaders a moment later.
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		got := listAll(t, pub, "", 3)
		if len(got) != 9 || got[7].DataID != "b.hidden" || got[7].Publishers != 2 || got[8].DataID != "c.after" {
			return fmt.Errorf("listed %+v; want the 7 a. services, b.hidden with 2 publishers, c.after", got)
		}
		return nil
	})

	const name = "a-reader"
	c.TLS(t, identity.RoleClient, name)
	c.SetIdentities(t, access.Entry{Name: name, Role: identity.RoleClient, Subscribe: []string{"a."}})
	creds := client.CredentialsDir(string(c.Credentials()), name)
	creds.Cluster = testcluster.Name
	reader, err := client.New(ctx, client.WithSessions(c.Session(0).Server().GRPCAddr()), client.WithCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reader.Close() })
	var ids []string
	for _, s := range listAll(t, reader, "", 2) {
		ids = append(ids, s.DataID)
		if s.Publishers != 1 || s.Group != "DEFAULT_GROUP" || !strings.HasPrefix(s.DataInfoID, s.DataID+"#@#") {
			t.Errorf("entry %+v", s)
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("a reader of a. listed %v; want %v (never b.)", ids, want)
	}
	// The cursor is a key the reader may see: paging one at a time past
	// the last a. key shows nothing of b.hidden (a key follows it), not
	// even as next.
	q := client.ServiceQuery{Limit: 1}
	for range 20 {
		p, err := reader.ListServices(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Services {
			if !strings.HasPrefix(s.DataID, "a.") {
				t.Fatalf("a reader of a. was shown %q", s.DataID)
			}
		}
		if p.Next != "" && !strings.HasPrefix(p.Next, "a.") {
			t.Fatalf("a reader of a. was handed the cursor %q", p.Next)
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	if got := listAll(t, reader, "a.svc-6", 10); len(got) != 1 || got[0].DataID != "a.svc-6" {
		t.Fatalf("prefix a.svc-6: %+v", got)
	}
	for _, q := range []client.ServiceQuery{{Limit: -1}, {Limit: client.MaxListLimit + 1}, {Prefix: "\xff"}, {After: strings.Repeat("x", 800)}} {
		if _, err := reader.ListServices(ctx, q); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("%+v: %v; want ErrInvalidArgument", q, err)
		}
	}
	// The session checks too, for callers that are not this SDK.
	conn := c.DialAs(t, c.Session(0).Server().GRPCAddr(), identity.RoleClient, testcluster.ClientName)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = registryv1.NewSessionServiceClient(conn).ListServices(ctx, &registryv1.ListServicesRequest{Limit: 1001})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "limit 1001") {
		t.Errorf("ListServices with limit 1001: %v; want InvalidArgument naming the limit", err)
	}
}
