package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// ComposeConfig attaches a run to a compose project's running cluster
// (make chaos-compose) instead of starting processes: faults are docker
// kill / pause / stop+start / network disconnect through the Engine API,
// and the load runs where the chaos process runs, which must be on the
// project's network (the nodes' addresses are container names).
type ComposeConfig struct {
	// Project is the compose project name.
	Project string
	// Socket is the Docker Engine's unix socket.
	Socket string
	// Credentials is the operator share (admin/admin and client/dev).
	Credentials string
	// Cluster is the cluster name the certificates carry.
	Cluster string
}

// nodeCtl controls a node that is not a process this run started.
type nodeCtl interface {
	start() error
	kill() error
	freeze() error
	thaw() error
	term(grace time.Duration)
	running() bool
	frozen() bool
}

// containerCtl is a node in a container of the compose project.
type containerCtl struct {
	d  *docker
	id string
}

func (c *containerCtl) start() error { return c.d.start(c.id) }

// kill is docker kill (SIGKILL to the node, PID 1), waiting for the exit.
func (c *containerCtl) kill() error {
	if err := c.d.kill(c.id); err != nil {
		return err
	}
	return Poll(context.Background(), 30*time.Second, func() error {
		if st, err := c.d.state(c.id); err != nil || st == "running" {
			return fmt.Errorf("container %s still %s (%v)", c.id[:12], st, err)
		}
		return nil
	})
}

func (c *containerCtl) freeze() error { return c.d.pause(c.id) }
func (c *containerCtl) thaw() error   { return c.d.unpause(c.id) }

// term is docker stop (SIGTERM, SIGKILL after grace).
func (c *containerCtl) term(grace time.Duration) {
	if st, _ := c.d.state(c.id); st == "paused" {
		_ = c.d.unpause(c.id)
	}
	_ = c.d.stop(c.id, grace)
}

func (c *containerCtl) running() bool {
	st, err := c.d.state(c.id)
	return err == nil && (st == "running" || st == "paused")
}

func (c *containerCtl) frozen() bool {
	st, err := c.d.state(c.id)
	return err == nil && st == "paused"
}

// composeNet isolates containers from the project network (docker network
// disconnect). It cannot cut one link: only cut-session-all, which
// isolates a session from every node and from its clients too.
type composeNet struct {
	d       *docker
	network string
	// aliases of each container, to connect it back as compose had it.
	aliases map[string][]string // node ID -> aliases
	ids     map[string]string   // node ID -> container ID

	mu       sync.Mutex
	isolated map[string]bool
}

func (n *composeNet) Name() string { return "compose" }
func (n *composeNet) Addrs(id string) (Addrs, error) {
	return Addrs{}, errors.New("chaos: compose nodes are not placed")
}
func (n *composeNet) Command(string, string, ...string) *exec.Cmd {
	return exec.Command("false") // never called: compose nodes are not started as processes
}

// CanMake implements kindFilter: only the isolation of one node.
func (n *composeNet) CanMake(k Kind) bool { return !k.Partition() || k == CutSessionAll }

// Cut implements Net: disconnects a from the network (b does not matter:
// a container is on the network or off it), once.
func (n *composeNet) Cut(a, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isolated[a] {
		return nil
	}
	if err := n.d.disconnect(n.network, n.ids[a]); err != nil {
		return err
	}
	n.isolated[a] = true
	return nil
}

// Heal implements Net: connects every isolated container back.
func (n *composeNet) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for a := range n.isolated {
		if err := n.d.connect(n.network, n.ids[a], n.aliases[a]...); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(n.isolated, a)
	}
	return errors.Join(errs...)
}

func (n *composeNet) Close() error { return n.Heal() }

// kindFilter is a Net that can make only some fault kinds.
type kindFilter interface {
	CanMake(Kind) bool
}

