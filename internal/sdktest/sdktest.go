// Package sdktest holds the SDK's tests that need the server's code: an
// in-process cluster (internal/testcluster), a fault proxy, or the
// development PKI. The SDK (pkg/client) is a module of its own that must
// not depend on this one, so those tests live here, one package per SDK
// package they test (sdktest/client, sdktest/discovery, sdktest/resolver,
// sdktest/tlsconf), and use only the SDK's public API; the SDK's own unit
// tests stay beside its code. This package is what they share: clients
// with test timings and a TestMain with a leak check. It also checks
// (deps_test.go) that a program using the SDK pulls no server code.
package sdktest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
)

// Ctx returns a context that ends with the test, or after
// testcluster.DefaultWait.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testcluster.DefaultWait)
	t.Cleanup(cancel)
	return ctx
}

// New returns a client of cluster c with a short reconnect backoff, as the
// harness's test client, plus opts; closed when the test ends. Unless c is
// insecure (or nil), it dials as a real client does: WithCredentials with
// the test client's files (Credentials), so every server must be a session
// or meta node of c.
func New(t testing.TB, c *testcluster.Cluster, opts ...client.Option) *client.Client {
	t.Helper()
	base := []client.Option{client.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}
	if c.Credentials() != "" {
		base = append(base, client.WithCredentials(Credentials(c)))
	}
	cl, err := client.New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// Credentials returns the test client's credentials in secure cluster c
// (testcluster.ClientName's certificate, key and the CA), found as a
// user's program finds its own: client.CredentialsDir on the cluster's
// credentials directory, for the cluster testcluster.Name.
func Credentials(c *testcluster.Cluster) client.Credentials {
	cr := client.CredentialsDir(string(c.Credentials()), testcluster.ClientName)
	cr.Cluster = testcluster.Name
	return cr
}

// Main is a TestMain: it runs the tests and fails the package if anything
// left a goroutine behind.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(testcluster.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
