package testcluster

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/internal/rpc"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// Name is the cluster name every test cluster's identities carry.
const Name = "test"

// Identities the harness itself holds, in the tokens file with full
// rights: a client (certificate and token) for pkg/client and the test
// client, an operator for the harness's own calls.
const (
	ClientName = "test-client"
	AdminName  = "test-admin"
)

// clusterPKI is a cluster's test PKI under its dir: a CA, certificates
// issued on demand (every node, fake session and peer gets its own), the
// tokens file and the gossip key.
type clusterPKI struct {
	dir tlsconf.Dir
	ca  *pki.CA

	mu    sync.Mutex
	creds map[identity.ID]*tlsconf.Creds
}

func newCredentials(t testing.TB, dir string) *clusterPKI {
	t.Helper()
	d := tlsconf.Dir(filepath.Join(dir, "credentials"))
	if _, err := pki.Init(d, pki.Plan{Cluster: Name, Clients: []string{ClientName}, Admins: []string{AdminName}}, time.Now()); err != nil {
		t.Fatalf("testcluster: credentials: %v", err)
	}
	ca, err := pki.LoadCA(d)
	if err != nil {
		t.Fatal(err)
	}
	return &clusterPKI{dir: d, ca: ca, creds: map[identity.ID]*tlsconf.Creds{}}
}

// TLS returns the TLS files of role's name, issuing them on first use (for
// 127.0.0.1 and localhost); zero for an insecure cluster.
func (c *Cluster) TLS(t testing.TB, role identity.Role, name string) tlsconf.Config {
	t.Helper()
	if c.creds == nil {
		return tlsconf.Config{}
	}
	id := identity.ID{Cluster: Name, Role: role, Name: name}
	d := c.creds.dir
	if err := pki.Issue(d, c.creds.ca, id, []string{"127.0.0.1", "localhost"}, time.Now(), 24*time.Hour); err != nil {
		t.Fatalf("testcluster: issue %s: %v", id, err)
	}
	return d.TLS(role, name)
}

// Creds returns the loaded credentials of role's name (nil for an insecure
// cluster), shared by every caller.
func (c *Cluster) Creds(t testing.TB, role identity.Role, name string) *tlsconf.Creds {
	t.Helper()
	if c.creds == nil {
		return nil
	}
	id := identity.ID{Cluster: Name, Role: role, Name: name}
	c.creds.mu.Lock()
	defer c.creds.mu.Unlock()
	if cr, ok := c.creds.creds[id]; ok {
		return cr
	}
	cr, err := tlsconf.Load(c.TLS(t, role, name), Name)
	if err != nil {
		t.Fatalf("testcluster: load %s: %v", id, err)
	}
	c.creds.creds[id] = cr
	return cr
}

// PoolAs returns a connection pool that dials as role's name (closed at
// cleanup), for a test that plays that identity.
func (c *Cluster) PoolAs(t testing.TB, role identity.Role, name string) *rpc.Pool {
	t.Helper()
	cr := c.Creds(t, role, name)
	id := identity.ID{Cluster: Name, Role: role, Name: name}
	if c.creds == nil {
		id = identity.ID{}
	}
	c.poolsMu.Lock()
	defer c.poolsMu.Unlock()
	if p, ok := c.pools[id]; ok {
		return p
	}
	p := rpc.NewPool(cr, 64)
	c.pools[id] = p
	return p
}

// pool is the harness's own: it dials as the test operator.
func (c *Cluster) pool(t testing.TB) *rpc.Pool { return c.PoolAs(t, identity.RoleAdmin, AdminName) }

// TokensFile returns the tokens file every node of the cluster reads
// ("" for an insecure cluster). A test may rewrite it and call Reload on
// the nodes, as an operator edits it and sends SIGHUP.
func (c *Cluster) TokensFile() string {
	if c.creds == nil {
		return ""
	}
	return c.creds.dir.Tokens()
}

// GossipKeyFile returns the gossip key file every node reads ("" for an
// insecure cluster).
func (c *Cluster) GossipKeyFile() string {
	if c.creds == nil {
		return ""
	}
	return c.creds.dir.GossipKey()
}

