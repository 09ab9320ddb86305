package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoPartitions is returned by a Net that cannot cut links (loopback).
var ErrNoPartitions = errors.New("chaos: this network cannot partition (needs root and ip netns: --net netns)")

// Net places nodes on addresses and cuts links between them. Methods are
// called from one goroutine at a time (the fault runner and the cluster
// starting nodes), except Close, which may run concurrently on Ctrl-C.
type Net interface {
	// Addrs returns the addresses node id listens on, the same on every
	// call, so a restarted node comes back where it was.
	Addrs(id string) (Addrs, error)
	// Command returns the command that runs name with args as node id
	// (in its namespace, if there is one).
	Command(id, name string, args ...string) *exec.Cmd
	// Cut drops every packet between nodes a and b, both ways, until Heal.
	Cut(a, b string) error
	// Heal removes every cut.
	Heal() error
	// Close removes whatever the Net made (namespaces, links, rules).
	Close() error
	// Name is "loopback" or "netns".
	Name() string
}

// Addrs are one node's listen addresses, host:port. Raft is set for meta.
type Addrs struct {
	GRPC, HTTP, Gossip, Raft string
}

// Loopback puts every node on 127.0.0.1 with ports picked once (free
// when picked) and reused on every start of the node. It cannot
// partition.
type Loopback struct {
	mu    sync.Mutex
	addrs map[string]Addrs
	taken []string
	rng   *rand.Rand
}

// NewLoopback returns a loopback Net.
func NewLoopback() *Loopback {
	return &Loopback{addrs: map[string]Addrs{}, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))}
}

// Name implements Net.
func (l *Loopback) Name() string { return "loopback" }

// Addrs implements Net.
func (l *Loopback) Addrs(id string) (Addrs, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := l.addrs[id]; ok {
		return a, nil
	}
	// Ports below the kernel's ephemeral range (32768-60999 by default),
	// so no outgoing connection takes one while the node is down between
	// a kill and its restart; each checked free on TCP and UDP.
	var ports []string
	for len(ports) < 4 {
		port := 20000 + l.rng.IntN(12000)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if slices.Contains(ports, addr) || slices.ContainsFunc(l.taken, func(a string) bool { return a == addr }) {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = pc.Close()
		ports = append(ports, addr)
	}
	l.taken = append(l.taken, ports...)
	a := Addrs{GRPC: ports[0], HTTP: ports[1], Gossip: ports[2], Raft: ports[3]}
	l.addrs[id] = a
	return a, nil
}

// Command implements Net.
func (l *Loopback) Command(_, name string, args ...string) *exec.Cmd {
	return exec.Command(name, args...)
}

// CanMake implements kindFilter: no partitions.
func (l *Loopback) CanMake(k Kind) bool { return !k.Partition() }

// Cut implements Net: loopback cannot.
func (l *Loopback) Cut(a, b string) error { return ErrNoPartitions }

// Heal implements Net.
func (l *Loopback) Heal() error { return nil }

// Close implements Net.
func (l *Loopback) Close() error { return nil }

// Netns puts every node in a network namespace of its own, each linked
// by a veth pair to a bridge in a hub namespace, which a third veth pair
// links to this process's namespace, with an address of its own on a
// /24. The bridge sits in its own namespace so the host's firewall (a
// FORWARD policy of DROP, as Docker sets, seen by bridged traffic when
// br_netfilter is loaded) never applies, and nothing in the host's
// namespace but one veth end changes. A cut is iptables DROP rules in
// both nodes' namespaces, so it cuts gossip (UDP and TCP) as well as
// gRPC. Every namespace and link carries the run's tag; Close deletes
// the namespaces, and their links and rules go with them.
type Netns struct {
	tag    string // short, unique per run: names of namespaces and links
	prefix string // "10.X.Y."

	mu     sync.Mutex
	ids    []string // in order of Addrs' first call: host .10+i
	hosts  map[string]string
	cuts   bool
	closed bool
}

// NewNetns makes the hub namespace and its bridge on a free /24 of
// 10.231-250.x.0. Needs root and the ip and iptables commands.
func NewNetns() (*Netns, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("chaos: netns needs root")
	}
	for _, c := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("chaos: netns needs %s: %w", c, err)
		}
	}
	CleanStale()
	pid := os.Getpid()
	n := &Netns{tag: fmt.Sprintf("%x", pid%0xfffff), hosts: map[string]string{}}
	routes, _ := exec.Command("ip", "-4", "route").Output()
	for i := range 20 * 256 {
		p := fmt.Sprintf("10.%d.%d.", 231+(pid+i)/256%20, (pid+i)%256)
		if !strings.Contains(string(routes), p+"0/24") {
			n.prefix = p
			break
		}
	}
	if n.prefix == "" {
		return nil, errors.New("chaos: no free 10.x.y.0/24 for the bridge")
	}
	hub, root, peer := n.ns("hub"), "ch"+n.tag+"r", "ch"+n.tag+"h"
	n.ids = append(n.ids, "hub") // deleted by Close
	for _, c := range [][]string{
		{"ip", "netns", "add", hub},
		{"ip", "-n", hub, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", hub, "link", "set", "br0", "up"},
		{"ip", "link", "add", root, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", hub},
		{"ip", "-n", hub, "link", "set", peer, "master", "br0"},
		{"ip", "-n", hub, "link", "set", peer, "up"},
		{"ip", "addr", "add", n.prefix + "1/24", "dev", root},
		{"ip", "link", "set", root, "up"},
	} {
		if err := run(c...); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	return n, nil
}

// Name implements Net.
func (n *Netns) Name() string { return "netns" }

func (n *Netns) ns(id string) string { return "chaos-" + n.tag + "-" + id }

// Addrs implements Net: the first call for id makes its namespace.
func (n *Netns) Addrs(id string) (Addrs, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[id]
	if !ok {
		i := len(n.ids) - 1
		h = n.prefix + strconv.Itoa(10+i)
		ns, hub := n.ns(id), n.ns("hub")
		host, peer := fmt.Sprintf("ch%s%da", n.tag, i), fmt.Sprintf("ch%s%db", n.tag, i)
		for _, c := range [][]string{
			{"ip", "netns", "add", ns},
			{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
			{"ip", "link", "set", host, "netns", hub},
			{"ip", "-n", hub, "link", "set", host, "master", "br0"},
			{"ip", "-n", hub, "link", "set", host, "up"},
			{"ip", "link", "set", peer, "netns", ns},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			{"ip", "-n", ns, "addr", "add", h + "/24", "dev", peer},
			{"ip", "-n", ns, "link", "set", peer, "up"},
		} {
			if err := run(c...); err != nil {
				return Addrs{}, err
			}
		}
		n.ids = append(n.ids, id)
		n.hosts[id] = h
	}
	// Every node has the host to itself: the default ports.
	return Addrs{GRPC: h + ":9600", HTTP: h + ":9601", Gossip: h + ":7946", Raft: h + ":9602"}, nil
}

// Command implements Net: ip netns exec execs name in place, so the
// process started is the node itself (its pid is the node's).
func (n *Netns) Command(id, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.ns(id), name}, args...)...)
}

