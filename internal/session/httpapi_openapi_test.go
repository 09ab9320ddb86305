package session_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-registry/strata/internal/openapi"
	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
)

var update = flag.Bool("update", false, "rewrite docs/openapi.json from the route table")

const openapiGolden = "../../docs/openapi.json"

// TestHTTPAPI_OpenAPI_MatchesTheGoldenFile: the document generated from the
// route table is the committed docs/openapi.json (go test -run OpenAPI
// -update rewrites it), and a session serves it at /openapi.json without
// credentials.
func TestHTTPAPI_OpenAPI_MatchesTheGoldenFile(t *testing.T) {
	doc, err := session.OpenAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(openapiGolden, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(openapiGolden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, golden) {
		t.Fatalf("docs/openapi.json is not what the route table generates; run go test ./internal/session -run OpenAPI -update")
	}
}

// TestHTTPAPI_OpenAPI_EveryRouteIsDocumented_EveryOperationServed: each
// operation in the document is served by a session (a request to it does
// not fall through to "no route"), and each route the session serves is
// in the document: a request to a method and path the document lacks
// gets "no route", for every method on every documented path.
func TestHTTPAPI_OpenAPI_EveryRouteIsDocumented_EveryOperationServed(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	n := c.Session(0)
	api := httpAPI(t, c, n, c.Token(t, identity.RoleClient, testcluster.ClientName))
	code, served, _ := httpAPI(t, c, n, "").do(sdktest.Ctx(t), http.MethodGet, "/openapi.json", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /openapi.json without credentials: %d %s", code, served)
	}
	ops, err := openapi.Operations(served)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 7 {
		t.Fatalf("the document has %d operations: %v", len(ops), ops)
	}
	documented := map[string]bool{}
	paths := map[string]bool{}
	param := regexp.MustCompile(`\{[^}]+\}`)
	for _, op := range ops {
		documented[op] = true
		method, path, _ := strings.Cut(op, " ")
		paths[path] = true
		code, body := probe(t, api, method, param.ReplaceAllString(path, "x"))
		if strings.Contains(string(body), "no route") {
			t.Errorf("%s is documented but not served: %d %s", op, code, body)
		}
	}
	for path := range paths {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch} {
			if documented[method+" "+path] {
				continue
			}
			_, body := probe(t, api, method, param.ReplaceAllString(path, "x"))
			if !strings.Contains(string(body), "no route") {
				t.Errorf("%s %s is served but not documented: %s", method, path, body)
			}
		}
	}
}

// probe sends a request and reads the start of its answer: enough to tell
// a route's answer from "no route", also of an event stream that never
// ends.
func probe(t *testing.T, a *apiClient, method, path string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(sdktest.Ctx(t))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b := make([]byte, 256)
	k, _ := io.ReadAtLeast(resp.Body, b, 1)
	return resp.StatusCode, b[:k]
}
