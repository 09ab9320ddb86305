package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// HealthCommand returns the "healthcheck" subcommand a server binary
// carries for container health checks (a scratch image has no curl). It
// GETs http://<--http-addr>/readyz and succeeds only on 200; anything else
// (another status, no answer within --timeout, a refused connection) is an
// error, which makes the binary exit non-zero.
//
// defaultHTTPAddr is the role's local admin address, such as
// "127.0.0.1:9616". Its flags follow the same STRATA_* environment
// overrides as the server's, so a container that sets STRATA_HTTP_ADDR=:9616
// for the server checks that same port; a wildcard or empty host means this
// machine (127.0.0.1).
//
// A node with TLS serves admin HTTP over TLS: the check then verifies that
// the server is a node of --cluster, signed by --tls-ca (or the
// --credentials directory's ca.pem, from the same STRATA_CREDENTIALS the
// node reads).
func HealthCommand(defaultHTTPAddr string) *cobra.Command {
	var (
		addr, token, ca, creds, cluster string
		timeout                         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the local node's /readyz answers 200, non-zero otherwise",
		Long: `healthcheck asks a node's admin HTTP server whether it is ready (GET /readyz)
and exits 0 if it is, 1 with the reason otherwise. It is meant for container
health checks, where the image has no curl.

Every flag can also be set from the environment: STRATA_ plus the flag name
in upper snake case, so it sees the same STRATA_HTTP_ADDR and
STRATA_ADMIN_TOKEN as the server it checks. Flags win over the environment.`,
		Example:      `  healthcheck --http-addr 127.0.0.1:` + portOf(defaultHTTPAddr),
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PreRunE:      func(cmd *cobra.Command, _ []string) error { return ApplyEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if ca == "" && creds != "" {
				ca = tlsconf.Dir(creds).CA()
			}
			var tc *tls.Config
			if ca != "" {
				c, err := tlsconf.Load(tlsconf.Config{CAFile: ca}, cluster)
				if err != nil {
					return err
				}
				tc = c.Client(identity.AnyNode)
			}
			msg, err := CheckReady(ctx, addr, token, tc)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "http-addr", defaultHTTPAddr, "admin HTTP address of the node to check (a wildcard host means 127.0.0.1)")
	f.StringVar(&token, "admin-token", "", "bearer token to send (only needed if /readyz is put behind the admin token)")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	f.StringVar(&ca, "tls-ca", "", "CA of the cluster's certificates: check over TLS (a node with TLS serves admin HTTP over TLS)")
	f.StringVar(&creds, "credentials", "", "credentials directory whose ca.pem to use (the node's --credentials)")
	f.StringVar(&cluster, "cluster", identity.DefaultCluster, "cluster name the node's certificate carries")
	DescribeEnv(f)
	return cmd
}

// CheckReady GETs /readyz at the admin HTTP address addr, over TLS with tc
// when it is not nil. It returns a one-line description when the node
// answers 200, and an error naming the URL and the node's own reason
// otherwise. A non-empty token is sent as "Authorization: Bearer <token>".
func CheckReady(ctx context.Context, addr, token string, tc *tls.Config) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--http-addr %q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http://"
	if tc != nil {
		scheme = "https://"
	}
	url := scheme + net.JoinHostPort(host, port) + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// A client of its own: no proxy from the environment (a probe must
	// reach the local node, not HTTP_PROXY), no connection reuse.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tc}}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("not ready: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", fmt.Errorf("not ready: GET %s: read body: %w", url, err)
	}
	detail := oneLine(body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("not ready: GET %s: %s: %s", url, resp.Status, detail)
	}
	return fmt.Sprintf("ready: %s: %s", url, detail), nil
}

// oneLine returns body as compact JSON if it is JSON, else trimmed text.
func oneLine(body []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, body) == nil {
		return buf.String()
	}
	return strings.Join(strings.Fields(string(body)), " ")
}

// portOf returns addr's port, or addr itself if it has none.
func portOf(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return addr
}
