// Command etcdlat measures put-to-watch latency against a running etcd,
// the counterpart of bench/pushlat for Strata: one writer puts a new value
// of a key each round, and every watcher (spread over many client
// connections, each its own clientv3.Client) times the arrival of that
// value. Timing starts before the Put, so its round trip (and the commit
// it waits for) is included, as Strata's publish includes its ack.
//
//	go run . --endpoints 127.0.0.1:2379 --conns 100 --per-conn 10 --rounds 200
//
// With --cacert, --cert and --key-file it talks TLS with a client
// certificate, as Strata's clients do by default.
//
// bench/etcdlat.sh starts a single-node etcd, runs it, and stops etcd.
// This is a module of its own so that Strata's go.mod does not gain the
// etcd client's dependencies.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdlat:", err)
		os.Exit(1)
	}
}

func run() error {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "etcd client endpoints, comma separated")
	conns := flag.Int("conns", 100, "watcher client connections (one clientv3.Client each)")
	perConn := flag.Int("per-conn", 10, "watches of the key per connection")
	rounds := flag.Int("rounds", 200, "timed updates (after one untimed warm-up)")
	timeout := flag.Duration("timeout", 10*time.Second, "bound on one round")
	key := flag.String("key", "bench/etcdlat/"+strconv.FormatInt(time.Now().UnixNano(), 36), "key to put and watch")
	caFile := flag.String("cacert", "", "CA certificate that signed etcd's: with --cert and --key, talk TLS with a client certificate")
	certFile := flag.String("cert", "", "client certificate (PEM)")
	keyFile := flag.String("key-file", "", "client certificate's key (PEM)")
	flag.Parse()
	eps := strings.Split(*endpoints, ",")
	if *conns < 1 || *perConn < 1 || *rounds < 1 || len(eps) == 0 || eps[0] == "" {
		return errors.New("conns, per-conn and rounds must be positive, and at least one endpoint given")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*rounds+10)**timeout)
	defer cancel()

	var tc *tls.Config
	if *caFile != "" {
		var err error
		if tc, err = clientTLS(*caFile, *certFile, *keyFile); err != nil {
			return err
		}
	}
	newClient := func() (*clientv3.Client, error) {
		return clientv3.New(clientv3.Config{
			Endpoints:   eps,
			DialTimeout: *timeout,
			Context:     ctx,
			TLS:         tc,
		})
	}
	pub, err := newClient()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pub.Close()

	type watcher struct {
		wc  clientv3.WatchChan
		got chan time.Time // arrival of the value a round waits for
	}
	var ws []*watcher
	var mu sync.Mutex
	want := ""
	fmt.Printf("connecting %d clients with %d watches each to %s\n", *conns, *perConn, *endpoints)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	for range *conns {
		c, err := newClient()
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer c.Close()
		for range *perConn {
			wc := c.Watch(rctx, *key, clientv3.WithCreatedNotify())
			// Wait until the server has registered the watch, so the
			// first round cannot be missed.
			select {
			case wr, ok := <-wc:
				if !ok {
					return errors.New("watch: channel closed before it was created")
				}
				if err := wr.Err(); err != nil {
					return fmt.Errorf("watch: %w", err)
				}
				if !wr.Created {
					return errors.New("watch: first response is not the creation notice")
				}
			case <-time.After(*timeout):
				return fmt.Errorf("watch: not created within %v", *timeout)
			}
			ws = append(ws, &watcher{wc: wc, got: make(chan time.Time, 1)})
		}
	}
	var wg sync.WaitGroup
	watchErr := make(chan error, 1)
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wr := range w.wc {
				at := time.Now()
				if err := wr.Err(); err != nil {
					if rctx.Err() == nil {
						select {
						case watchErr <- err:
						default:
						}
					}
					return
				}
				mu.Lock()
				v := want
				mu.Unlock()
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypePut && string(ev.Kv.Value) == v {
						w.got <- at
					}
				}
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	lat := make([]time.Duration, 0, *rounds*len(ws))
	for r := -1; r < *rounds; r++ {
		v := "v" + strconv.Itoa(r)
		mu.Lock()
		want = v
		mu.Unlock()
		start := time.Now()
		if _, err := pub.Put(ctx, *key, v); err != nil {
			return fmt.Errorf("put: %w", err)
		}
		deadline := time.After(*timeout)
		for _, w := range ws {
			select {
			case at := <-w.got:
				if r >= 0 {
					lat = append(lat, at.Sub(start))
				}
			case err := <-watchErr:
				return fmt.Errorf("round %d: watch: %w", r, err)
			case <-deadline:
				return fmt.Errorf("round %d: not every watcher got %q within %v", r, v, *timeout)
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

// clientTLS is mutual TLS against an etcd whose certificate ca signed,
// with the client certificate in certFile and keyFile.
func clientTLS(ca, certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", ca)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
