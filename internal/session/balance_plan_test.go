package session

import (
	"slices"
	"testing"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

func sessionInfo(id string, count uint32, alive bool) *registryv1.SessionInfo {
	st := registryv1.NodeState_NODE_STATE_UNSPECIFIED
	if alive {
		st = registryv1.NodeState_NODE_STATE_ALIVE
	}
	return &registryv1.SessionInfo{Node: &registryv1.Node{Id: id, GrpcAddress: id + ":9603", State: st}, ClientCount: count}
}

func TestPlanBalance(t *testing.T) {
	tests := []struct {
		name     string
		own      int
		sessions []*registryv1.SessionInfo
		maxMoves int
		moves    int
		targets  []string
	}{
		{"alone", 100, []*registryv1.SessionInfo{sessionInfo("self", 3, true)}, 50, 0, nil},
		{"new empty session gets half", 10, []*registryv1.SessionInfo{sessionInfo("self", 9, true), sessionInfo("b", 0, true)}, 50, 5, []string{"b:9603"}},
		// The reported count of self is stale; the live one counts.
		{"own live count wins", 4, []*registryv1.SessionInfo{sessionInfo("self", 10, true), sessionInfo("b", 4, true)}, 50, 0, nil},
		{"within tolerance", 11, []*registryv1.SessionInfo{sessionInfo("b", 10, true), sessionInfo("c", 9, true)}, 50, 0, nil},
		{"capped per round", 1000, []*registryv1.SessionInfo{sessionInfo("b", 0, true)}, 50, 50, []string{"b:9603"}},
		{"only lighter than the mean, lightest first", 30, []*registryv1.SessionInfo{
			sessionInfo("b", 20, true), sessionInfo("c", 2, true), sessionInfo("d", 8, true)}, 50, 15, []string{"c:9603", "d:9603"}},
		{"dead sessions neither count nor receive", 10, []*registryv1.SessionInfo{sessionInfo("b", 0, false), sessionInfo("c", 10, true)}, 50, 0, nil},
		{"nothing to suggest", 0, []*registryv1.SessionInfo{sessionInfo("b", 0, true)}, 50, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planBalance("self", tt.own, tt.sessions, 1.2, tt.maxMoves)
			if p.moves != tt.moves || !slices.Equal(p.targets, tt.targets) {
				t.Errorf("plan = %d moves to %v, want %d to %v", p.moves, p.targets, tt.moves, tt.targets)
			}
		})
	}
}

func TestConfig_BalanceValidation(t *testing.T) {
	c := TestConfig()
	c.NodeID, c.MetaAddrs = "s", []string{"127.0.0.1:1"}
	c.BalanceInterval = c.HeartbeatInterval
	if err := c.Validate(); err == nil {
		t.Error("a balance interval of one heartbeat was accepted")
	}
	c.BalanceInterval = 3 * c.HeartbeatInterval
	c.BalanceTolerance = 0.5
	if err := c.Validate(); err == nil {
		t.Error("a tolerance below 1 was accepted")
	}
	c.BalanceTolerance = 1.2
	if err := c.Validate(); err != nil {
		t.Errorf("valid balance config refused: %v", err)
	}
}
