// Command pushlat measures publish-to-push latency against a running
// cluster of real processes (make run, or any cluster): one publisher
// updates a key, and every subscriber (spread over many client
// connections and the given sessions) times the arrival of each value. It
// is the out-of-process counterpart of the in-process benchmarks in
// internal/session: here the servers have their own processes and
// garbage collectors, as deployed.
//
//	go run ./bench/pushlat --sessions 127.0.0.1:9603,127.0.0.1:9703 --conns 100 --per-conn 10 --rounds 200
//
// bench/pushlat.sh starts a local cluster, runs it, and stops the cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-registry/strata/pkg/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pushlat:", err)
		os.Exit(1)
	}
}

func run() error {
	sessions := flag.String("sessions", "127.0.0.1:9603,127.0.0.1:9703", "session client addresses, comma separated; connections are spread over them")
	conns := flag.Int("conns", 100, "subscriber client connections")
	perConn := flag.Int("per-conn", 10, "subscriptions of the key per connection")
	rounds := flag.Int("rounds", 200, "timed updates (after one untimed warm-up)")
	timeout := flag.Duration("timeout", 10*time.Second, "bound on one round")
	key := flag.String("key", "bench.pushlat."+strconv.FormatInt(time.Now().UnixNano(), 36), "data ID to publish and subscribe")
	creds := flag.String("credentials", "", "credentials directory (registryctl certs init) to act as its client --client-name; empty: plaintext")
	clientName := flag.String("client-name", "dev", "client identity in --credentials")
	cluster := flag.String("cluster", "", "cluster name the certificates carry (empty: the SDK's default, strata)")
	cpuProfile := flag.String("cpu-profile", "", "write a CPU profile of this process (the clients) over the timed rounds to this file")
	flag.Parse()
	var opts []client.Option
	if *creds != "" {
		cc := client.CredentialsDir(*creds, *clientName)
		cc.Cluster = *cluster
		opts = append(opts, client.WithCredentials(cc))
	}
	addrs := strings.Split(*sessions, ",")
	if *conns < 1 || *perConn < 1 || *rounds < 1 || len(addrs) == 0 {
		return errors.New("conns, per-conn and rounds must be positive, and at least one session given")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*rounds+10)**timeout)
	defer cancel()

	pub, err := client.New(ctx, append(opts, client.WithSessions(addrs[0]))...)
	if err != nil {
		return err
	}
	defer pub.Close()
	type watcher struct {
		s   *client.Subscription
		got chan time.Time // arrival of the value a round waits for
	}
	var ws []*watcher
	var mu sync.Mutex
	want := ""
	fmt.Printf("connecting %d clients with %d subscriptions each to %s\n", *conns, *perConn, *sessions)
	for i := range *conns {
		c, err := client.New(ctx, append(opts, client.WithSessions(addrs[(i+1)%len(addrs)]))...) // conn 0 on another session than the publisher's
		if err != nil {
			return err
		}
		defer c.Close()
		for range *perConn {
			s, err := c.Subscribe(ctx, *key)
			if err != nil {
				return fmt.Errorf("subscribe: %w", err)
			}
			ws = append(ws, &watcher{s: s, got: make(chan time.Time, 1)})
		}
	}
	var wg sync.WaitGroup
	rctx, stop := context.WithCancel(ctx)
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				snap, err := w.s.Next(rctx)
				if err != nil {
					return
				}
				at := time.Now()
				mu.Lock()
				match := len(snap.Values) == 1 && string(snap.Values[0].Data) == want
				mu.Unlock()
				if match {
					w.got <- at
				}
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var p *client.Publication
	lat := make([]time.Duration, 0, *rounds*len(ws))
	for r := -1; r < *rounds; r++ {
		v := "v" + strconv.Itoa(r)
		mu.Lock()
		want = v
		mu.Unlock()
		start := time.Now()
		if p == nil {
			if p, err = pub.Publish(ctx, *key, []byte(v)); err != nil {
				return err
			}
		} else if err := p.Update(ctx, []byte(v)); err != nil {
			return err
		}
		deadline := time.After(*timeout)
		for _, w := range ws {
			select {
			case at := <-w.got:
				if r >= 0 {
					lat = append(lat, at.Sub(start))
				}
			case <-deadline:
				return fmt.Errorf("round %d: not every subscriber got %q within %v", r, v, *timeout)
			}
		}
		if r >= 0 && (r+1)%50 == 0 {
			fmt.Printf("  %d/%d rounds\n", r+1, *rounds)
		}
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))] }
	fmt.Printf("deliveries %d (%d subscribers x %d rounds): p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
		len(lat), len(ws), *rounds, ms(q(0.5)), ms(q(0.9)), ms(q(0.99)), ms(lat[len(lat)-1]))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