// GossipKeys returns the gossip keys, for a fake node of the pool (nil
// for an insecure cluster).
func (c *Cluster) GossipKeys(t testing.TB) [][]byte {
	t.Helper()
	if c.creds == nil {
		return nil
	}
	keys, err := cluster.ReadKeyFile(c.GossipKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Token returns the bearer token of the client or operator name (issued at
// start: ClientName, AdminName).
func (c *Cluster) Token(t testing.TB, role identity.Role, name string) string {
	t.Helper()
	tok, err := pki.ReadToken(c.creds.dir.Token(role, name))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Credentials returns the cluster's credentials directory (pki layout,
// as registryctl certs init writes it), for tests that run the commands
// with --credentials or build the SDK's client.CredentialsDir from it; ""
// for an insecure cluster.
func (c *Cluster) Credentials() tlsconf.Dir {
	if c == nil || c.creds == nil {
		return ""
	}
	return c.creds.dir
}

// ClientTLS returns a stock *tls.Config as the test client: its
// certificate, and the CA pool. crypto/tls checks the server's host name
// (the 127.0.0.1 SAN every test certificate carries), which says nothing
// about which node answered: it is for tests that need a plain config. A
// test of pkg/client dials with the SDK's own identity check instead
// (sdktest.New). Nil for an insecure cluster.
func (c *Cluster) ClientTLS(t testing.TB) *tls.Config {
	t.Helper()
	if c == nil || c.creds == nil {
		return nil
	}
	tc := c.TLS(t, identity.RoleClient, ClientName)
	cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(tc.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// AnonTLS returns the config of a client that trusts the cluster's CA and
// presents no certificate (it proves itself with a token, or not at all):
// the server's certificate must name peer, or one of also, of the cluster
// (tlsconf.Creds.Client). Nil for an insecure cluster.
func (c *Cluster) AnonTLS(t testing.TB, peer identity.Peer, also ...identity.Peer) *tls.Config {
	t.Helper()
	if c == nil || c.creds == nil {
		return nil
	}
	return c.anonCreds(t).Client(peer, also...)
}

// anonCreds are credentials with the cluster's CA and no certificate.
// Callers check that the cluster is secure.
func (c *Cluster) anonCreds(t testing.TB) *tlsconf.Creds {
	t.Helper()
	cr, err := tlsconf.Load(tlsconf.Config{CAFile: c.creds.dir.CA()}, Name)
	if err != nil {
		t.Fatal(err)
	}
	return cr
}

// peerAt returns the identity the node at gRPC address addr has, for
// dialing it (any meta node if no node of the cluster is there).
func (c *Cluster) peerAt(addr string) identity.Peer {
	for _, n := range c.metas {
		if srv := n.Server(); srv != nil && srv.GRPCAddr() == addr {
			return identity.Peer{Role: identity.RoleMeta, Name: n.ID}
		}
	}
	for _, n := range c.datas {
		if srv := n.Server(); srv != nil && srv.GRPCAddr() == addr {
			return identity.Peer{Role: identity.RoleData, Name: n.ID}
		}
	}
	for _, n := range c.sessions {
		if srv := n.Server(); srv != nil && srv.GRPCAddr() == addr {
			return identity.Peer{Role: identity.RoleSession, Name: n.ID}
		}
	}
	return identity.Peer{Role: identity.RoleMeta}
}

// SetIdentities puts entries in the tokens file (replacing entries of the
// same role and name, keeping the rest, the harness's own among them) and
// reloads every node, as an operator edits the file and sends SIGHUP.
func (c *Cluster) SetIdentities(t testing.TB, entries ...access.Entry) {
	t.Helper()
	b, err := os.ReadFile(c.TokensFile())
	if err != nil {
		t.Fatal(err)
	}
	f, err := access.ParseFile(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		f.Identities = slices.DeleteFunc(f.Identities, func(o access.Entry) bool { return o.Role == e.Role && o.Name == e.Name })
		f.Identities = append(f.Identities, e)
	}
	out, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := access.ParseFile(out); err != nil {
		t.Fatalf("testcluster: tokens file: %v", err)
	}
	if err := os.WriteFile(c.TokensFile(), out, 0o644); err != nil {
		t.Fatal(err)
	}
	c.ReloadAll(t)
}

// HTTP returns a client for the nodes' admin HTTP: it verifies that the
// server is a node of the cluster and, with asAdmin, presents the test
// operator's certificate (which opens /api and /debug). It keeps no idle
// connections. For an insecure cluster it is a plain client.
func (c *Cluster) HTTP(t testing.TB, asAdmin bool) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	if c.creds != nil {
		cr := c.Creds(t, identity.RoleAdmin, AdminName)
		if !asAdmin {
			cr = c.anonCreds(t)
		}
		tr.TLSClientConfig = cr.Client(identity.AnyNode)
	}
	return &http.Client{Timeout: DefaultWait, Transport: tr}
}

// URL returns the URL of path on the admin HTTP server at addr: https
// unless the cluster is insecure.
func (c *Cluster) URL(addr, path string) string {
	if c.creds == nil {
		return "http://" + addr + path
	}
	return "https://" + addr + path
}
