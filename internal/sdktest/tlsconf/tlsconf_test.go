package tlsconf_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
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
// "c", and nodes of another cluster, "x", under the same CA (the meta node
// m1 and the data node d1 of "x", in dir/x).
type fixture struct{ dir tlsconf.Dir }

func newFixture(t *testing.T) fixture {
	t.Helper()
	d := tlsconf.Dir(t.TempDir())
	if _, err := pki.Init(d, pki.Plan{Cluster: "c", Meta: []string{"m1"}, Data: []string{"d1", "d2"}, Clients: []string{"app"}, Hosts: []string{"127.0.0.1"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	f := fixture{d}
	for _, id := range []identity.ID{{Cluster: "x", Role: identity.RoleMeta, Name: "m1"}, {Cluster: "x", Role: identity.RoleData, Name: "d1"}} {
		f.issue(t, id, f.foreignCfg(id.Role, id.Name))
	}
	return f
}

// ca returns the fixture's CA.
func (f fixture) ca(t *testing.T) *pki.CA {
	t.Helper()
	certPEM, err := os.ReadFile(f.dir.CA())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(f.dir.CAKey())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue has the fixture's CA issue a fresh certificate (a new key and
// serial) for id, written to cfg's files.
func (f fixture) issue(t *testing.T, id identity.ID, cfg tlsconf.Config) {
	t.Helper()
	certPEM, keyPEM, err := f.ca(t).Issue(id, []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.CertFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.CertFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.KeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// foreignCfg is the TLS config of role's name of cluster "x".
func (f fixture) foreignCfg(role identity.Role, name string) tlsconf.Config {
	dir := filepath.Join(string(f.dir), "x", string(role))
	return tlsconf.Config{CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+"-key.pem"), CAFile: f.dir.CA()}
}

func (f fixture) cfg(role identity.Role, name string) tlsconf.Config {
	return f.dir.TLS(role, name)
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
	other := tlsconf.Dir(t.TempDir())
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

// servedSerial returns the serial number of the certificate srv presents
// in a handshake.
func servedSerial(t *testing.T, srv *tls.Config, cl *tlsconf.Creds) string {
	t.Helper()
	var serial string
	cfg := cl.Client(identity.AnyNode)
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			serial = cs.PeerCertificates[0].SerialNumber.String()
		}
		return verify(cs)
	}
	if serverErr, clientErr := handshake(t, srv, cfg); serverErr != nil || clientErr != nil {
		t.Fatalf("handshake: server %v, client %v", serverErr, clientErr)
	}
	return serial
}

func TestCreds_ReloadKeepsTheOldOnError_UsesTheNewOnSuccess(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	cfg := tlsconf.Config{CertFile: filepath.Join(dir, "d.pem"), KeyFile: filepath.Join(dir, "d-key.pem"), CAFile: f.dir.CA()}
	d1 := identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d1"}
	f.issue(t, d1, cfg)
	c, err := tlsconf.LoadNode(cfg, d1)
	if err != nil {
		t.Fatal(err)
	}
	srv := c.Server(tls.RequireAndVerifyClientCert, nil)
	d2 := f.node(t, identity.RoleData, "d2")
	first := servedSerial(t, srv, d2)

	// Another node's certificate is refused, and the old one stays.
	f.issue(t, identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d2"}, cfg)
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), "but this is") {
		t.Fatalf("Reload with d2's certificate = %v, want refused", err)
	}
	if got := c.Self().Name; got != "d1" {
		t.Fatalf("after a failed reload the node is %q", got)
	}
	if got := servedSerial(t, srv, d2); got != first {
		t.Fatalf("after a failed reload the server presents serial %s, want the old %s", got, first)
	}
	// A re-issued certificate of the same identity is taken, by the same
	// server config, from the next handshake on.
	f.issue(t, d1, cfg)
	if err := c.Reload(); err != nil {
		t.Fatalf("Reload with d1's new certificate: %v", err)
	}
	if got := servedSerial(t, srv, d2); got == first {
		t.Fatalf("after the reload the server still presents the old serial %s", first)
	}
}

func TestCreds_RefuseAPeerOfAnotherClusterUnderTheSameCA(t *testing.T) {
	f := newFixture(t)
	d2 := f.node(t, identity.RoleData, "d2")
	xd1, err := tlsconf.LoadNode(f.foreignCfg(identity.RoleData, "d1"), identity.ID{Cluster: "x", Role: identity.RoleData, Name: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	// Dialing: x's d1 chains to the CA, has the right role and name, and
	// is still not a node of this cluster.
	_, clientErr := handshake(t, xd1.Server(tls.RequireAndVerifyClientCert, nil), d2.Client(identity.Peer{Role: identity.RoleData, Name: "d1"}))
	if clientErr == nil || !strings.Contains(clientErr.Error(), `of cluster "x", not "c"`) {
		t.Errorf("dialing d1 of cluster x: %v, want refused for its cluster", clientErr)
	}
	// Serving Raft: x's meta node is refused in the handshake. It dials
	// with a bare config so that it does not refuse c's server first.
	m1 := f.node(t, identity.RoleMeta, "m1")
	onlyMeta := func(id identity.ID) error { return identity.Peer{Role: identity.RoleMeta}.Check("c", id) }
	xm1, err := tls.LoadX509KeyPair(f.foreignCfg(identity.RoleMeta, "m1").CertFile, f.foreignCfg(identity.RoleMeta, "m1").KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	bare := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, Certificates: []tls.Certificate{xm1}}
	serverErr, _ := handshake(t, m1.Server(tls.RequireAndVerifyClientCert, onlyMeta), bare)
	if serverErr == nil || !strings.Contains(serverErr.Error(), `of cluster "x", not "c"`) {
		t.Errorf("meta m1 of cluster x on c's Raft port: %v, want refused for its cluster", serverErr)
	}
}

func TestCreds_ServerAllow_JudgesWithTheHandshakesCA_NotOneReloadedSince(t *testing.T) {
	f := newFixture(t)
	// The server's files start as the fixture's m1 and move, by a reload,
	// to another CA and an m1 certificate of that CA.
	other := tlsconf.Dir(t.TempDir())
	if _, err := pki.Init(other, pki.Plan{Cluster: "c", Meta: []string{"m1"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := tlsconf.Config{CertFile: filepath.Join(dir, "m1.pem"), KeyFile: filepath.Join(dir, "m1-key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	put := func(from tlsconf.Dir) error {
		for to, src := range map[string]string{cfg.CertFile: from.Cert(identity.RoleMeta, "m1"), cfg.KeyFile: from.Key(identity.RoleMeta, "m1"), cfg.CAFile: from.CA()} {
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, b, 0o600); err != nil {
				return err
			}
		}
		return nil
	}
	if err := put(f.dir); err != nil {
		t.Fatal(err)
	}
	m1, err := tlsconf.LoadNode(cfg, identity.ID{Cluster: "c", Role: identity.RoleMeta, Name: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	allow := func(id identity.ID) error { return identity.Peer{Role: identity.RoleMeta}.Check("c", id) }
	// The reload lands between this handshake's ClientHello (which took
	// the old certificate and CA) and its VerifyConnection.
	srv := &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		out, err := m1.Server(tls.RequireAndVerifyClientCert, allow).GetConfigForClient(hi)
		if err != nil {
			return nil, err
		}
		if err := put(other); err != nil {
			return nil, err
		}
		if err := m1.Reload(); err != nil {
			return nil, err
		}
		return out, nil
	}}
	peer := f.node(t, identity.RoleMeta, "m1") // the old CA's m1, as a peer not yet moved
	if serverErr, clientErr := handshake(t, srv, peer.Client(identity.Peer{Role: identity.RoleMeta})); serverErr != nil || clientErr != nil {
		t.Errorf("a meta node that crypto/tls verified against the handshake's CA, after a reload: server %v, client %v", serverErr, clientErr)
	}
}

// chainCA is a root CA and an intermediate it signed, minted here since
// pki's CAs issue leaves only.
type chainCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
}

func newChainCA(t *testing.T) chainCA {
	t.Helper()
	var c chainCA
	c.root, c.rootKey = mint(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test root"}, IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	c.inter, c.interKey = mint(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test intermediate"}, IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, c.root, c.rootKey)
	return c
}

// mint makes a certificate from tmpl signed by parent (self-signed when
// nil), valid for an hour around now.
func mint(t *testing.T, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// leaf writes a certificate for id with the extended key usages given,
// signed by the intermediate, to a new directory: the certificate file
// holds the leaf and, with withInter, the intermediate after it; the CA
// file holds the root only.
func (c chainCA) leaf(t *testing.T, id identity.ID, withInter bool, usages ...x509.ExtKeyUsage) tlsconf.Config {
	t.Helper()
	cert, key := mint(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: id.Name}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
		URIs: []*url.URL{id.URI()},
	}, c.inter, c.interKey)
	dir := t.TempDir()
	cfg := tlsconf.Config{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if withInter {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.inter.Raw})...)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range map[string][]byte{
		cfg.CertFile: chain,
		cfg.KeyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		cfg.CAFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.root.Raw}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func TestLoad_OwnCertificate_ChainsThroughItsIntermediates(t *testing.T) {
	ca := newChainCA(t)
	d1 := identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d1"}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	cfg := ca.leaf(t, d1, true, both...)
	srv, err := tlsconf.LoadNode(cfg, d1)
	if err != nil {
		t.Fatalf("a node certificate with its intermediate in the file: %v", err)
	}
	d2 := identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d2"}
	cl, err := tlsconf.LoadNode(ca.leaf(t, d2, true, both...), d2)
	if err != nil {
		t.Fatal(err)
	}
	// Peers verify the chain each side presents, against the root alone.
	if serverErr, clientErr := handshake(t, srv.Server(tls.RequireAndVerifyClientCert, func(identity.ID) error { return nil }), cl.Client(identity.Peer{Role: identity.RoleData})); serverErr != nil || clientErr != nil {
		t.Errorf("a handshake between nodes with intermediates: server %v, client %v", serverErr, clientErr)
	}
	if _, err := tlsconf.LoadNode(ca.leaf(t, d1, false, both...), d1); err == nil || !strings.Contains(err.Error(), "not signed by a CA") {
		t.Errorf("a node certificate without its intermediate: %v, want not signed by a CA", err)
	}
}

func TestLoad_OwnCertificate_NodesNeedServerAndClientAuth_ClientsClientAuth(t *testing.T) {
	ca := newChainCA(t)
	d1 := identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d1"}
	app := identity.ID{Cluster: "c", Role: identity.RoleClient, Name: "app"}
	server, client := x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth
	for _, tc := range []struct {
		name   string
		node   bool
		usages []x509.ExtKeyUsage
		msg    string // "" means it loads
	}{
		{"node: server and client auth", true, []x509.ExtKeyUsage{server, client}, ""},
		{"node: client auth only", true, []x509.ExtKeyUsage{client}, "not valid for TLS server authentication"},
		{"node: server auth only", true, []x509.ExtKeyUsage{server}, "not valid for TLS client authentication"},
		{"client: client auth only", false, []x509.ExtKeyUsage{client}, ""},
		{"client: server and client auth", false, []x509.ExtKeyUsage{server, client}, ""},
		{"client: server auth only", false, []x509.ExtKeyUsage{server}, "not valid for TLS client authentication"},
	} {
		var err error
		if tc.node {
			_, err = tlsconf.LoadNode(ca.leaf(t, d1, true, tc.usages...), d1)
		} else {
			_, err = tlsconf.Load(ca.leaf(t, app, true, tc.usages...), "c")
		}
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("%s: %v, want it loaded", tc.name, err)
		case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.msg)
		}
	}
}

func TestLoad_KeyPairWithoutAParsedLeaf(t *testing.T) {
	// With this setting tls.LoadX509KeyPair leaves Certificate.Leaf nil.
	t.Setenv("GODEBUG", "x509keypairleaf=0")
	f := newFixture(t)
	c, err := tlsconf.LoadNode(f.cfg(identity.RoleData, "d1"), identity.ID{Cluster: "c", Role: identity.RoleData, Name: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Self().Name; got != "d1" {
		t.Errorf("Self = %v, want d1", c.Self())
	}
}
