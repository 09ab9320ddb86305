package testcluster

import (
	"testing"

	"github.com/strata-registry/strata/internal/faultproxy"
)

// MetaLink is one node's path to the meta tier through fault proxies, one
// per meta node (Spec.MetaLinks): pausing it freezes that node's view of
// the slot table and its heartbeats while the rest of the cluster moves
// on, as a slow or cut-off route to meta would. Gossip and node-to-node
// calls are not affected.
type MetaLink struct {
	proxies []*faultproxy.Proxy
}

// newMetaLink puts a proxy in front of every running meta node; they are
// closed when the test ends.
func (c *Cluster) newMetaLink(t testing.TB) *MetaLink {
	t.Helper()
	l := &MetaLink{}
	for _, a := range c.MetaAddrs() {
		p := faultproxy.Start(Listen(t), a)
		t.Cleanup(func() { _ = p.Close() })
		l.proxies = append(l.proxies, p)
	}
	return l
}

// metaAddrs are what the node is given instead of the meta addresses.
func (l *MetaLink) metaAddrs() []string {
	out := make([]string, len(l.proxies))
	for i, p := range l.proxies {
		out[i] = p.Addr()
	}
	return out
}

// Pause holds every byte between the node and meta until Heal.
func (l *MetaLink) Pause() {
	for _, p := range l.proxies {
		p.Pause()
	}
}

// Heal lets the node reach meta again; held bytes flow on.
func (l *MetaLink) Heal() {
	for _, p := range l.proxies {
		p.Heal()
	}
}
