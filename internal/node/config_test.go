package node

import (
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

func TestConfig_Validate(t *testing.T) {
	good := func() Config {
		c := TestConfig()
		c.NodeID = "data-1"
		c.MetaAddrs = []string{"127.0.0.1:9615"}
		return c
	}
	tests := []struct {
		name    string
		role    cluster.Role
		edit    func(*Config)
		wantErr string // substring; "" means valid
	}{
		{"data node", cluster.RoleData, func(*Config) {}, ""},
		{"meta needs no meta addresses", cluster.RoleMeta, func(c *Config) { c.MetaAddrs = nil }, ""},
		{"session without meta addresses", cluster.RoleSession, func(c *Config) { c.MetaAddrs = nil }, "meta address"},
		{"meta address without port", cluster.RoleData, func(c *Config) { c.MetaAddrs = []string{"meta-1"} }, `meta address "meta-1"`},
		{"empty node id", cluster.RoleData, func(c *Config) { c.NodeID = "" }, "node id: identity: invalid: name is empty"},
		{"node id with a slash", cluster.RoleData, func(c *Config) { c.NodeID = "a/b" }, "slash"},
		{"node id with a space", cluster.RoleData, func(c *Config) { c.NodeID = "a b" }, "space"},
		{"node id too long", cluster.RoleData, func(c *Config) { c.NodeID = strings.Repeat("x", MaxNodeIDBytes+1) }, "node id: identity: invalid: name is 129 bytes, at most 128 allowed"},
		{"node id not UTF-8", cluster.RoleData, func(c *Config) { c.NodeID = "\xff" }, "UTF-8"},
		{"bad advertise", cluster.RoleData, func(c *Config) { c.GRPCAdvertise = "nohost" }, "grpc advertise"},
		{"gossip port out of range", cluster.RoleData, func(c *Config) { c.GossipPort = 70000 }, "gossip port"},
		{"negative gossip probe interval", cluster.RoleData, func(c *Config) { c.GossipTiming.ProbeInterval = -time.Second }, "gossip timings must not be negative"},
		{"gossip probe timeout past the profile's interval", cluster.RoleData, func(c *Config) { c.GossipTiming.ProbeTimeout = time.Second }, "probe timeout 1s must be shorter than the probe interval 200ms"},
		{"unknown gossip profile", cluster.RoleData, func(c *Config) { c.GossipProfile = "wan" }, "unknown gossip profile"},
		{"gossip timings overridden", cluster.RoleData, func(c *Config) {
			c.GossipTiming = cluster.Timing{ProbeInterval: 2 * time.Second, ProbeTimeout: time.Second, SuspicionMult: 3}
		}, ""},
		{"no join retry", cluster.RoleData, func(c *Config) { c.JoinRetry = 0 }, "join retry"},
		{"half TLS", cluster.RoleData, func(c *Config) { c.TLS.CertFile = "c.pem"; c.Insecure = false }, "set together"},
		{"no credentials, not insecure", cluster.RoleData, func(c *Config) { c.Insecure = false }, "no credentials: give --credentials"},
		{"insecure and TLS", cluster.RoleData, func(c *Config) {
			c.TLS = tlsconf.Config{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
		}, "choose one"},
		{"TLS without a gossip key", cluster.RoleData, func(c *Config) {
			c.TLS, c.Insecure = tlsconf.Config{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}, false
		}, "gossip key"},
		{"tokens without TLS", cluster.RoleData, func(c *Config) { c.TokensFile = "t.yaml" }, "needs TLS"},
		{"bad cluster name", cluster.RoleData, func(c *Config) { c.Cluster = "Prod" }, "lower-case"},
		{"unknown role", cluster.Role("oracle"), func(*Config) {}, "unknown role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			err := c.Validate(tc.role)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
