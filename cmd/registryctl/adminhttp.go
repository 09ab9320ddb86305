package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// adminHTTP is one command's client of the nodes' admin HTTP servers. It
// uses the credentials the command's meta calls use, loaded once.
type adminHTTP struct {
	client *http.Client
	// scheme is https exactly when there are credentials: a node with TLS
	// serves admin HTTP over TLS.
	scheme string
	// token is sent as a bearer token; empty when none is given or when
	// the admin certificate authenticates anyway.
	token   string
	timeout time.Duration
}

// newAdminHTTP returns a client for the nodes' admin HTTP servers acting
// with creds (nil: plaintext). With TLS it checks that each server is a
// node of the cluster and presents creds' certificate; --admin-token is
// then sent only if that certificate is not an admin's, which nodes accept
// on its own (a token that need not travel does not). Keep-alives are off:
// each node is asked once, and an idle connection would outlive the
// command. Close releases the connections.
func (g *globals) newAdminHTTP(creds *tlsconf.Creds) *adminHTTP {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment}
	a := &adminHTTP{client: &http.Client{Transport: tr}, scheme: "http", token: g.adminToken, timeout: g.timeout}
	if creds != nil {
		tr.TLSClientConfig = creds.Client(identity.AnyNode)
		a.scheme = "https"
		if creds.Self().Role == identity.RoleAdmin {
			a.token = ""
		}
	}
	return a
}

// Close closes the client's connections.
func (a *adminHTTP) Close() { a.client.CloseIdleConnections() }

// nodeAnswer is one node's answer to a GET on its admin HTTP server.
type nodeAnswer struct {
	code int
	body []byte // at most 64 KiB
	// err says why there is no answer: errNoAddress, or the request's
	// error (refused, timed out, a failed handshake).
	err error
}

// errNoAddress is the answer of a node meta knows no HTTP address for: a
// meta peer missing from the gossip pool (down, most likely) has none
// announced.
var errNoAddress = errors.New("no HTTP address known (not in the gossip pool)")

// getAll GETs path from every target's admin HTTP server at once, each
// bounded by the command's --timeout, and returns the answers in the
// targets' order. A target without an address is not asked.
func (a *adminHTTP) getAll(ctx context.Context, targets []healthRow, path string) []nodeAnswer {
	out := make([]nodeAnswer, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		if tg.Address == "" {
			out[i].err = errNoAddress
			continue
		}
		wg.Go(func() { out[i] = a.get(ctx, tg.Address, path) })
	}
	wg.Wait()
	return out
}

// get GETs path from the admin HTTP server at addr.
func (a *adminHTTP) get(ctx context.Context, addr, path string) nodeAnswer {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.scheme+"://"+addr+path, nil)
	if err != nil {
		return nodeAnswer{err: err}
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nodeAnswer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return nodeAnswer{code: resp.StatusCode, body: body, err: err}
}
