package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// Plan says what Init makes.
type Plan struct {
	// Cluster is the cluster name every identity carries.
	Cluster string
	// Meta, Data and Session are node ids, one certificate each.
	Meta, Data, Session []string
	// Clients and Admins are names of client and operator identities: a
	// certificate and a token each, and an entry in the tokens file
	// (clients may publish and subscribe to every data ID).
	Clients, Admins []string
	// Enrollers are names of enroll identities: a token each, and an entry
	// that may enroll session nodes (MetaService.Enroll), for nodes whose
	// ids are not known in advance (scaled containers).
	Enrollers []string
	// Hosts are put in every node certificate (DNS names or IPs).
	Hosts []string
	// Validity is how long the certificates are valid (the CA five times
	// as long).
	Validity time.Duration
}

// DefaultValidity is how long development certificates last.
const DefaultValidity = 365 * 24 * time.Hour

// Init makes what p asks for in dir that is not there yet, and keeps what
// is: a CA (or the one in dir), a certificate per node and identity, a
// token per client and operator, the tokens file (identities missing from
// an existing one are added), a gossip key. It returns the paths it wrote.
// Keys and tokens are written 0600, the rest 0644.
func Init(dir tlsconf.Dir, p Plan, now time.Time) (written []string, err error) {
	if err := identity.ValidCluster(p.Cluster); err != nil {
		return nil, err
	}
	if p.Validity <= 0 {
		p.Validity = DefaultValidity
	}
	w := &writer{}
	ca, err := w.ca(dir, p.Cluster, now, 5*p.Validity)
	if err != nil {
		return w.paths, err
	}
	for _, group := range []struct {
		role  identity.Role
		names []string
		hosts []string
	}{
		{identity.RoleMeta, p.Meta, p.Hosts}, {identity.RoleData, p.Data, p.Hosts}, {identity.RoleSession, p.Session, p.Hosts},
		{identity.RoleClient, p.Clients, nil}, {identity.RoleAdmin, p.Admins, nil},
	} {
		for _, name := range group.names {
			id := identity.ID{Cluster: p.Cluster, Role: group.role, Name: name}
			if err := w.leaf(dir, ca, id, group.hosts, now, p.Validity); err != nil {
				return w.paths, err
			}
			if !group.role.Node() {
				if err := w.token(dir, id); err != nil {
					return w.paths, err
				}
			}
		}
	}
	for _, name := range p.Enrollers {
		if err := w.token(dir, identity.ID{Cluster: p.Cluster, Role: identity.RoleEnroll, Name: name}); err != nil {
			return w.paths, err
		}
	}
	if err := w.tokensFile(dir, p); err != nil {
		return w.paths, err
	}
	if !exists(dir.GossipKey()) {
		k, err := cluster.NewKey()
		if err != nil {
			return w.paths, err
		}
		if err := w.write(dir.GossipKey(), cluster.FormatKeys([][]byte{k}), 0o600); err != nil {
			return w.paths, err
		}
	}
	return w.paths, nil
}

type writer struct{ paths []string }

func (w *writer) write(path string, b []byte, mode fs.FileMode) error {
	if err := WriteFile(path, b, mode); err != nil {
		return err
	}
	w.paths = append(w.paths, path)
	return nil
}

// ca loads dir's CA, or makes one.
func (w *writer) ca(dir tlsconf.Dir, clusterName string, now time.Time, validity time.Duration) (*CA, error) {
	if exists(dir.CA()) {
		return LoadCA(dir)
	}
	ca, err := NewCA(clusterName, now, validity)
	if err != nil {
		return nil, err
	}
	kp, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	if err := w.write(dir.CAKey(), kp, 0o600); err != nil {
		return nil, err
	}
	return ca, w.write(dir.CA(), ca.CertPEM(), 0o644)
}

// Issue writes a certificate and key for id into d, signed by ca,
// unless d has them already.
func Issue(d tlsconf.Dir, ca *CA, id identity.ID, hosts []string, now time.Time, validity time.Duration) error {
	return (&writer{}).leaf(d, ca, id, hosts, now, validity)
}

// LoadCA reads d's CA, certificate and key.
func LoadCA(d tlsconf.Dir) (*CA, error) {
	cb, err := os.ReadFile(d.CA())
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(d.CAKey())
	if err != nil {
		return nil, fmt.Errorf("pki: %s exists but its key cannot be read (issue certificates where the CA key is): %w", d.CA(), err)
	}
	return ParseCA(cb, kb)
}

func (w *writer) leaf(dir tlsconf.Dir, ca *CA, id identity.ID, hosts []string, now time.Time, validity time.Duration) error {
	if exists(dir.Cert(id.Role, id.Name)) {
		return nil
	}
	cert, key, err := ca.Issue(id, hosts, now, validity)
	if err != nil {
		return err
	}
	if err := w.write(dir.Key(id.Role, id.Name), key, 0o600); err != nil {
		return err
	}
	return w.write(dir.Cert(id.Role, id.Name), cert, 0o644)
}

func (w *writer) token(dir tlsconf.Dir, id identity.ID) error {
	if exists(dir.Token(id.Role, id.Name)) {
		return nil
	}
	tok, err := NewToken()
	if err != nil {
		return err
	}
	return w.write(dir.Token(id.Role, id.Name), []byte(tok+"\n"), 0o600)
}

// tokensFile writes the tokens file, or adds to it the identities of p it
// lacks (keeping what an operator edited).
func (w *writer) tokensFile(dir tlsconf.Dir, p Plan) error {
	var f access.File
	if b, err := os.ReadFile(dir.Tokens()); err == nil {
		if f, err = access.ParseFile(b); err != nil {
			return fmt.Errorf("%s: %w", dir.Tokens(), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	have := func(role identity.Role, name string) bool {
		return slices.ContainsFunc(f.Identities, func(e access.Entry) bool { return e.Role == role && e.Name == name })
	}
	added := false
	for _, group := range []struct {
		role  identity.Role
		names []string
	}{{identity.RoleClient, p.Clients}, {identity.RoleAdmin, p.Admins}, {identity.RoleEnroll, p.Enrollers}} {
		for _, name := range group.names {
			if have(group.role, name) {
				continue
			}
			tok, err := ReadToken(dir.Token(group.role, name))
			if err != nil {
				return err
			}
			e := access.Entry{Name: name, Role: group.role, TokenSHA256: access.HashToken(tok)}
			switch group.role {
			case identity.RoleClient:
				e.Publish, e.Subscribe = []string{access.Any}, []string{access.Any}
			case identity.RoleEnroll:
				e.Enroll = []identity.Role{identity.RoleSession}
			}
			f.Identities = append(f.Identities, e)
			added = true
		}
	}
	if !added && exists(dir.Tokens()) {
		return nil
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	header := "# Strata identities that are not nodes (see `registryctl certs --help`).\n" +
		"# Nodes re-read this file on SIGHUP. token_sha256 is the sha256sum of the token;\n" +
		"# publish and subscribe list data-ID prefixes (\"*\": every data ID).\n"
	return w.write(dir.Tokens(), append([]byte(header), b...), 0o644)
}

// ReadToken reads a token file: the token on its first line.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b = b[:i]
			break
		}
	}
	if len(b) == 0 {
		return "", fmt.Errorf("pki: %s holds no token", path)
	}
	return string(b), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
