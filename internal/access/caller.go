// Package access says what an authenticated identity may do on a node:
// the tokens file (identities that are not nodes, with a bearer token or a
// client certificate, and the rights each has), the Perms an entry grants,
// and the Caller a request carries in its context. Who an identity is
// (its name in certificates, its role) is pkg/client/identity, shared with
// the SDK.
//
// The package is pure apart from reading the tokens file: no network, no
// goroutines. Everything is safe for concurrent use.
package access

import (
	"context"
	"slices"
	"strings"

	"github.com/strata-registry/strata/pkg/client/identity"
)

// Perms are what a client identity may do, from its tokens file entry.
// Prefixes are data-ID prefixes: "com.example." allows com.example.orders;
// "*" allows every data ID. No prefix allows nothing.
type Perms struct {
	Publish   []string
	Subscribe []string
	// MaxRegistrations bounds the publishers plus subscribers this identity
	// holds on one session node (all its connections together); 0 means
	// the node's default.
	MaxRegistrations int
	// RegisterRate bounds this identity's registrations per second on one
	// session node (all its connections together); 0 means the node's
	// default.
	RegisterRate float64
	// Enroll lists the node roles an enroll identity may get certificates
	// for.
	Enroll []identity.Role
}

// CanEnroll reports whether the identity may enroll a node of role.
func (p Perms) CanEnroll(role identity.Role) bool { return slices.Contains(p.Enroll, role) }

// Any is the prefix that matches every data ID.
const Any = "*"

func allowed(prefixes []string, dataID string) bool {
	for _, p := range prefixes {
		if p == Any || strings.HasPrefix(dataID, p) {
			return true
		}
	}
	return false
}

// CanPublish reports whether the identity may publish under dataID.
func (p Perms) CanPublish(dataID string) bool { return allowed(p.Publish, dataID) }

// CanSubscribe reports whether the identity may subscribe to dataID.
func (p Perms) CanSubscribe(dataID string) bool { return allowed(p.Subscribe, dataID) }

// AllPerms allows everything with the node's default quotas: the rights of
// every client of a node that runs without authentication.
var AllPerms = Perms{Publish: []string{Any}, Subscribe: []string{Any}}

// Caller is who made a request: the identity it proved. What it may do is
// not part of it: a node looks its rights up at each request (Store.Perms),
// so a reload of the tokens file applies to streams already open. A node
// running --insecure checks nothing: its callers are Insecure, and every
// check on them passes.
type Caller struct {
	ID identity.ID
	// Insecure marks a caller on a node that runs without authentication.
	Insecure bool
}

// Is reports whether the caller is the node name of role, or any node of
// role when name is "". Insecure callers are anyone.
func (c *Caller) Is(role identity.Role, name string) bool {
	if c == nil {
		return false
	}
	if c.Insecure {
		return true
	}
	return c.ID.Role == role && (name == "" || c.ID.Name == name)
}

// String names the caller for logs and errors.
func (c *Caller) String() string {
	switch {
	case c == nil:
		return "an unauthenticated caller"
	case c.Insecure:
		return "an unauthenticated caller (--insecure)"
	}
	return c.ID.String()
}

// ProcNode returns the node id a process id names: session and data
// processes are "<node id>@<start nanos>", and node ids may hold '@', so
// the last one splits.
func ProcNode(proc string) string {
	i := strings.LastIndexByte(proc, '@')
	if i < 0 {
		return proc
	}
	return proc[:i]
}

type ctxKey struct{}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the caller ctx carries, or nil.
func FromContext(ctx context.Context) *Caller {
	c, _ := ctx.Value(ctxKey{}).(*Caller)
	return c
}
