package session_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client/identity"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// TestSession_PipelinedRegistrationsPastTheRate_PushAcksStillTaken: a
// subscriber that pipelines registrations well past its connection's rate
// (ten at once at ten a second, burst one: the last waits about 0.9 s for
// its turn) still has its push acks taken as they arrive. Meanwhile the
// list it subscribes to changes, in pushes of 256 KiB; had its acks waited
// behind the registrations, four of them would pass the session's
// in-flight cap (1 MiB) and cut it off as stalled. It stays connected,
// every registration is served, and it sees the last change.
func TestSession_PipelinedRegistrationsPastTheRate_PushAcksStillTaken(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.RegisterRate, cfg.RegisterBurst = 10, 1
	}})
	c.WaitDataSettled(t)
	n := c.Session(0)
	pubc := c.Connect(t, n, "publisher", "z1", true)
	sub := c.Connect(t, n, "pipeliner", "z1", true)
	acked(t)(sub.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	nextPush(t, sub, key) // the empty list

	const pipelined = 10
	var wg sync.WaitGroup
	for i := range pipelined {
		wg.Go(func() {
			a, err := sub.Publish("com.example.Other", fmt.Sprintf("r-%d", i), 1, "x")
			if err != nil || a.GetCode() != 0 {
				t.Errorf("pipelined registration %d: %v %v", i, a, err)
			}
		})
	}
	served := make(chan struct{})
	go func() { wg.Wait(); close(served) }()
	big := strings.Repeat("x", 256<<10)
	last := ""
	for v := uint64(1); ; v++ {
		last = big + strconv.FormatUint(v, 10)
		acked(t)(pubc.Publish(svc, "p", v, last))
		select {
		case <-served:
		default:
			continue
		}
		break
	}
	if t.Failed() {
		t.FailNow()
	}
	drain(t, sub, func(*registryv1.Push) error { return nil }, func(p *registryv1.Push) bool {
		return len(p.GetValues()) == 1 && string(p.GetValues()[0].GetData()) == last
	})
	acked(t)(sub.Do(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_Heartbeat{Heartbeat: &registryv1.Heartbeat{}}}))
	if got := metricValue(t, n, "strata_push_failed_total"); got > 0 {
		t.Fatalf("%v pushes failed and cost their client its connection", got)
	}
}

