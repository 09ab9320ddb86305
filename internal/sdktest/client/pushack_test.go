package client_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// pushFrames counts, in a stream interceptor, the frames with pushes a
// client receives and the frames of push acks it sends.
type pushFrames struct{ pushes, acks atomic.Int64 }

func (p *pushFrames) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &countedStream{ClientStream: s, p: p}, nil
}

type countedStream struct {
	grpc.ClientStream
	p *pushFrames
}

func (s *countedStream) SendMsg(m any) error {
	if f, ok := m.(*registryv1.ClientFrame); ok && (f.GetPushAck() != nil || f.GetPushAcks() != nil) {
		s.p.acks.Add(1)
	}
	return s.ClientStream.SendMsg(m)
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if f, ok := m.(*registryv1.ServerFrame); ok && err == nil && (f.GetPush() != nil || f.GetPushBatch() != nil) {
		s.p.pushes.Add(1)
	}
	return err
}

// TestClient_PushAcks_HeldForTheSessionsDelay_SentTogether: a session that
// allows it (push.Config.AckDelay, told in the welcome) gets the acks of
// pushes that arrive close together in fewer frames than the pushes came
// in (the ack of a newer version replacing the held one), and still every
// push is acked and none is sent twice. A session
// that asks for an ack per push (delay 0, as an older session, which
// names no delay) gets one ack frame per push frame.
func TestClient_PushAcks_HeldForTheSessionsDelay_SentTogether(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"held 20ms", 20 * time.Millisecond}, {"an ack per push", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1,
				SessionConfig: func(_ int, cfg *session.Config) { cfg.Push.AckDelay = tc.delay }})
			c.WaitDataSettled(t)
			ctx := sdktest.Ctx(t)
			frames := &pushFrames{}
			sub := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 1)...),
				client.WithDialOptions(grpc.WithChainStreamInterceptor(frames.intercept)))
			pub := sdktest.New(t, c, client.WithSessions(sessionAddrs(c, 1)...))

			key := "com.example.acked"
			s, err := sub.Subscribe(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			p, err := pub.Publish(ctx, key, []byte("v0"))
			if err != nil {
				t.Fatal(err)
			}
			nextUntil(t, s, nil, holds("v0"))
			sess := c.Session(0).Registry
			testcluster.Eventually(t, testcluster.DefaultWait, func() error {
				if u := testcluster.Metric(t, sess, "strata_push_unacked"); u != 0 {
					return fmt.Errorf("%v subscribers unacked before the updates", u)
				}
				return nil
			})
			// One update after the other: each change is pushed in a
			// frame of its own, a millisecond or so after the last.
			pushes0, acks0 := frames.pushes.Load(), frames.acks.Load()
			const n = 30
			for i := 1; i <= n; i++ {
				if err := p.Update(ctx, fmt.Appendf(nil, "v%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			nextUntil(t, s, nil, holds(fmt.Sprintf("v%d", n)))
			testcluster.Eventually(t, testcluster.DefaultWait, func() error {
				if u := testcluster.Metric(t, sess, "strata_push_unacked"); u != 0 {
					return fmt.Errorf("%v subscribers unacked", u)
				}
				return nil
			})
			if r := testcluster.Metric(t, sess, "strata_push_retried_total"); r != 0 {
				t.Errorf("%v pushes sent again: a held ack came too late", r)
			}
			pushes, acks := frames.pushes.Load()-pushes0, frames.acks.Load()-acks0
			t.Logf("%d push frames, %d ack frames", pushes, acks)
			switch {
			case tc.delay == 0 && acks != pushes:
				t.Errorf("%d ack frames for %d push frames, want one each", acks, pushes)
			case tc.delay > 0 && acks >= pushes:
				t.Errorf("%d ack frames for %d push frames, want fewer: the acks were not held", acks, pushes)
			}
		})
	}
}
