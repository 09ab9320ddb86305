// Package connect is what the example programs share: the flags that say
// where a Strata cluster is and who the program is there, the Client they
// make, and a main that runs an example with it.
package connect

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/strata-registry/strata/pkg/client"
)

// Flags are where the cluster is and which credentials to use.
type Flags struct {
	Meta, Sessions string
	Credentials    string
	Name, Cluster  string
	Insecure       bool
	Timeout        time.Duration
}

// Register adds the flags to fs, with the defaults of `make run`: meta on
// 127.0.0.1:9615, credentials in run/certs, the client "dev".
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Meta, "meta", "127.0.0.1:9615", "meta nodes to find sessions from (comma-separated host:port)")
	fs.StringVar(&f.Sessions, "session", "", "session nodes to connect to (comma-separated host:port); with -meta, the fallback")
	fs.StringVar(&f.Credentials, "credentials", "run/certs", "credentials directory (registryctl certs init; make run writes run/certs)")
	fs.StringVar(&f.Name, "name", "dev", "client identity in the credentials directory")
	fs.StringVar(&f.Cluster, "cluster", "strata", "cluster name the certificates carry")
	fs.BoolVar(&f.Insecure, "insecure", false, "plaintext, no credentials (a cluster run with --insecure)")
	fs.DurationVar(&f.Timeout, "timeout", 30*time.Second, "give up after this long")
	return f
}

// Client returns a client of the cluster the flags name, plus opts. Its
// connection events go to stderr at Warn and above.
func (f *Flags) Client(ctx context.Context, opts ...client.Option) (*client.Client, error) {
	base := []client.Option{client.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))}
	if f.Meta != "" {
		base = append(base, client.WithMeta(split(f.Meta)...))
	}
	if f.Sessions != "" {
		base = append(base, client.WithSessions(split(f.Sessions)...))
	}
	switch {
	case f.Insecure:
	case f.Credentials == "":
		return nil, errors.New("no -credentials directory (or -insecure for a plaintext cluster)")
	default:
		creds := client.CredentialsDir(f.Credentials, f.Name)
		creds.Cluster = f.Cluster
		base = append(base, client.WithCredentials(creds))
	}
	c, err := client.New(ctx, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// Main runs an example program: it adds the connection flags to fs (the
// program's own are there already), parses the command line, and calls
// run with a Client of the cluster and a context that ends on Ctrl-C or
// after -timeout. The Client is closed when run returns; an error is
// printed and exits 1.
func Main(fs *flag.FlagSet, run func(ctx context.Context, c *client.Client) error) {
	f := Register(fs)
	_ = fs.Parse(os.Args[1:]) // fs exits on a bad flag (flag.ExitOnError)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := f.run(ctx, run)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		os.Exit(1)
	}
}

func (f *Flags) run(ctx context.Context, run func(ctx context.Context, c *client.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, f.Timeout)
	defer cancel()
	c, err := f.Client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return run(ctx, c)
}

func split(list string) []string {
	var out []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
