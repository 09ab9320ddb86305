package push

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	registryv1 "github.com/strata-registry/strata/pkg/proto/registry/v1"
)

// memFetcher returns the datum stored in it: the cheapest possible Fetcher,
// so the benchmarks measure the engine.
type memFetcher struct {
	d atomic.Pointer[registryv1.Datum]
}

func (f *memFetcher) Fetch(context.Context, string) (*registryv1.Datum, error) {
	return f.d.Load(), nil
}

func datumOf(key string, version uint64, pubs int) *registryv1.Datum {
	d := &registryv1.Datum{DataInfoId: key, Version: version}
	for i := range pubs {
		d.Publishers = append(d.Publishers, &registryv1.Publisher{
			RegisterId: fmt.Sprintf("pub-%d", i), DataInfoId: key, ClientVersion: version, Zone: "a",
			Values: [][]byte{[]byte(strings.Repeat("x", 100))},
		})
	}
	return d
}

// benchConn counts deliveries and signals when a round's target is reached.
type benchConn struct {
	id    string
	n     *atomic.Int64
	until *atomic.Int64
	done  chan struct{}
}

func (c *benchConn) ID() string   { return c.id }
func (c *benchConn) Zone() string { return "a" }
func (c *benchConn) Close(string) {}
func (c *benchConn) Send(p *Push) error {
	if c.n.Add(int64(len(p.SubscriberIDs))) == c.until.Load() {
		select {
		case c.done <- struct{}{}:
		default:
			return errors.New("bench: signal not consumed")
		}
	}
	return nil
}

func runEngine(b *testing.B, f Fetcher) *Engine {
	b.Helper()
	e, err := New(DefaultConfig(), Deps{Fetcher: f})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	<-e.Ready()
	return e
}

// benchFanOut measures Notify -> fetch -> push to every subscriber -> ack,
// per delivery, for one key with subs subscribers over conns connections.
func benchFanOut(b *testing.B, conns, subs int) {
	const key = "svc#@#DEFAULT_INSTANCE_ID#@#DEFAULT_GROUP"
	f := &memFetcher{}
	base := datumOf(key, 1, 10)
	f.d.Store(base)
	e := runEngine(b, f)
	var n, until atomic.Int64
	done := make(chan struct{}, 1)
	type subRef struct{ conn, sub string }
	var refs []subRef
	until.Store(int64(subs))
	for i := range subs {
		c := &benchConn{id: fmt.Sprint("conn-", i%conns), n: &n, until: &until, done: done}
		id := fmt.Sprint("sub-", i)
		e.Subscribe(c, id, key, ScopeGlobal, 0)
		refs = append(refs, subRef{c.id, id})
	}
	<-done
	for _, r := range refs {
		e.Ack(r.conn, r.sub, 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		v := uint64(i + 2)
		f.d.Store(&registryv1.Datum{DataInfoId: key, Version: v, Publishers: base.Publishers})
		n.Store(0)
		e.Notify(key, v)
		<-done
		for _, r := range refs {
			e.Ack(r.conn, r.sub, v)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*subs), "ns/delivery")
}

// BenchmarkEngine_NotifyToPush is one change to one subscriber: Notify,
// fetch, push, ack.
func BenchmarkEngine_NotifyToPush(b *testing.B) { benchFanOut(b, 1, 1) }

// BenchmarkEngine_FanOut1000 is one change to 1,000 subscribers of one key
// over 100 connections.
func BenchmarkEngine_FanOut1000(b *testing.B) { benchFanOut(b, 100, 1000) }

// BenchmarkEngine_IdleConnMemory reports the heap held per idle connection
// with 10 acked subscriptions (over 1,000 keys), against the session's
// budget of 20 KiB per idle client connection.
func BenchmarkEngine_IdleConnMemory(b *testing.B) {
	const conns, perConn, keys = 1000, 10, 1000
	for range b.N {
		f := &memFetcher{}
		f.d.Store(&registryv1.Datum{Version: 1})
		e, err := New(DefaultConfig(), Deps{Fetcher: f})
		if err != nil {
			b.Fatal(err)
		}
		// Known datums, subscriptions already current: no fetch, no push.
		for k := range keys {
			key := fmt.Sprint("key-", k)
			e.keys[key] = &keyState{key: key, datum: f.d.Load(), fetched: 1}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var n, until atomic.Int64
		until.Store(-1)
		for c := range conns {
			bc := &benchConn{id: fmt.Sprint("conn-", c), n: &n, until: &until}
			for s := range perConn {
				e.Subscribe(bc, fmt.Sprint("sub-", s), fmt.Sprint("key-", (c*perConn+s)%keys), ScopeZone, 1)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/conns, "B/idle-conn")
		runtime.KeepAlive(e)
	}
}
