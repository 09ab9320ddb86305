package access

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/strata-registry/strata/pkg/client/identity"
)

// The tokens file lists the identities that are not nodes: clients and
// operators. Each has a name and a role, the rights of a client, and a
// token (stored as its SHA-256, so the file itself holds no secret) or
// none, for an identity that proves itself with a client certificate:
//
//	identities:
//	  - name: orders-service
//	    role: client
//	    token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	    publish: [com.example.orders.]
//	    subscribe: ["*"]
//	    max_registrations: 10000
//	    register_rate: 500
//	  - name: ops
//	    role: admin
//	    token_sha256: ...
//
// A node reads it at start and again on SIGHUP (Store.Reload); a file that
// does not parse leaves the identities in force unchanged.

// Entry is one identity of the tokens file.
type Entry struct {
	Name string        `yaml:"name"`
	Role identity.Role `yaml:"role"`
	// TokenSHA256 is the hex SHA-256 of the identity's bearer token; empty
	// for an identity that only uses a client certificate.
	TokenSHA256      string   `yaml:"token_sha256,omitempty"`
	Publish          []string `yaml:"publish,omitempty"`
	Subscribe        []string `yaml:"subscribe,omitempty"`
	MaxRegistrations int      `yaml:"max_registrations,omitempty"`
	RegisterRate     float64  `yaml:"register_rate,omitempty"`
	// Enroll, for an enroll identity, lists the node roles (data,
	// session) it may get certificates for.
	Enroll []identity.Role `yaml:"enroll,omitempty"`
}

// File is the tokens file.
type File struct {
	Identities []Entry `yaml:"identities"`
}

// Limits on the tokens file and what it holds.
const (
	MaxTokensFileBytes = 1 << 20
	MaxTokenBytes      = 512
	maxPrefixes        = 256
	maxPrefixBytes     = 512 // record.MaxDataIDBytes
)

// HashToken returns the hex SHA-256 of a token, as the tokens file stores it.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ParseFile reads and checks a tokens file: unknown fields, duplicate
// names or tokens, a node role, malformed hashes, empty prefixes and
// negative quotas are errors that name the entry.
func ParseFile(b []byte) (File, error) {
	var f File
	if len(b) > MaxTokensFileBytes {
		return f, fmt.Errorf("%w: tokens file is too large (at most %d bytes)", identity.ErrInvalid, MaxTokensFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return File{}, fmt.Errorf("%w: tokens file: %v", identity.ErrInvalid, err)
	}
	names, hashes := map[string]bool{}, map[string]bool{}
	for i, e := range f.Identities {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: tokens file entry %d (%q): %s", identity.ErrInvalid, i+1, e.Name, fmt.Sprintf(format, args...))
		}
		if err := identity.ValidName(e.Name); err != nil {
			return File{}, bad("%v", err)
		}
		if e.Role != identity.RoleClient && e.Role != identity.RoleAdmin && e.Role != identity.RoleEnroll {
			return File{}, bad("role %q: want client, admin or enroll (nodes prove themselves with certificates)", e.Role)
		}
		if e.Role == identity.RoleEnroll && (e.TokenSHA256 == "" || len(e.Enroll) == 0) {
			return File{}, bad("an enroll identity needs a token and the roles it may enroll (enroll: [session])")
		}
		for _, r := range e.Enroll {
			if e.Role != identity.RoleEnroll || (r != identity.RoleData && r != identity.RoleSession) {
				return File{}, bad("enroll: only an enroll identity lists roles, and only data or session (got %q)", r)
			}
		}
		key := string(e.Role) + "/" + e.Name
		if names[key] {
			return File{}, bad("a second %s named %q", e.Role, e.Name)
		}
		names[key] = true
		if e.TokenSHA256 != "" {
			if h, err := hex.DecodeString(e.TokenSHA256); err != nil || len(h) != sha256.Size {
				return File{}, bad("token_sha256 must be 64 hex digits (sha256sum of the token)")
			}
			if hashes[e.TokenSHA256] {
				return File{}, bad("the same token as an earlier entry")
			}
			hashes[e.TokenSHA256] = true
		}
		for _, list := range [][]string{e.Publish, e.Subscribe} {
			if len(list) > maxPrefixes {
				return File{}, bad("%d prefixes, at most %d allowed", len(list), maxPrefixes)
			}
			for _, p := range list {
				if p == "" || len(p) > maxPrefixBytes {
					return File{}, bad("prefix %q: want 1..%d bytes (%q allows every data ID)", p, maxPrefixBytes, Any)
				}
			}
		}
		if e.MaxRegistrations < 0 || e.RegisterRate < 0 || math.IsNaN(e.RegisterRate) || math.IsInf(e.RegisterRate, 0) {
			return File{}, bad("max_registrations and register_rate must be 0 (the node's default) or positive")
		}
	}
	return f, nil
}

// Store holds the identities of a tokens file for a cluster. Safe for
// concurrent use; Reload swaps them as a whole.
type Store struct {
	cluster string
	path    string

	mu      sync.RWMutex
	byToken map[string]*Caller // hex sha256 -> caller
	byName  map[string]Perms   // role/name -> rights
}

// LoadStore reads the tokens file at path (none when path is "": no
// identity but the certificates').
func LoadStore(cluster, path string) (*Store, error) {
	s := &Store{cluster: cluster, path: path}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the file again and, if it parses, puts its identities in
// force. On error the old ones stay.
func (s *Store) Reload() error {
	byToken, byName := map[string]*Caller{}, map[string]Perms{}
	if s.path != "" {
		b, err := readFile(s.path)
		if err != nil {
			return fmt.Errorf("access: read tokens file: %w", err)
		}
		f, err := ParseFile(b)
		if err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
		for _, e := range f.Identities {
			byName[string(e.Role)+"/"+e.Name] = Perms{
				Publish: e.Publish, Subscribe: e.Subscribe, MaxRegistrations: e.MaxRegistrations, RegisterRate: e.RegisterRate,
				Enroll: e.Enroll,
			}
			if e.TokenSHA256 != "" {
				byToken[e.TokenSHA256] = &Caller{ID: identity.ID{Cluster: s.cluster, Role: e.Role, Name: e.Name}}
			}
		}
	}
	s.mu.Lock()
	s.byToken, s.byName = byToken, byName
	s.mu.Unlock()
	return nil
}

// Len returns how many identities are in force.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byName)
}

// Token returns the caller a bearer token proves, if any. The caller is
// shared: do not modify it.
func (s *Store) Token(token string) (*Caller, bool) {
	if token == "" || len(token) > MaxTokenBytes {
		return nil, false
	}
	h := HashToken(token)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.byToken[h]
	return c, ok
}

// Perms returns the rights of id as the file reads now: its entry's, or
// none when the file does not list it. Callers ask at each request rather
// than keep them, so a reload that narrows an entry applies at once.
func (s *Store) Perms(id identity.ID) Perms {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byName[string(id.Role)+"/"+id.Name]
}

// readFile reads the tokens file at path, at most one byte over
// MaxTokensFileBytes: enough for ParseFile to refuse a file that is too
// large without reading all of it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxTokensFileBytes+1))
}
