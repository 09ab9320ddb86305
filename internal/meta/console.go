package meta

import (
	"crypto/tls"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/internal/console"
	"github.com/strata-registry/strata/pkg/client/identity"
)

// newConsole makes the web console's collector: it scrapes every member
// and meta peer this node knows, over HTTPS verified as a node of the
// cluster when the node runs with TLS.
func newConsole(s *Server) (*console.Collector, error) {
	var tc *tls.Config
	if c := s.Creds(); c != nil {
		tc = c.Client(identity.AnyNode)
	}
	return console.New(s.cfg.Console, console.Deps{
		Targets: s.consoleTargets,
		TLS:     tc,
		Clock:   s.clock,
		Logger:  s.logger.With("component", "console"),
	})
}

// consoleTargets is every node the collector scrapes: the meta peers in
// the Raft configuration (with the admin address the pool announces), then
// the data and session members.
func (s *Server) consoleTargets() []console.Target {
	var out []console.Target
	for _, p := range s.metaPeers() {
		if p.GetHttpAddress() != "" {
			out = append(out, console.Target{ID: p.GetId(), Role: string(cluster.RoleMeta), Addr: p.GetHttpAddress()})
		}
	}
	st := s.fsm.Current()
	for _, id := range sortedIDs(st.Members) {
		if m := st.Members[id]; m.HTTP != "" {
			out = append(out, console.Target{ID: m.ID, Role: string(m.Role), Addr: m.HTTP})
		}
	}
	return out
}