// AttachCompose finds the nodes of a running compose project and returns
// the cluster they form, with the compose net. Every container's restart
// policy is set to "no", so the engine never restarts a node the run
// killed (the project is a throwaway one: make chaos-compose starts and
// deletes it).
func AttachCompose(ctx context.Context, cfg ComposeConfig, logf func(string, ...any)) (*Cluster, Net, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	d := newDocker(cfg.Socket)
	cts, err := d.containers(cfg.Project)
	if err != nil {
		return nil, nil, err
	}
	c := &Cluster{creds: tlsconf.Dir(cfg.Credentials), cluster: cfg.Cluster, client: "dev", attached: true}
	nw := &composeNet{d: d, network: cfg.Project + "_default", aliases: map[string][]string{}, ids: map[string]string{}, isolated: map[string]bool{}}
	slices.SortFunc(cts, func(a, b container) int { return strings.Compare(a.Service+a.Number, b.Service+b.Number) })
	for _, ct := range cts {
		var role string
		var a Addrs
		switch {
		case strings.HasPrefix(ct.Service, "meta-"):
			role, a = RoleMeta, Addrs{GRPC: ct.Hostname + ":9615", HTTP: ct.Hostname + ":9616"}
		case strings.HasPrefix(ct.Service, "data-"):
			role, a = RoleData, Addrs{GRPC: ct.Hostname + ":9622", HTTP: ct.Hostname + ":9623"}
		case ct.Service == "session":
			role, a = RoleSession, Addrs{GRPC: ct.Hostname + ":9603", HTTP: ct.Hostname + ":9604"}
		default:
			continue // certs, and whatever else the project runs
		}
		if ct.State != "running" {
			return nil, nil, fmt.Errorf("chaos: %s (%s) is %s; start the project first", ct.Service, ct.ID[:12], ct.State)
		}
		b := []byte(`{"RestartPolicy":{"Name":"no"}}`)
		if err := d.do(http.MethodPost, "/containers/"+ct.ID+"/update", bytes.NewReader(b), nil); err != nil {
			return nil, nil, err
		}
		n := &Node{Role: role, ID: ct.Hostname, Addrs: a, c: c, ctl: &containerCtl{d: d, id: ct.ID}}
		nw.ids[n.ID], nw.aliases[n.ID] = ct.ID, []string{ct.Service, ct.Hostname}
		c.all = append(c.all, n)
		switch role {
		case RoleMeta:
			c.Metas = append(c.Metas, n)
		case RoleData:
			c.Datas = append(c.Datas, n)
		default:
			c.Sessions = append(c.Sessions, n)
		}
	}
	if len(c.Metas) == 0 || len(c.Datas) == 0 || len(c.Sessions) == 0 {
		return nil, nil, fmt.Errorf("chaos: project %q has %d meta, %d data, %d session containers running", cfg.Project, len(c.Metas), len(c.Datas), len(c.Sessions))
	}
	c.cfg = ClusterConfig{Net: nw, Logf: logf, Meta: len(c.Metas), Data: len(c.Datas), Session: len(c.Sessions)}
	admin, err := tlsconf.Load(c.creds.TLS(identity.RoleAdmin, "admin"), cfg.Cluster)
	if err != nil {
		return nil, nil, err
	}
	c.httpc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: admin.Client(identity.AnyNode)}}
	if err := c.WaitReady(ctx, c.all, 2*time.Minute); err != nil {
		return nil, nil, err
	}
	if err := c.WaitSettled(ctx, 2*time.Minute); err != nil {
		return nil, nil, err
	}
	logf("attached to compose project %s: %d meta, %d data, %d session containers", cfg.Project, len(c.Metas), len(c.Datas), len(c.Sessions))
	return c, nw, nil
}

// heal leaves an attached cluster as it found it: every container
// connected, unpaused and running.
func (c *Cluster) heal() {
	if err := c.cfg.Net.Heal(); err != nil {
		c.cfg.Logf("heal: %v", err)
	}
	for _, n := range c.all {
		if n.Frozen() {
			_ = n.Thaw()
		}
		if !n.Running() {
			if err := n.Start(); err != nil {
				c.cfg.Logf("heal: start %s: %v", n.ID, err)
			}
		}
	}
}

// saveLogs writes every attached node's container log into dir as
// <node-id>.log, and sets its LogPath.
func (c *Cluster) saveLogs(dir string) {
	for _, n := range c.all {
		cc, ok := n.ctl.(*containerCtl)
		if !ok {
			continue
		}
		b, err := cc.d.logs(cc.id)
		if err != nil {
			c.cfg.Logf("logs of %s: %v", n.ID, err)
			continue
		}
		n.LogPath = filepath.Join(dir, n.ID+".log")
		_ = os.WriteFile(n.LogPath, b, 0o644)
	}
}

// logs returns a container's stdout and stderr, interleaved as written
// (the engine's multiplexed stream: an 8-byte header per frame).
func (d *docker) logs(id string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://docker/containers/"+id+"/logs?stdout=1&stderr=1", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("docker logs %s: %s", id[:12], resp.Status)
	}
	var out bytes.Buffer
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(resp.Body, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return out.Bytes(), nil
			}
			return out.Bytes(), err
		}
		if _, err := io.CopyN(&out, resp.Body, int64(binary.BigEndian.Uint32(hdr[4:]))); err != nil {
			return out.Bytes(), err
		}
	}
}
