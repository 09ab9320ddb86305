// Package identity names who is on the other end of a link. Every Strata
// node holds a certificate naming its cluster, role and node id in a URI
// SAN, SPIFFE style:
//
//	spiffe://<cluster>/<role>/<name>      spiffe://prod/data/data-3
//
// Clients hold a client certificate (spiffe://<cluster>/client/<name>) or
// a token; operators an admin identity the same two ways. An ID is what a
// peer proved; a Peer is what a dialer expects of the server it reaches.
//
// The SDK checks with it that it talks to a session or meta node of its
// cluster; the nodes use the same rules (what a token or identity may do
// is theirs: the tokens file and the rights it grants are not part of the
// SDK). The package is pure: no I/O, no goroutines. Everything is safe for
// concurrent use.
package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Role is what an identity is: one of the three node roles, a client, or
// an operator.
type Role string

// Roles.
const (
	RoleMeta    Role = "meta"
	RoleData    Role = "data"
	RoleSession Role = "session"
	RoleClient  Role = "client"
	RoleAdmin   Role = "admin"
	// RoleEnroll may only ask meta for a new node's certificate
	// (MetaService.Enroll), for the roles its tokens file entry lists: how
	// scaled-out nodes get an identity without a certificate made for each
	// in advance.
	RoleEnroll Role = "enroll"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleMeta, RoleData, RoleSession, RoleClient, RoleAdmin, RoleEnroll:
		return true
	}
	return false
}

// Node reports whether r is a node role (meta, data or session).
func (r Role) Node() bool { return r == RoleMeta || r == RoleData || r == RoleSession }

// Scheme is the URI scheme of identities in certificates.
const Scheme = "spiffe"

// MaxNameBytes bounds a cluster or identity name.
const MaxNameBytes = 128

// ErrInvalid wraps every malformed identity.
var ErrInvalid = errors.New("identity: invalid")

// ID is a proven identity: the cluster it belongs to, its role, and its
// name (a node id, or a client's or operator's name).
type ID struct {
	Cluster string
	Role    Role
	Name    string
}

// String returns the URI form, spiffe://cluster/role/name.
func (id ID) String() string { return id.URI().String() }

// URI returns the identity as the URI a certificate carries.
func (id ID) URI() *url.URL {
	return &url.URL{Scheme: Scheme, Host: id.Cluster, Path: "/" + string(id.Role) + "/" + id.Name}
}

// Validate checks every part: a cluster name (lower-case letters, digits,
// dots, dashes and underscores, as a SPIFFE trust domain), a known role, a
// name of printable UTF-8 without spaces or slashes.
func (id ID) Validate() error {
	if err := ValidCluster(id.Cluster); err != nil {
		return err
	}
	if !id.Role.Valid() {
		return fmt.Errorf("%w: unknown role %q (want meta, data, session, client, admin or enroll)", ErrInvalid, id.Role)
	}
	return ValidName(id.Name)
}

// DefaultCluster is the cluster name when none is given (nodes' --cluster,
// registryctl's, the SDK's Credentials).
const DefaultCluster = "strata"

// ValidCluster checks a cluster name.
func ValidCluster(c string) error {
	if c == "" || len(c) > MaxNameBytes {
		return fmt.Errorf("%w: cluster name must be 1..%d bytes, got %d", ErrInvalid, MaxNameBytes, len(c))
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return fmt.Errorf("%w: cluster name %q: only lower-case letters, digits, '.', '-' and '_'", ErrInvalid, c)
		}
	}
	return nil
}

// ValidName checks an identity's name (the same rule as node ids).
func ValidName(n string) error {
	if n == "" {
		return fmt.Errorf("%w: name is empty", ErrInvalid)
	}
	if len(n) > MaxNameBytes {
		return fmt.Errorf("%w: name is %d bytes, at most %d allowed", ErrInvalid, len(n), MaxNameBytes)
	}
	if !utf8.ValidString(n) {
		return fmt.Errorf("%w: name is not valid UTF-8", ErrInvalid)
	}
	for _, r := range n {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '/' {
			return fmt.Errorf("%w: name %q has a space, a slash or a control character", ErrInvalid, n)
		}
	}
	return nil
}

// Parse reads spiffe://cluster/role/name.
func Parse(s string) (ID, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return fromURI(u)
}

func fromURI(u *url.URL) (ID, error) {
	if u.Scheme != Scheme || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return ID{}, fmt.Errorf("%w: %q is not %s://cluster/role/name", ErrInvalid, u.String(), Scheme)
	}
	role, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || !strings.HasPrefix(u.Path, "/") {
		return ID{}, fmt.Errorf("%w: %q has no /role/name path", ErrInvalid, u.String())
	}
	id := ID{Cluster: u.Host, Role: Role(role), Name: name}
	if err := id.Validate(); err != nil {
		return ID{}, err
	}
	return id, nil
}

// FromCert returns the identity a (verified) certificate names: its one
// spiffe URI SAN. A certificate with none, or with more than one, names no
// identity.
func FromCert(c *x509.Certificate) (ID, error) {
	var found []*url.URL
	for _, u := range c.URIs {
		if u.Scheme == Scheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return ID{}, fmt.Errorf("%w: certificate %q names no %s:// identity", ErrInvalid, c.Subject.CommonName, Scheme)
	case 1:
		return fromURI(found[0])
	}
	return ID{}, fmt.Errorf("%w: certificate %q names %d identities, want one", ErrInvalid, c.Subject.CommonName, len(found))
}

// Peer is what a node expects of the node it dials: a role and, unless
// Name is empty, that node. The zero Peer is any node of the cluster (an
// operator's tool probing every node's admin HTTP).
type Peer struct {
	Role Role
	Name string
}

// AnyNode is the zero Peer: any meta, data or session node.
var AnyNode = Peer{}

// String names the peer for errors.
func (p Peer) String() string {
	switch {
	case p.Role == "":
		return "any node"
	case p.Name == "":
		return "any " + string(p.Role) + " node"
	}
	return string(p.Role) + " " + p.Name
}

// Check reports whether id, of cluster, is the peer.
func (p Peer) Check(cluster string, id ID) error {
	roleOK := id.Role == p.Role || (p.Role == "" && id.Role.Node())
	if id.Cluster != cluster || !roleOK || (p.Name != "" && id.Name != p.Name) {
		return fmt.Errorf("identity: the peer is %s, not %s of cluster %q", id, p, cluster)
	}
	return nil
}
