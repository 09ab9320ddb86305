package sdktest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/testcluster"
)

// examplesDir returns examples/, the module of example programs (the test
// runs in internal/sdktest).
func examplesDir(t *testing.T) string { return moduleDir(t, "examples") }

// moduleDir returns the nested module at rel from the repository root.
func moduleDir(t *testing.T, rel string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no %s module: %v", rel, err)
	}
	return dir
}

// goCommand returns the go command running args in dir, outside any
// workspace, so the module's own go.mod decides.
func goCommand(t *testing.T, ctx context.Context, dir string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH: %v", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	return cmd
}

// TestSDK_PullsNoServerDependency: the example programs, which import
// only the SDK (pkg/client, its discovery and resolver), build from the
// SDK's and the protocol's modules and their third-party dependencies
// alone: no package of the root module (internal/, cmd/), and none of
// raft, memberlist, bolt or cobra.
func TestSDK_PullsNoServerDependency(t *testing.T) {
	sdk := noServerDeps(t, examplesDir(t), "./...")
	// The check means something only if the programs use all of the SDK.
	for _, p := range []string{"", "/discovery", "/resolver"} {
		if !sdk["github.com/strata-registry/strata/pkg/client"+p] {
			t.Errorf("the examples do not import pkg/client%s", p)
		}
	}
}

// TestKratosAdapter_PullsNoServerDependency: the Kratos adapter
// (contrib/kratos, its own module), tests included, pulls in no server
// code either, so that its users do not.
func TestKratosAdapter_PullsNoServerDependency(t *testing.T) {
	sdk := noServerDeps(t, moduleDir(t, "contrib/kratos"), "-test", "./...")
	if !sdk["github.com/strata-registry/strata/pkg/client/discovery"] {
		t.Error("the adapter does not import pkg/client/discovery")
	}
}

// noServerDeps runs go list -deps with args in the module at dir, fails
// the test on any package of the root module or of raft, memberlist, bolt
// or cobra, and returns the SDK's packages among the dependencies.
func noServerDeps(t *testing.T, dir string, args ...string) map[string]bool {
	t.Helper()
	cmd := goCommand(t, sdktest.Ctx(t), dir, append([]string{"list", "-deps", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.Bytes())
	}
	forbidden := []string{"hashicorp/raft", "hashicorp/memberlist", "bbolt", "boltdb", "spf13/cobra", "strata/internal/"}
	sdk := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		pkg, mod, _ := strings.Cut(strings.TrimSpace(line), " ")
		for _, f := range forbidden {
			if strings.Contains(pkg, f) {
				t.Errorf("%s pulls in %s (module %s)", dir, pkg, mod)
			}
		}
		if mod == "github.com/strata-registry/strata" {
			t.Errorf("%s pulls in %s of the root module", dir, pkg)
		}
		if mod == "github.com/strata-registry/strata/pkg/client" {
			sdk[pkg] = true
		}
	}
	return sdk
}

// TestExamples_RunAgainstACluster: each example program, built as a user
// builds it, does its whole round against a secure in-process cluster
// with the flags its README gives, and exits 0.
func TestExamples_RunAgainstACluster(t *testing.T) {
	ctx := sdktest.Ctx(t)
	bin := t.TempDir()
	if out, err := goCommand(t, ctx, examplesDir(t), "build", "-o", bin+string(filepath.Separator), "./...").CombinedOutput(); err != nil {
		t.Fatalf("go build the examples: %v\n%s", err, out)
	}
	c := testcluster.Start(t, testcluster.Spec{Meta: 1, Data: 1, Session: 1})
	c.WaitDataSettled(t)
	flags := []string{"-meta", c.MetaAddrs()[0], "-credentials", string(c.Credentials()),
		"-name", testcluster.ClientName, "-cluster", testcluster.Name}
	for _, tc := range []struct {
		program string
		says    []string
	}{
		{"pubsub", []string{"published \"hello\"", "updated to \"hello again\"", "unpublished", "done"}},
		{"discovery", []string{"registered 127.0.0.1:8080", "picked 127.0.0.1:8080 (weight 10)", "weight of 127.0.0.1:8080 set to 1", "deregistered", "done"}},
		{"grpc-resolver", []string{"called strata:///com.example.Health: SERVING", "done"}},
		{"httpapi", []string{"registered 127.0.0.1:8081", "watch: the instance is listed", "heartbeat: lease renewed", "blocking query: 1 instance(s)", "deregistered", "watch: the instance is gone", "done"}},
	} {
		t.Run(tc.program, func(t *testing.T) {
			args := flags
			if tc.program == "httpapi" { // no SDK: the session's HTTP API with the client's token
				args = []string{"-url", "https://" + c.Session(0).Server().HTTPAPIAddr(), "-credentials", string(c.Credentials()), "-name", testcluster.ClientName}
			}
			out, err := exec.CommandContext(ctx, filepath.Join(bin, tc.program), args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.program, err, out)
			}
			t.Logf("%s said:\n%s", tc.program, out)
			for _, s := range tc.says {
				if !strings.Contains(string(out), s) {
					t.Errorf("%s did not say %q:\n%s", tc.program, s, out)
				}
			}
		})
	}
}
