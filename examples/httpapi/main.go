// Command httpapi uses the session HTTP/JSON API the way a program in any
// language would, with nothing but an HTTP client (here Go's standard
// library, no Strata package): it watches a service over Server-Sent
// Events, registers an instance with a TTL, renews it, sees it in a
// blocking query, deregisters it, sees it go, and exits:
//
//	cd examples && go run ./httpapi -credentials ../run/certs     # against make run
//	go run ./httpapi -url https://10.0.0.5:9605 -ca /etc/strata/ca.pem -token-file /etc/strata/orders.token
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	fs := flag.NewFlagSet("httpapi", flag.ExitOnError)
	base := fs.String("url", "https://127.0.0.1:9605", "a session's HTTP API (make run's session-0)")
	creds := fs.String("credentials", "run/certs", "credentials directory (registryctl certs init): its ca.pem and client/NAME.token, unless -ca and -token-file say otherwise")
	name := fs.String("name", "dev", "the client identity whose token to use from -credentials")
	ca := fs.String("ca", "", "PEM CA bundle that signs the session's certificate (default: -credentials/ca.pem)")
	tokenFile := fs.String("token-file", "", "file whose first line is the client bearer token (default: -credentials/client/NAME.token)")
	insecure := fs.Bool("insecure", false, "plaintext, no token, for a cluster started with --insecure")
	service := fs.String("service", "com.example.HTTPEcho", "service to register an instance of")
	addr := fs.String("addr", "127.0.0.1:8081", "the instance's address")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	_ = fs.Parse(os.Args[1:])

	api, err := newAPI(*base, *creds, *name, *ca, *tokenFile, *insecure)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpapi:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, api, *service, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "httpapi:", err)
		os.Exit(1)
	}
}

// api calls one session's HTTP API with a bearer token.
type api struct {
	base  string
	token string
	hc    *http.Client
}

func newAPI(base, creds, name, caFile, tokenFile string, insecure bool) (*api, error) {
	a := &api{base: strings.TrimSuffix(base, "/"), hc: &http.Client{}}
	if insecure {
		a.base = strings.Replace(a.base, "https://", "http://", 1)
		return a, nil
	}
	if caFile == "" {
		caFile = filepath.Join(creds, "ca.pem")
	}
	if tokenFile == "" {
		tokenFile = filepath.Join(creds, "client", name+".token")
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, err
	}
	a.token = strings.TrimSpace(strings.SplitN(string(tok), "\n", 2)[0])
	a.hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return a, nil
}

// call sends one request and decodes a JSON answer into out (nil: none);
// an answer other than want is an error with the API's message.
func (a *api) call(ctx context.Context, method, path string, body, out any, want ...int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if !slices.Contains(want, resp.StatusCode) {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return resp, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out != nil {
		return resp, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp, nil
}

// instance is one instance as the API lists it (the fields used here).
type instance struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
	State  string `json:"state"`
}

// instances is the API's list of a service's instances.
type instances struct {
	Instances []instance `json:"instances"`
}

func (l instances) has(addr string) bool {
	return slices.ContainsFunc(l.Instances, func(i instance) bool { return i.Addr == addr })
}

func run(ctx context.Context, a *api, service, addr string) error {
	// The watch first: its first event is the current list.
	events := make(chan instances, 16)
	watchErr := make(chan error, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() { watchErr <- a.watch(wctx, service, events) }()
	await := func(what string, ok func(instances) bool) error {
		for {
			select {
			case l := <-events:
				if ok(l) {
					fmt.Printf("watch: %s (%d instance(s))\n", what, len(l.Instances))
					return nil
				}
			case err := <-watchErr:
				return fmt.Errorf("watch ended before %s: %w", what, err)
			case <-ctx.Done():
				return fmt.Errorf("waiting until %s: %w", what, ctx.Err())
			}
		}
	}
	if err := await("connected", func(instances) bool { return true }); err != nil {
		return err
	}

	path := "/v1/services/" + service + "/instances/example-1"
	var reg struct {
		ExpiresAt string `json:"expires_at"`
	}
	if _, err := a.call(ctx, http.MethodPut, path, map[string]any{"addr": addr, "weight": 5, "metadata": map[string]string{"lang": "any"}, "ttl": "10s"}, &reg, 200, 201); err != nil {
		return err
	}
	fmt.Printf("registered %s of %s, lease until %s\n", addr, service, reg.ExpiresAt)
	if err := await("the instance is listed", func(l instances) bool { return l.has(addr) }); err != nil {
		return err
	}
	if _, err := a.call(ctx, http.MethodPut, path+"/heartbeat", nil, nil, 200); err != nil {
		return err
	}
	fmt.Println("heartbeat: lease renewed")

	// A blocking query: answers at once when the index is behind, with the
	// index to wait on next time.
	var l instances
	resp, err := a.call(ctx, http.MethodGet, "/v1/services/"+service+"/instances?index=0&wait=5s", nil, &l, 200)
	if err != nil {
		return err
	}
	fmt.Printf("blocking query: %d instance(s) at index %s\n", len(l.Instances), resp.Header.Get("X-Strata-Index"))

	if _, err := a.call(ctx, http.MethodDelete, path, nil, nil, 204); err != nil {
		return err
	}
	fmt.Println("deregistered")
	if err := await("the instance is gone", func(l instances) bool { return !l.has(addr) }); err != nil {
		return err
	}
	fmt.Println("done")
	return nil
}

// watch reads the service's event stream, sending each list to out, until
// ctx ends or the stream does.
func (a *api) watch(ctx context.Context, service string, out chan<- instances) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/v1/services/"+service+"/watch", nil)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("watch: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue // id:, event:, or a heartbeat comment
		}
		var l instances
		if err := json.Unmarshal([]byte(data), &l); err != nil {
			return fmt.Errorf("watch: an event that is not a list: %w", err)
		}
		select {
		case out <- l:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return errors.New("the event stream ended")
}