// TestSession_IdentityQuota_ConcurrentConnections_NeverOvershoot: eight
// connections of one identity with a quota of 10 register 64 publishers
// and subscribers at once; exactly 10 are accepted, the rest refused with
// ResourceExhausted. Removing one makes room for exactly one more.
func TestSession_IdentityQuota_ConcurrentConnections_NeverOvershoot(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	n := c.Session(0)
	racer := everything("racer")
	racer.MaxRegistrations = 10
	c.SetIdentities(t, racer)
	const conns, each = 8, 8
	clients := make([]*testcluster.Client, conns)
	for i := range clients {
		clients[i] = c.ConnectAs(t, n, "racer", fmt.Sprintf("racer-%d", i), "", true)
	}
	type reg struct {
		cl       *testcluster.Client
		dataID   string
		register string
		pub      bool
	}
	var (
		mu       sync.Mutex
		accepted []reg
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for i, cl := range clients {
		for j := range each {
			r := reg{cl: cl, dataID: fmt.Sprintf("race.%d.%d", i, j), register: fmt.Sprintf("r-%d", j), pub: j%2 == 0}
			wg.Go(func() {
				<-start
				var a *registryv1.Ack
				var err error
				if r.pub {
					a, err = r.cl.Publish(r.dataID, r.register, 1, "v")
				} else {
					a, err = r.cl.Subscribe(r.dataID, r.register, registryv1.Scope_SCOPE_GLOBAL)
				}
				switch {
				case err != nil:
					t.Error(err)
				case a.GetCode() == 0:
					mu.Lock()
					accepted = append(accepted, r)
					mu.Unlock()
				case codes.Code(a.GetCode()) != codes.ResourceExhausted:
					t.Errorf("%s: %v %q, want accepted or ResourceExhausted", r.dataID, codes.Code(a.GetCode()), a.GetMessage())
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if len(accepted) != 10 {
		t.Fatalf("%d of %d concurrent registrations accepted with a quota of 10", len(accepted), conns*each)
	}
	if got := n.Server().Publishers(); got > 10 {
		t.Fatalf("the session holds %d publishers with a quota of 10", got)
	}
	// Give one back: one more fits, and then no more.
	r := accepted[0]
	if r.pub {
		acked(t)(r.cl.Unpublish(r.dataID, r.register, 2))
	} else {
		acked(t)(r.cl.Do(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_UnregisterSubscriber{UnregisterSubscriber: &registryv1.UnregisterSubscriber{RegisterId: r.register}}}))
	}
	acked(t)(clients[1].Publish("race.again", "r", 1, "v"))
	a, err := clients[2].Subscribe("race.more", "s", registryv1.Scope_SCOPE_GLOBAL)
	refusedWith(t, a, err, codes.ResourceExhausted)
}

// TestSession_IdentityStreamCap_RefusesTheOneTooMany: an identity with
// IdentityMaxStreams streams open on a session has its next stream refused
// (ResourceExhausted, before its welcome); another identity connects
// meanwhile, and the identity connects again once one of its streams ends.
func TestSession_IdentityStreamCap_RefusesTheOneTooMany(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.IdentityMaxStreams = 2
	}})
	c.WaitDataSettled(t)
	n := c.Session(0)
	c.SetIdentities(t, everything("many"), everything("other"))
	first := c.ConnectAs(t, n, "many", "m-1", "", true)
	c.ConnectAs(t, n, "many", "m-2", "", true)
	conn := c.DialAs(t, n.Server().GRPCAddr(), identity.RoleClient, "many")
	defer conn.Close()
	hello := func() error { return testcluster.TryHello(conn, "m-3") }
	err := hello()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "at most 2 allowed") {
		t.Fatalf("third stream of the identity: %v, want ResourceExhausted naming the cap", err)
	}
	other := c.ConnectAs(t, n, "other", "o-1", "", true)
	acked(t)(other.Subscribe(svc, "s", registryv1.Scope_SCOPE_GLOBAL))
	first.Close()
	testcluster.Eventually(t, testcluster.DefaultWait, hello)
}

// TestSession_HalfClose_AppliesWhatWasSentBefore: a client that sends
// registrations past its rate and then half-closes its stream has every
// one of them applied (they wait in its inbox, not on the wire) before the
// session ends the stream.
func TestSession_HalfClose_AppliesWhatWasSentBefore(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.RegisterRate, cfg.RegisterBurst = 10, 1
		// Its publications outlive the stream for the test to count them.
		cfg.DisconnectGrace = time.Minute
	}})
	c.WaitDataSettled(t)
	n := c.Session(0)
	cl := c.Connect(t, n, "half-closer", "z1", true)
	const sent = 8 // within what may wait: about a second's worth at 10 a second
	for i := range sent {
		rp := &registryv1.RegisterPublisher{RegisterId: fmt.Sprintf("r-%d", i), DataId: svc, Version: 1, Values: [][]byte{[]byte("v")}}
		if err := cl.Post(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: rp}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.CloseSend(); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if got := gauge(t, n, "strata_session_publishers"); got != sent {
			return fmt.Errorf("session holds %v publishers, want all %d sent before the half-close", got, sent)
		}
		return nil
	})
}

// TestSession_HalfClose_AppliedAckSentBeforeTheStreamEnds: a client that
// registers at ACK_LEVEL_APPLIED and half-closes at once still gets the
// ack, once the slot leader has the publication: the session ends the
// stream only after the acks it owes.
func TestSession_HalfClose_AppliedAckSentBeforeTheStreamEnds(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	cl := c.Connect(t, c.Session(0), "last-word", "z1", true)
	a, err := cl.DoLast(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: &registryv1.RegisterPublisher{
		RegisterId: "r-last", DataId: svc, Version: 1, Values: [][]byte{[]byte("10.0.0.9:80")}, Ack: registryv1.AckLevel_ACK_LEVEL_APPLIED}}})
	if err != nil || a.GetCode() != 0 {
		t.Fatalf("applied-level registration sent just before the half-close: ack %v, %v; want an OK ack", a, err)
	}
	d, err := readAt(t, c, c.RouteOf(t, key).Leader, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.GetPublishers()) != 1 {
		t.Fatalf("after the applied ack the leader holds %d publishers, want 1", len(d.GetPublishers()))
	}
}

