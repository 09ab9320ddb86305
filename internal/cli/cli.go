// Package cli is the plumbing the four commands share: environment
// overrides for flags, the slog logger, and listener/advertise addresses.
// It holds no state; mains call it while building Config and Deps.
package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// EnvName returns the environment variable that overrides a flag:
// STRATA_ plus the flag name in upper snake case (--node-id: STRATA_NODE_ID).
func EnvName(flag string) string {
	return "STRATA_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ApplyEnv sets every flag the command line did not set from its
// environment variable, if present. Command-line flags win over the
// environment, which wins over defaults.
func ApplyEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		// An empty variable counts as unset: compose files often define
		// variables they leave blank.
		if v := os.Getenv(EnvName(f.Name)); v != "" {
			if serr := cmd.Flags().Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, serr)
			}
		}
	})
	return err
}

// DescribeEnv appends "(env STRATA_X)" to each flag's usage, so --help
// shows the override.
func DescribeEnv(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, EnvName(f.Name))
	})
}

// Logger builds the process logger: text or JSON on w, at level, with a
// node attribute.
func Logger(w io.Writer, level, format, node string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	return slog.New(h).With("node", node), nil
}

// Advertise returns the address other nodes should use for a listener bound
// at bound: the bound address, with its host replaced by host when host is
// set, or by this machine's hostname when bound on a wildcard address.
func Advertise(bound net.Addr, host string) (string, error) {
	h, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return "", err
	}
	switch {
	case host != "":
		h = host
	case h == "" || h == "0.0.0.0" || h == "::":
		if h, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("advertise address: bound on a wildcard and no hostname: %w", err)
		}
	}
	return net.JoinHostPort(h, port), nil
}

// ResolveIP returns host if it is an IP, else its first IPv4 address (or
// first address of any kind).
func ResolveIP(host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return host, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return "", err
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("%s has no address", host)
	}
	return ips[0].String(), nil
}

// Hostname returns the machine's hostname, or "node" if it has none.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node"
	}
	return h
}

// Listen binds addr for the flag named flag and returns the listener with
// the address others should use (see Advertise).
func Listen(flag, addr, advertiseHost string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--%s: %w", flag, err)
	}
	adv, err := Advertise(ln.Addr(), advertiseHost)
	if err != nil {
		_ = ln.Close()
		return nil, "", err
	}
	return ln, adv, nil
}

// Gossip splits a --gossip-addr into memberlist's bind host and port (an
// empty host binds every interface), and turns --advertise-host into the
// IP memberlist needs.
func Gossip(addr, advertiseHost string) (bind string, port int, advertise string, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, "", fmt.Errorf("--gossip-addr: %w", err)
	}
	if port, err = net.LookupPort("tcp", p); err != nil {
		return "", 0, "", fmt.Errorf("--gossip-addr: %w", err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if advertiseHost != "" {
		if advertise, err = ResolveIP(advertiseHost); err != nil {
			return "", 0, "", fmt.Errorf("--advertise-host: %w", err)
		}
	}
	return host, port, advertise, nil
}

// TLSFlags defines the TLS flags every role has.
func TLSFlags(f *pflag.FlagSet, c *tlsconf.Config) {
	f.StringVar(&c.CertFile, "tls-cert", "", "PEM certificate for this node's servers and links (enables TLS)")
	f.StringVar(&c.KeyFile, "tls-key", "", "PEM private key for --tls-cert")
	f.StringVar(&c.CAFile, "tls-ca", "", "PEM CA bundle that signs the cluster's certificates (verifies peers)")
}
