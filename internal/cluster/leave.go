package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/hashicorp/memberlist"
)

// A graceful leave, told apart from a failure.
//
// memberlist hands a leave and a death alike to the event delegate (the
// Node it passes does not carry the state it decided on), so the leaving
// node says so itself, as Serf does: it gossips a leave intent naming its
// process (node ID and boot nonce) and the time it left. Every node that
// learns an intent passes it on once and keeps it until forgetAfter past
// that time, and push/pull syncs carry all of them, so the intent reaches
// every live member even if its datagrams are lost, in whichever order it
// and the leave arrive: a member reported gone is Left if its process's
// intent is known, and a member already reported Dead turns Left when the
// intent comes later.
//
// The boot nonce ties an intent to one run of the node: the same ID
// restarted is a new process, whose own death is not excused by an old
// intent, and intents of two runs are held side by side.

// leaveIntent is one process's word that it is leaving the pool for good.
type leaveIntent struct {
	Node string `json:"node"`
	Boot string `json:"boot"`
	// At is when it left, in Unix nanoseconds on its clock. Intents expire
	// forgetAfter past it everywhere alike (give or take clock skew), so a
	// node that forgot one is not handed it back as new.
	At int64 `json:"at"`
}

// process names one run of a node.
type process struct{ node, boot string }

// maxIntents bounds the intents a node keeps (and sends in a push/pull).
// Past it the oldest go first; a pool sees far fewer leaves per forgetAfter.
const maxIntents = 1024

// maxNodeID and maxBoot bound what is read off the wire.
const (
	maxNodeID = 256
	maxBoot   = 64
)

// intentMsg is the first byte of a leave intent gossiped as a user message.
const intentMsg byte = 1

func newBoot() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// learnIntent records li. For a new intent it turns the member Left if it
// is already Dead, queues the intent to be gossiped on (done, when not nil,
// is closed once it has been), and reports true. Gossip about this node
// itself is ignored: only its own Leave says it is leaving.
func (a *Agent) learnIntent(li leaveIntent, done chan struct{}) bool {
	if li.Node == "" || len(li.Node) > maxNodeID || li.Boot == "" || len(li.Boot) > maxBoot ||
		(done == nil && li.Node == a.cfg.NodeID) {
		return false
	}
	now := a.clock.Now()
	if now.Sub(time.Unix(0, li.At)) > forgetAfter {
		return false
	}
	p := process{li.Node, li.Boot}
	a.mu.Lock()
	if _, ok := a.intents[p]; ok {
		a.mu.Unlock()
		return false
	}
	a.intents[p] = li.At
	a.forgetIntents(now)
	if m, ok := a.members[li.Node]; ok && m.State == StateDead && m.Meta.Boot == li.Boot {
		m.State, m.Since = StateLeft, now
		a.members[li.Node] = m
		a.notifyLocked()
	}
	a.mu.Unlock()
	if b, err := json.Marshal(li); err == nil {
		a.bcast.QueueBroadcast(&intentBroadcast{p: p, msg: append([]byte{intentMsg}, b...), done: done})
	} else if done != nil {
		close(done)
	}
	return true
}

// forgetIntents drops the intents that expired, and the oldest past
// maxIntents. Caller holds a.mu.
func (a *Agent) forgetIntents(now time.Time) {
	var oldest process
	oldestAt := int64(0)
	for p, at := range a.intents {
		if now.Sub(time.Unix(0, at)) > forgetAfter {
			delete(a.intents, p)
			continue
		}
		if oldest.node == "" || at < oldestAt {
			oldest, oldestAt = p, at
		}
	}
	if len(a.intents) > maxIntents {
		delete(a.intents, oldest)
	}
}

// leftIntent reports whether the process announced in m has said it is
// leaving. Caller holds a.mu.
func (a *Agent) leftIntent(id string, m Meta) bool {
	_, ok := a.intents[process{id, m.Boot}]
	return ok && m.Boot != ""
}

// localIntents encodes the intents this node holds, for a push/pull.
func (a *Agent) localIntents() []byte {
	a.mu.Lock()
	a.forgetIntents(a.clock.Now())
	out := make([]leaveIntent, 0, len(a.intents))
	for p, at := range a.intents {
		out = append(out, leaveIntent{Node: p.node, Boot: p.boot, At: at})
	}
	a.mu.Unlock()
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return b
}

// mergeIntents learns the intents of a peer's push/pull.
func (a *Agent) mergeIntents(buf []byte) {
	if len(buf) == 0 {
		return
	}
	var in []leaveIntent
	if err := json.Unmarshal(buf, &in); err != nil {
		a.logger.Debug("ignoring unreadable gossip state", "err", err)
		return
	}
	for _, li := range in[:min(len(in), maxIntents)] {
		a.learnIntent(li, nil)
	}
}

// readIntent learns an intent gossiped as a user message.
func (a *Agent) readIntent(msg []byte) {
	if len(msg) == 0 || msg[0] != intentMsg {
		return
	}
	var li leaveIntent
	if err := json.Unmarshal(msg[1:], &li); err != nil {
		a.logger.Debug("ignoring unreadable gossip message", "err", err)
		return
	}
	a.learnIntent(li, nil)
}

// intentBroadcast is a leave intent in memberlist's broadcast queue. done,
// when set, is closed once memberlist has sent it as often as it sends a
// broadcast.
type intentBroadcast struct {
	p    process
	msg  []byte
	done chan struct{}
}

// Invalidates reports whether b replaces other: only the same intent does,
// and one is queued once.
func (b *intentBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*intentBroadcast)
	return ok && o.p == b.p
}

func (b *intentBroadcast) Message() []byte { return b.msg }

func (b *intentBroadcast) Finished() {
	if b.done != nil {
		close(b.done)
	}
}