// Cut implements Net.
func (n *Netns) Cut(a, b string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ha, hb := n.hosts[a], n.hosts[b]
	if ha == "" || hb == "" {
		return fmt.Errorf("chaos: cut %s-%s: unknown node", a, b)
	}
	n.cuts = true
	for _, p := range [][2]string{{a, hb}, {b, ha}} {
		ns, other := n.ns(p[0]), p[1]
		for _, c := range [][]string{
			{"ip", "netns", "exec", ns, "iptables", "-w", "-A", "INPUT", "-s", other, "-j", "DROP"},
			{"ip", "netns", "exec", ns, "iptables", "-w", "-A", "OUTPUT", "-d", other, "-j", "DROP"},
		} {
			if err := run(c...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Heal implements Net: flushes the filter table of every namespace (only
// cuts are in them).
func (n *Netns) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.cuts {
		return nil
	}
	var errs []error
	for _, id := range n.ids[1:] {
		if err := run("ip", "netns", "exec", n.ns(id), "iptables", "-w", "-F"); err != nil {
			errs = append(errs, err)
		}
	}
	n.cuts = len(errs) > 0
	return errors.Join(errs...)
}

// Close implements Net: deletes every namespace (their rules, veth
// pairs and the bridge go with them). The nodes must have exited: a
// namespace lives on while a process is in it.
func (n *Netns) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	for _, id := range n.ids {
		if err := run("ip", "netns", "del", n.ns(id)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CleanStale removes namespaces an earlier run left behind
// (one killed before it could clean up): those whose tag is the pid of a
// process no longer running.
func CleanStale() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "chaos-") {
			continue
		}
		tag, _, _ := strings.Cut(strings.TrimPrefix(f[0], "chaos-"), "-")
		if !staleTag(tag) {
			continue
		}
		_ = run("ip", "netns", "del", f[0])
	}
}

// staleTag reports whether a tag (a pid in hex, modulo 0xfffff) belongs
// to no running process.
func staleTag(tag string) bool {
	pid, err := strconv.ParseInt(tag, 16, 64)
	if err != nil || pid <= 0 {
		return false
	}
	_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaos: %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
