package cli

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// healthRoot builds a root command wired the way the server mains are
// (NoArgs, ApplyEnv in PreRunE, its own --http-addr) with the healthcheck
// subcommand, and executes it with env set and args. It returns stdout and
// the error.
func healthRoot(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	for _, k := range []string{"STRATA_HTTP_ADDR", "STRATA_ADMIN_TOKEN", "STRATA_TIMEOUT", "STRATA_TLS_CA", "STRATA_CREDENTIALS", "STRATA_CLUSTER"} {
		unsetenv(t, k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	rootRan := false
	root := &cobra.Command{
		Use:          "meta",
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PreRunE:      func(cmd *cobra.Command, _ []string) error { return ApplyEnv(cmd) },
		RunE:         func(*cobra.Command, []string) error { rootRan = true; return nil },
	}
	root.Flags().String("http-addr", ":9616", "the server's own listen address")
	root.AddCommand(HealthCommand("127.0.0.1:1"))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(new(bytes.Buffer))
	root.SetArgs(append([]string{"healthcheck"}, args...))
	err := root.Execute()
	if rootRan {
		t.Fatal("the root command ran instead of healthcheck")
	}
	return out.String(), err
}

// readyServer serves /readyz with code and body, and sends the
// Authorization header of each request on the returned channel.
func readyServer(t *testing.T, code int, body string) (addr string, auth <-chan string) {
	t.Helper()
	ch := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		ch <- r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), ch
}

func TestHealthCommand_ReadyExitsZero(t *testing.T) {
	addr, _ := readyServer(t, http.StatusOK, "{\n  \"status\": \"ready\"\n}\n")
	out, err := healthRoot(t, nil, "--http-addr", addr)
	if err != nil {
		t.Fatalf("healthcheck of a ready node: %v", err)
	}
	if !strings.Contains(out, "ready") || !strings.Contains(out, `{"status":"ready"}`) {
		t.Fatalf("output %q does not report the node's answer on one line", out)
	}
}

func TestHealthCommand_NotReadyFailsWithReason(t *testing.T) {
	addr, _ := readyServer(t, http.StatusServiceUnavailable, `{"status": "no leader known"}`)
	_, err := healthRoot(t, nil, "--http-addr", addr)
	if err == nil {
		t.Fatal("healthcheck of a node answering 503 succeeded")
	}
	for _, want := range []string{"not ready", "503", "no leader known", addr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestHealthCommand_UnreachableFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: connection refused
	_, err = healthRoot(t, nil, "--http-addr", addr)
	if err == nil {
		t.Fatal("healthcheck of a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %q does not say not ready and name %s", err, addr)
	}
}

func TestHealthCommand_HangingNodeTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; the probe must give up
	}))
	t.Cleanup(srv.Close)
	start := time.Now()
	_, err := healthRoot(t, nil, "--http-addr", srv.Listener.Addr().String(), "--timeout", "200ms")
	if err == nil {
		t.Fatal("healthcheck of a node that never answers succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("healthcheck took %v with --timeout 200ms", d)
	}
}

func TestHealthCommand_EnvAddressAndToken(t *testing.T) {
	addr, auth := readyServer(t, http.StatusOK, `{"status":"ready"}`)
	_, port, _ := net.SplitHostPort(addr)
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantAuth string
	}{
		{
			// What a container sets for its server: a wildcard listen address.
			name: "server's wildcard STRATA_HTTP_ADDR means this machine",
			env:  map[string]string{"STRATA_HTTP_ADDR": ":" + port},
		},
		{
			name:     "token from the environment is sent as a bearer token",
			env:      map[string]string{"STRATA_HTTP_ADDR": "0.0.0.0:" + port, "STRATA_ADMIN_TOKEN": "s3cret"},
			wantAuth: "Bearer s3cret",
		},
		{
			name:     "flags win over the environment",
			env:      map[string]string{"STRATA_HTTP_ADDR": "127.0.0.1:1", "STRATA_ADMIN_TOKEN": "env"},
			args:     []string{"--http-addr", addr, "--admin-token", "flag"},
			wantAuth: "Bearer flag",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := healthRoot(t, tc.env, tc.args...); err != nil {
				t.Fatalf("healthcheck: %v", err)
			}
			if got := <-auth; got != tc.wantAuth {
				t.Fatalf("Authorization = %q, want %q", got, tc.wantAuth)
			}
		})
	}
}

func TestHealthCommand_RejectsArgsAndBadAddress(t *testing.T) {
	if _, err := healthRoot(t, nil, "extra"); err == nil {
		t.Error("healthcheck with a positional argument succeeded")
	}
	if _, err := healthRoot(t, nil, "--http-addr", "no-port"); err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Errorf("healthcheck --http-addr no-port: err = %v, want one naming --http-addr", err)
	}
}

// tlsReadyServer serves /readyz (200) over TLS with a certificate that ca
// issues for id, on loopback until the test ends, and returns its address.
func tlsReadyServer(t *testing.T, ca *pki.CA, id identity.ID) string {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(id, []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// The refused handshakes are the point of some cases: not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// newCA makes a CA for cluster and writes its certificate as dir/ca.pem
// (the credentials directory layout), returning both.
func newCA(t *testing.T, cluster, dir string) (*pki.CA, string) {
	t.Helper()
	ca, err := pki.NewCA(cluster, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := tlsconf.Dir(dir).CA()
	if err := os.WriteFile(path, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca, path
}

// TestHealthCommand_TLS checks the probe of a node that serves admin HTTP
// over TLS: it succeeds only against a node of --cluster whose certificate
// the given CA (--tls-ca, or ca.pem of --credentials or
// STRATA_CREDENTIALS) signed.
func TestHealthCommand_TLS(t *testing.T) {
	credsDir := t.TempDir()
	ca, caFile := newCA(t, identity.DefaultCluster, credsDir)
	_, foreignCA := newCA(t, identity.DefaultCluster, t.TempDir())
	node := tlsReadyServer(t, ca, identity.ID{Cluster: identity.DefaultCluster, Role: identity.RoleMeta, Name: "meta-1"})
	client := tlsReadyServer(t, ca, identity.ID{Cluster: identity.DefaultCluster, Role: identity.RoleClient, Name: "dev"})

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error; "" for success
	}{
		{name: "--tls-ca", args: []string{"--http-addr", node, "--tls-ca", caFile}},
		{name: "--credentials uses its ca.pem", args: []string{"--http-addr", node, "--credentials", credsDir}},
		{name: "STRATA_CREDENTIALS, as the node reads it", env: map[string]string{"STRATA_CREDENTIALS": credsDir, "STRATA_HTTP_ADDR": node}},
		{name: "a CA that did not sign the node", args: []string{"--http-addr", node, "--tls-ca", foreignCA}, want: "certificate signed by unknown authority"},
		{name: "a server that is no node", args: []string{"--http-addr", client, "--tls-ca", caFile}, want: "not any node"},
		{name: "a node of another cluster", args: []string{"--http-addr", node, "--tls-ca", caFile, "--cluster", "other"}, want: `not "other"`},
		{name: "plaintext to a TLS node", args: []string{"--http-addr", node}, want: "400"},
		{name: "a CA file that does not exist", args: []string{"--http-addr", node, "--tls-ca", credsDir + "/nope.pem"}, want: "nope.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := healthRoot(t, tc.env, tc.args...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("healthcheck over TLS: %v", err)
			case tc.want == "" && !strings.Contains(out, "ready: https://"):
				t.Fatalf("output %q does not name the https URL", out)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
