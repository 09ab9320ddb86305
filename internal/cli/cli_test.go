package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestEnvName(t *testing.T) {
	tests := []struct {
		flag, want string
	}{
		{"node-id", "STRATA_NODE_ID"},
		{"port", "STRATA_PORT"},
		{"tls-client-auth", "STRATA_TLS_CLIENT_AUTH"},
		{"grpc_addr", "STRATA_GRPC_ADDR"},
	}
	for _, tc := range tests {
		if got := EnvName(tc.flag); got != tc.want {
			t.Errorf("EnvName(%q) = %q, want %q", tc.flag, got, tc.want)
		}
	}
}

// options is what a main binds its flags to.
type options struct {
	nodeID  string
	port    int
	verbose bool
	wait    time.Duration
	region  string // a persistent flag on the parent command
}

// unsetenv removes k for the duration of the test, so that a variable in
// the developer's environment cannot leak into a flag.
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "") // restores the old value at cleanup
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

// run builds a root command with a "serve" subcommand wired the way mains
// are (ApplyEnv in PreRunE), executes it with args, and returns the options
// the run saw.
func run(t *testing.T, args ...string) (options, error) {
	t.Helper()
	var o options
	root := &cobra.Command{Use: "strata", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVar(&o.region, "region", "eu", "region")
	serve := &cobra.Command{
		Use:     "serve",
		PreRunE: func(cmd *cobra.Command, _ []string) error { return ApplyEnv(cmd) },
		RunE:    func(*cobra.Command, []string) error { return nil },
	}
	f := serve.Flags()
	f.StringVar(&o.nodeID, "node-id", "default-node", "node name")
	f.IntVar(&o.port, "port", 7000, "port")
	f.BoolVar(&o.verbose, "verbose", false, "verbose")
	f.DurationVar(&o.wait, "wait", time.Second, "wait")
	root.AddCommand(serve)
	root.SetArgs(append([]string{"serve"}, args...))
	root.SetOut(new(bytes.Buffer))
	root.SetErr(new(bytes.Buffer))
	err := root.Execute()
	return o, err
}

func TestApplyEnv_Precedence(t *testing.T) {
	defaults := options{nodeID: "default-node", port: 7000, wait: time.Second, region: "eu"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want options
	}{
		{
			name: "defaults without env or flags",
			want: defaults,
		},
		{
			name: "env sets unset flags",
			env: map[string]string{
				"STRATA_NODE_ID": "env-node",
				"STRATA_PORT":    "9000",
				"STRATA_VERBOSE": "true",
				"STRATA_WAIT":    "3s",
			},
			want: options{nodeID: "env-node", port: 9000, verbose: true, wait: 3 * time.Second, region: "eu"},
		},
		{
			name: "command line wins over env",
			env:  map[string]string{"STRATA_NODE_ID": "env-node", "STRATA_PORT": "9000"},
			args: []string{"--node-id", "flag-node"},
			want: options{nodeID: "flag-node", port: 9000, wait: time.Second, region: "eu"},
		},
		{
			name: "command line wins even when it repeats the default",
			env:  map[string]string{"STRATA_PORT": "9000"},
			args: []string{"--port", "7000"},
			want: defaults,
		},
		{
			name: "inherited persistent flag is set from env",
			env:  map[string]string{"STRATA_REGION": "us"},
			want: options{nodeID: "default-node", port: 7000, wait: time.Second, region: "us"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"STRATA_NODE_ID", "STRATA_PORT", "STRATA_VERBOSE", "STRATA_WAIT", "STRATA_REGION", "STRATA_HELP"} {
				unsetenv(t, k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := run(t, tc.args...)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if got != tc.want {
				t.Fatalf("options = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestApplyEnv_BadValueErrorNamesVariable(t *testing.T) {
	tests := []struct {
		env, value string
	}{
		{"STRATA_PORT", "abc"},
		{"STRATA_VERBOSE", "maybe"},
		{"STRATA_WAIT", "soon"},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			for _, k := range []string{"STRATA_NODE_ID", "STRATA_PORT", "STRATA_VERBOSE", "STRATA_WAIT", "STRATA_REGION", "STRATA_HELP"} {
				unsetenv(t, k)
			}
			t.Setenv(tc.env, tc.value)
			_, err := run(t)
			if err == nil {
				t.Fatalf("%s=%s: Execute succeeded, want an error", tc.env, tc.value)
			}
			if !strings.Contains(err.Error(), tc.env) || !strings.Contains(err.Error(), tc.value) {
				t.Fatalf("error %q does not name %s and the value %q", err, tc.env, tc.value)
			}
		})
	}
}

func TestApplyEnv_IgnoresHelpVariable(t *testing.T) {
	t.Setenv("STRATA_HELP", "true")
	cmd := &cobra.Command{Use: "strata"}
	cmd.InitDefaultHelpFlag()
	if err := ApplyEnv(cmd); err != nil {
		t.Fatalf("ApplyEnv: %v", err)
	}
	help := cmd.Flags().Lookup("help")
	if help.Changed || help.Value.String() != "false" {
		t.Fatalf("--help = %s (changed %v) after STRATA_HELP=true, want it untouched", help.Value, help.Changed)
	}
}

func TestDescribeEnv_AppendsVariableToUsage(t *testing.T) {
	cmd := &cobra.Command{Use: "strata"}
	cmd.Flags().String("node-id", "", "unique node name")
	cmd.Flags().Int("port", 0, "listen port")
	DescribeEnv(cmd.Flags())

	tests := []struct{ flag, want string }{
		{"node-id", "unique node name (env STRATA_NODE_ID)"},
		{"port", "listen port (env STRATA_PORT)"},
	}
	for _, tc := range tests {
		if got := cmd.Flags().Lookup(tc.flag).Usage; got != tc.want {
			t.Errorf("usage of --%s = %q, want %q", tc.flag, got, tc.want)
		}
	}
	if help := cmd.Flags().FlagUsages(); !strings.Contains(help, "(env STRATA_NODE_ID)") {
		t.Errorf("help text does not show the override:\n%s", help)
	}
}

func TestLogger_AcceptsLevelsAndFormats(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		for _, level := range []string{"debug", "info", "warn", "error"} {
			t.Run(format+"/"+level, func(t *testing.T) {
				var buf bytes.Buffer
				l, err := Logger(&buf, level, format, "node-1")
				if err != nil {
					t.Fatalf("Logger(%q, %q): %v", level, format, err)
				}
				l.Error("boom")
				out := buf.String()
				if !strings.Contains(out, "boom") {
					t.Fatalf("output %q lacks the message", out)
				}
				if format == "json" {
					var rec map[string]any
					if err := json.Unmarshal([]byte(out), &rec); err != nil {
						t.Fatalf("output %q is not one JSON record: %v", out, err)
					}
					if rec["node"] != "node-1" {
						t.Fatalf("node attribute = %v, want node-1 (record %v)", rec["node"], rec)
					}
				} else if !strings.Contains(out, "node=node-1") {
					t.Fatalf("output %q lacks node=node-1", out)
				}
			})
		}
	}
}

func TestLogger_FiltersBelowLevel(t *testing.T) {
	var buf bytes.Buffer
	l, err := Logger(&buf, "warn", "text", "n")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("quiet")
	l.Warn("loud")
	out := buf.String()
	if strings.Contains(out, "quiet") {
		t.Errorf("info record written at level warn: %q", out)
	}
	if !strings.Contains(out, "loud") {
		t.Errorf("warn record missing at level warn: %q", out)
	}
}

func TestLogger_RejectsUnknownLevelOrFormat(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantInErr           []string
	}{
		{"unknown level", "verbose", "text", []string{`"verbose"`, "debug, info, warn or error"}},
		{"empty level", "", "text", []string{"log level", "debug, info, warn or error"}},
		{"trace level", "trace", "json", []string{`"trace"`, "debug, info, warn or error"}},
		{"unknown format", "info", "yaml", []string{`"yaml"`, "text or json"}},
		{"empty format", "info", "", []string{"log format", "text or json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Logger(new(bytes.Buffer), tc.level, tc.format, "n")
			if err == nil {
				t.Fatalf("Logger(%q, %q) = %v, nil; want an error", tc.level, tc.format, l)
			}
			if l != nil {
				t.Errorf("Logger returned a logger with the error")
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestAdvertise(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Skipf("no hostname: %v", err)
	}
	tests := []struct {
		name  string
		bound net.Addr
		host  string
		want  string
	}{
		{"concrete host kept", &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 7000}, "", "10.1.2.3:7000"},
		{"loopback kept", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 7000}, "", "127.0.0.1:7000"},
		{"ipv6 concrete kept", &net.TCPAddr{IP: net.ParseIP("::1"), Port: 7000}, "", "[::1]:7000"},
		{"given host replaces concrete", &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 7000}, "meta-0.strata", "meta-0.strata:7000"},
		{"given host replaces wildcard", &net.TCPAddr{IP: net.IPv4zero, Port: 7000}, "meta-0.strata", "meta-0.strata:7000"},
		{"given ipv6 host is bracketed", &net.TCPAddr{IP: net.IPv4zero, Port: 7000}, "fd00::1", "[fd00::1]:7000"},
		{"ipv4 wildcard uses hostname", &net.TCPAddr{IP: net.IPv4zero, Port: 7000}, "", net.JoinHostPort(hostname, "7000")},
		{"ipv6 wildcard uses hostname", &net.TCPAddr{IP: net.IPv6unspecified, Port: 7000}, "", net.JoinHostPort(hostname, "7000")},
		{"empty host uses hostname", &net.TCPAddr{Port: 7000}, "", net.JoinHostPort(hostname, "7000")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Advertise(tc.bound, tc.host)
			if err != nil {
				t.Fatalf("Advertise(%v, %q): %v", tc.bound, tc.host, err)
			}
			if got != tc.want {
				t.Fatalf("Advertise(%v, %q) = %q, want %q", tc.bound, tc.host, got, tc.want)
			}
		})
	}
}

func TestAdvertise_BoundListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got, err := Advertise(ln.Addr(), "")
	if err != nil {
		t.Fatal(err)
	}
	if got != ln.Addr().String() {
		t.Fatalf("Advertise(%v) = %q, want the bound address", ln.Addr(), got)
	}
}

func TestAdvertise_AddressWithoutPortIsError(t *testing.T) {
	if got, err := Advertise(&net.UnixAddr{Name: "/tmp/strata.sock", Net: "unix"}, ""); err == nil {
		t.Fatalf("Advertise(unix socket) = %q, nil; want an error", got)
	}
}

func TestHostname_NeverEmpty(t *testing.T) {
	got := Hostname()
	if got == "" {
		t.Fatal("Hostname() = \"\"")
	}
	if h, err := os.Hostname(); err == nil && h != "" && got != h {
		t.Fatalf("Hostname() = %q, want os.Hostname() %q", got, h)
	}
}

func TestApplyEnv_EmptyVariableCountsAsUnset(t *testing.T) {
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	port := cmd.Flags().Int("port", 7, "")
	t.Setenv("STRATA_PORT", "")
	if err := ApplyEnv(cmd); err != nil {
		t.Fatalf("empty variable: %v", err)
	}
	if *port != 7 {
		t.Fatalf("port = %d, want the default 7", *port)
	}
}
