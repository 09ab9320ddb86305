package tlsconf_test

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/identity"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/tlsconf"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     tlsconf.Config
		wantErr string // substring; "" means valid
	}{
		{"zero config is no TLS", tlsconf.Config{}, ""},
		{"cert, key and CA", tlsconf.Config{CertFile: "c", KeyFile: "k", CAFile: "ca"}, ""},
		{"CA alone (a token client)", tlsconf.Config{CAFile: "ca"}, ""},
		{"cert without key", tlsconf.Config{CertFile: "c", CAFile: "ca"}, "set together"},
		{"key without cert", tlsconf.Config{KeyFile: "k", CAFile: "ca"}, "set together"},
		{"cert and key without CA", tlsconf.Config{CertFile: "c", KeyFile: "k"}, "CA file is required"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: Validate = %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: Validate = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}

// fixture is a credentials directory with nodes and a client of cluster
// "c", and one node of another cluster under the same CA.
type fixture struct{ dir pki.Dir }

func newFixture(t *testing.T) fixture {
	t.Helper()
	d := pki.Dir(t.TempDir())
	if _, err := pki.Init(d, pki.Plan{Cluster: "c", Meta: []string{"m1"}, Data: []string{"d1", "d2"}, Clients: []string{"app"}, Hosts: []string{"127.0.0.1"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return fixture{d}
}

func (f fixture) cfg(role identity.Role, name string) tlsconf.Config {
	return tlsconf.Config{CertFile: f.dir.Cert(role, name), KeyFile: f.dir.Key(role, name), CAFile: f.dir.CA()}
}

func (f fixture) node(t *testing.T, role identity.Role, name string) *tlsconf.Creds {
	t.Helper()
	c, err := tlsconf.LoadNode(f.cfg(role, name), identity.ID{Cluster: "c", Role: role, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoad_ZeroIsNoTLS(t *testing.T) {
	c, err := tlsconf.Load(tlsconf.Config{}, "c")
	if c != nil || err != nil {
		t.Fatalf("Load(zero) = %v, %v; want nil, nil", c, err)
	}
}

func TestLoadNode_RefusesACertificateNamingAnotherIdentity(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		want identity.ID
		msg  string
	}{
		{"another node", identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d2"}, "but this is"},
		{"another role", identity.ID{Cluster: "c", Role: identity.RoleSession, Name: "d1"}, "but this is"},
		{"another cluster", identity.ID{Cluster: "x", Role: identity.RoleData, Name: "d1"}, `not "x"`},
	} {
		if _, err := tlsconf.LoadNode(f.cfg(identity.RoleData, "d1"), tc.want); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: LoadNode = %v, want an error containing %q", tc.name, err, tc.msg)
		}
	}
	if _, err := tlsconf.LoadNode(tlsconf.Config{CAFile: f.dir.CA()}, identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d1"}); err == nil {
		t.Error("a node without a certificate loaded")
	}
}

func TestLoad_FileErrors(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := f.cfg(identity.RoleData, "d1")
	for _, tc := range []struct {
		name string
		cfg  tlsconf.Config
		msg  string
	}{
		{"missing CA", tlsconf.Config{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: filepath.Join(dir, "none.pem")}, "read CA file"},
		{"CA without PEM", tlsconf.Config{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: junk}, "no certificates"},
		{"key of another cert", tlsconf.Config{CertFile: good.CertFile, KeyFile: f.dir.Key(identity.RoleData, "d2"), CAFile: good.CAFile}, "load key pair"},
		{"certificate without an identity", tlsconf.Config{CertFile: f.dir.CA(), KeyFile: f.dir.CAKey(), CAFile: good.CAFile}, "names no spiffe"},
	} {
		if _, err := tlsconf.Load(tc.cfg, "c"); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Load = %v, want an error containing %q", tc.name, err, tc.msg)
		}
	}
	other := pki.Dir(t.TempDir())
	if _, err := pki.Init(other, pki.Plan{Cluster: "c", Data: []string{"d1"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconf.Load(tlsconf.Config{CertFile: other.Cert(identity.RoleData, "d1"), KeyFile: other.Key(identity.RoleData, "d1"), CAFile: f.dir.CA()}, "c"); err == nil ||
		!strings.Contains(err.Error(), "not signed by a CA") {
		t.Errorf("a certificate of another CA: %v", err)
	}
}

// handshake serves one TLS connection with srv on loopback, dials it with
// cl, and returns both sides' handshake errors.
func handshake(t *testing.T, srv, cl *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := conn.(*tls.Conn).Handshake(); err != nil {
			done <- err
			return
		}
		_, err = conn.Write([]byte{1})
		done <- err
	}()
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cl)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(conn, make([]byte, 1))
		conn.Close()
	}
	select {
	case serverErr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not finish its handshake within 10s")
	}
	return serverErr, err
}

func TestCreds_ClientChecksTheServersIdentity(t *testing.T) {
	f := newFixture(t)
	d1, d2 := f.node(t, identity.RoleData, "d1"), f.node(t, identity.RoleData, "d2")
	srv := d1.Server(tls.RequireAndVerifyClientCert, nil)
	for _, tc := range []struct {
		peer identity.Peer
		ok   bool
	}{
		{identity.Peer{Role: identity.RoleData, Name: "d1"}, true},
		{identity.Peer{Role: identity.RoleData}, true},
		{identity.Peer{Role: identity.RoleData, Name: "d3"}, false},
		{identity.Peer{Role: identity.RoleMeta}, false},
	} {
		_, clientErr := handshake(t, srv, d2.Client(tc.peer))
		if (clientErr == nil) != tc.ok {
			t.Errorf("dialing d1 as %v: client error %v, want ok=%v", tc.peer, clientErr, tc.ok)
		}
	}
	// Any of several: d1 is a data node, so "a session or a data node"
	// accepts it, and "a session or a meta node" names both in refusing.
	session, meta, data := identity.Peer{Role: identity.RoleSession}, identity.Peer{Role: identity.RoleMeta}, identity.Peer{Role: identity.RoleData}
	if _, err := handshake(t, srv, d2.Client(session, data)); err != nil {
		t.Errorf("dialing d1 as a session or a data node: %v", err)
	}
	if _, err := handshake(t, srv, d2.Client(session, meta)); err == nil || !strings.Contains(err.Error(), "not any session node or any meta node") {
		t.Errorf("dialing d1 as a session or a meta node: %v, want a refusal naming both", err)
	}
}

func TestCreds_ServerAllowJudgesTheClientsIdentity(t *testing.T) {
	f := newFixture(t)
	m1, d1 := f.node(t, identity.RoleMeta, "m1"), f.node(t, identity.RoleData, "d1")
	onlyMeta := func(id identity.ID) error { return identity.Peer{Role: identity.RoleMeta}.Check("c", id) }
	srv := m1.Server(tls.RequireAndVerifyClientCert, onlyMeta)
	if serverErr, clientErr := handshake(t, srv, m1.Client(identity.Peer{Role: identity.RoleMeta})); serverErr != nil || clientErr != nil {
		t.Errorf("meta to meta: server %v, client %v", serverErr, clientErr)
	}
	if serverErr, _ := handshake(t, srv, d1.Client(identity.Peer{Role: identity.RoleMeta})); serverErr == nil {
		t.Error("a data node's certificate passed a meta-only handshake")
	}
	anon, err := tlsconf.Load(tlsconf.Config{CAFile: f.dir.CA()}, "c")
	if err != nil {
		t.Fatal(err)
	}
	if serverErr, _ := handshake(t, srv, anon.Client(identity.Peer{Role: identity.RoleMeta})); serverErr == nil {
		t.Error("a client without a certificate passed RequireAndVerifyClientCert")
	}
	// Where tokens are welcome, a certificate-less client gets through the
	// handshake (the gRPC interceptors then want a token).
	if serverErr, clientErr := handshake(t, m1.Server(tls.VerifyClientCertIfGiven, nil), anon.Client(identity.Peer{Role: identity.RoleMeta})); serverErr != nil || clientErr != nil {
		t.Errorf("certificate-less client on a token port: server %v, client %v", serverErr, clientErr)
	}
}

func TestCreds_ReloadKeepsTheOldOnError_UsesTheNewOnSuccess(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "d.pem"), filepath.Join(dir, "d-key.pem")
	cp := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cp(f.dir.Cert(identity.RoleData, "d1"), cert)
	cp(f.dir.Key(identity.RoleData, "d1"), key)
	c, err := tlsconf.LoadNode(tlsconf.Config{CertFile: cert, KeyFile: key, CAFile: f.dir.CA()}, identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	// Another node's certificate is refused, and the old one stays.
	cp(f.dir.Cert(identity.RoleData, "d2"), cert)
	cp(f.dir.Key(identity.RoleData, "d2"), key)
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), "but this is") {
		t.Fatalf("Reload with d2's certificate = %v, want refused", err)
	}
	if got := c.Self().Name; got != "d1" {
		t.Fatalf("after a failed reload the node is %q", got)
	}
	// A (re-issued) certificate of the same identity is taken.
	cp(f.dir.Cert(identity.RoleData, "d1"), cert)
	cp(f.dir.Key(identity.RoleData, "d1"), key)
	if err := c.Reload(); err != nil {
		t.Fatalf("Reload with d1's certificate: %v", err)
	}
}