// TestSession_AppliedAcks_AtMost4096WaitPerConnection: while its slot
// leader does not answer, a connection's ACK_LEVEL_APPLIED registrations
// wait for it, up to 4,096; the next is refused (ResourceExhausted,
// counted as applied_waiting) and stores nothing. Once the leader answers
// they are all acked, and their places are free again.
func TestSession_AppliedAcks_AtMost4096WaitPerConnection(t *testing.T) {
	c, n := frozenLeaderCluster(t)
	cl := c.Connect(t, n, "patient", "z1", false)
	applied := func(reg string) *registryv1.ClientFrame {
		return &registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: &registryv1.RegisterPublisher{
			RegisterId: reg, DataId: svc, Version: 1, Values: [][]byte{[]byte("v")}, Ack: registryv1.AckLevel_ACK_LEVEL_APPLIED}}}
	}
	leader := c.RouteOf(t, key).Leader
	leader.Front.Pause()
	const limit = 4096
	for i := range limit {
		if err := cl.Post(applied(fmt.Sprintf("r-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Every one of them is held, so all wait for the leader.
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		if got := gauge(t, n, "strata_session_publishers"); got != limit {
			return fmt.Errorf("session holds %v publishers, want %d", got, limit)
		}
		return nil
	})
	a, err := cl.Do(applied("r-one-more"))
	if err != nil || codes.Code(a.GetCode()) != codes.ResourceExhausted || !strings.Contains(a.GetMessage(), "ACK_LEVEL_APPLIED") {
		t.Fatalf("registration %d at ACK_LEVEL_APPLIED: %v, %v; want ResourceExhausted naming the applied acks waiting", limit+1, a, err)
	}
	if got := gauge(t, n, "strata_session_publishers"); got != limit {
		t.Fatalf("the refused registration changed the session: %v publishers, want %d", got, limit)
	}
	if got := counter(t, n, `strata_session_refused_total{reason="applied_waiting"}`); got != 1 {
		t.Fatalf("refusals for applied acks waiting: %v, want 1", got)
	}
	leader.Front.Heal()
	testcluster.Eventually(t, time.Minute, func() error {
		a, err := cl.Do(applied("r-after"))
		if err != nil || a.GetCode() != 0 {
			return fmt.Errorf("after the leader came back: %v, %v; want the registration acked", a, err)
		}
		return nil
	})
}

// TestSession_AckLevel_UnknownRefused_AppliedAckedOnceLanded: a frame with
// an ack level the session does not know is refused (InvalidArgument) and
// stores nothing; one at ACK_LEVEL_APPLIED is acked, and by then its slot
// leader holds it.
func TestSession_AckLevel_UnknownRefused_AppliedAckedOnceLanded(t *testing.T) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	cl := c.Connect(t, c.Session(0), "acker", "z1", true)
	frame := func(reg string, level registryv1.AckLevel) *registryv1.ClientFrame {
		return &registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: &registryv1.RegisterPublisher{
			RegisterId: reg, DataId: svc, Version: 1, Values: [][]byte{[]byte("10.0.0.9:80")}, Ack: level}}}
	}
	a, err := cl.Do(frame("r-bad", registryv1.AckLevel(9)))
	if err != nil || codes.Code(a.GetCode()) != codes.InvalidArgument || !strings.Contains(a.GetMessage(), "ack level") {
		t.Fatalf("unknown ack level: %v %v, want InvalidArgument naming the ack level", a, err)
	}
	acked(t)(cl.Do(frame("r-ok", registryv1.AckLevel_ACK_LEVEL_APPLIED)))
	d, err := readAt(t, c, c.RouteOf(t, key).Leader, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.GetPublishers()) != 1 || !strings.HasSuffix(d.GetPublishers()[0].GetRegisterId(), "r-ok") {
		t.Fatalf("after the applied ack the leader holds %v (the refused one must not be there)", d.GetPublishers())
	}
}

// TestForwarder_OneCallPerLeader_CarriesManySlots: writes queued for many
// slots of one leader go to it in a few calls, each carrying several
// slots' batches (PublishSlots), not in a call per slot; every one lands.
// A leader that answers PublishSlots as unimplemented (a data node older
// than the session) gets the same writes one Publish per slot, and after
// its first refusals no more PublishSlots calls.
func TestForwarder_OneCallPerLeader_CarriesManySlots(t *testing.T) {
	older := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == registryv1.DataService_PublishSlots_FullMethodName {
			return nil, status.Errorf(codes.Unimplemented, "unknown method PublishSlots for service %s", registryv1.DataService_ServiceDesc.ServiceName)
		}
		return handler(ctx, req)
	}
	for _, tc := range []struct {
		name  string
		opts  []grpc.ServerOption
		older bool
	}{{name: "PublishSlots"}, {name: "an older leader: Publish per slot", opts: []grpc.ServerOption{grpc.ChainUnaryInterceptor(older)}, older: true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, n := frozenLeaderCluster(t, tc.opts...)
			cl := c.Connect(t, n, "many-slots", "z1", true)
			leader := c.Data(0)
			calls := func() (publish, publishSlots float64) {
				const handled = "strata_grpc_server_handled_total{method=%q}"
				return testcluster.Metric(t, leader.Registry, fmt.Sprintf(handled, registryv1.DataService_Publish_FullMethodName)),
					testcluster.Metric(t, leader.Registry, fmt.Sprintf(handled, registryv1.DataService_PublishSlots_FullMethodName))
			}
			// Held at a frozen leader's door, the writes queue up; then it thaws.
			leader.Front.Pause()
			const services = 200
			for i := range services {
				rp := &registryv1.RegisterPublisher{RegisterId: "p", DataId: fmt.Sprintf("com.example.Many%d", i), Version: 1, Values: [][]byte{[]byte("v")}}
				if err := cl.Post(&registryv1.ClientFrame{Body: &registryv1.ClientFrame_RegisterPublisher{RegisterPublisher: rp}}); err != nil {
					t.Fatal(err)
				}
			}
			testcluster.Eventually(t, testcluster.DefaultWait, func() error {
				if got := gauge(t, n, "strata_session_publishers"); got != services {
					return fmt.Errorf("session holds %v publishers, want %d", got, services)
				}
				return nil
			})
			p0, s0 := calls()
			leader.Front.Heal()
			testcluster.Eventually(t, time.Minute, func() error {
				if pubs := testcluster.Metric(t, leader.Registry, "strata_data_publishers"); pubs != services {
					return fmt.Errorf("the leader holds %v publishers, want %d", pubs, services)
				}
				return nil
			})
			p1, s1 := calls()
			switch {
			case !tc.older && (s1-s0 < 1 || (p1-p0)+(s1-s0) > services/4):
				t.Fatalf("%d writes over many slots took %v Publish and %v PublishSlots calls; want a few calls, several slots each", services, p1-p0, s1-s0)
			case tc.older && s1-s0 > 8:
				// At most the calls in flight when the first refusal came.
				t.Fatalf("an older leader was sent %v PublishSlots calls; want it remembered after the first refusals", s1-s0)
			case tc.older && p1-p0 < 2:
				t.Fatalf("an older leader got %v Publish calls for writes over many slots", p1-p0)
			}
		})
	}
}

// frozenLeaderCluster starts 1 meta, 1 data node behind a fault proxy
// (its Front, to freeze; dataOpts added to its gRPC server), and a
// session whose rates never hold a test's burst of registrations back.
func frozenLeaderCluster(t *testing.T, dataOpts ...grpc.ServerOption) (*testcluster.Cluster, *testcluster.SessionNode) {
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, DataFronts: true, SessionConfig: func(_ int, cfg *session.Config) {
		cfg.RegisterRate, cfg.RegisterBurst = 1e6, 1e6
		cfg.IdentityRegisterRate = 1e6
	}, DataServerOptions: func(int) []grpc.ServerOption { return dataOpts }})
	n := c.AddSession(t)
	c.WaitDataSettled(t)
	return c, n
}
