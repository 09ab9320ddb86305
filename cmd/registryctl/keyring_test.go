package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/cluster"
)

// keyFile writes keys as a gossip key file and returns its path.
func keyFile(t *testing.T, keys ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(path, cluster.FormatKeys(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k, err := cluster.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// executeIn runs registryctl with stdin.
func executeIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(new(bytes.Buffer))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// TestKeyring_Install_ReadsTheNewKeyFromAFileOrStdin checks that install
// takes a given key only from a file or standard input (never the command
// line), puts it second, and refuses anything but exactly one new valid
// key, leaving the file as it was.
func TestKeyring_Install_ReadsTheNewKeyFromAFileOrStdin(t *testing.T) {
	primary := newKey(t)
	given := newKey(t)
	givenFile := keyFile(t, given)

	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{name: "from a file", args: []string{givenFile}},
		{name: "from stdin", stdin: base64.StdEncoding.EncodeToString(given) + "\n", args: []string{"-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := keyFile(t, primary)
			out, err := executeIn(t, tc.stdin, append([]string{"keyring", "install", file}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := cluster.ReadKeyFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 2 || !bytes.Equal(keys[0], primary) || !bytes.Equal(keys[1], given) {
				t.Fatalf("the file holds %d keys, want the primary, then the given key", len(keys))
			}
			want := fmt.Sprintf("%s  (primary)\n%s\n", cluster.Fingerprint(primary), cluster.Fingerprint(given))
			if out != want {
				t.Errorf("output %q, want %q", out, want)
			}
		})
	}

	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"two keys", "", []string{keyFile(t, newKey(t), newKey(t))}, "holds 2 keys: give one"},
		{"not base64", "not a key!\n", []string{"-"}, "standard input: cluster: gossip key file line 1: not base64"},
		{"a short key", base64.StdEncoding.EncodeToString([]byte("short")), []string{"-"}, "standard input"},
		{"empty stdin", "", []string{"-"}, "holds no key"},
		{"no such file", "", []string{"/nonexistent/new.key"}, "/nonexistent/new.key"},
		{"the primary again", base64.StdEncoding.EncodeToString(primary), []string{"-"}, "is in the file already"},
		{"a key as an argument", "", []string{"a", "b"}, "accepts between 1 and 2 arg(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := keyFile(t, primary)
			before, _ := os.ReadFile(file)
			_, err := executeIn(t, tc.stdin, append([]string{"keyring", "install", file}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if after, _ := os.ReadFile(file); !bytes.Equal(after, before) {
				t.Error("a refused install changed the file")
			}
		})
	}
}

func TestKeyring_FileCommands_RefuseExtraArgs(t *testing.T) {
	file := keyFile(t, newKey(t))
	for _, args := range [][]string{
		{"list", file, "junk"},
		{"use", file},
		{"use", file, "fp", "junk"},
		{"remove", file, "fp", "junk"},
	} {
		if _, err := executeIn(t, "", append([]string{"keyring"}, args...)...); err == nil || !strings.Contains(err.Error(), "arg(s)") {
			t.Errorf("keyring %v: err = %v, want the argument count refused", args, err)
		}
	}
}

// TestKeyrings_AgreementAndNodesWithoutAnAddress checks status's verdict
// against fake nodes: the same keys everywhere agree; a node meta knows no
// address for is named as such (no request is made), as are nodes that
// refuse or answer differently.
func TestKeyrings_AgreementAndNodesWithoutAnAddress(t *testing.T) {
	answer := func(body string) string {
		return newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/keyring" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, body)
		})
	}
	same := answer(`{"primary":"aa","keys":["bb","aa"]}`)
	same2 := answer(`{"primary":"aa","keys":["aa","bb"]}`)
	other := answer(`{"primary":"bb","keys":["aa","bb"]}`)
	refusing := newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "an operator is required", http.StatusUnauthorized)
	})
	g := &globals{timeout: 5 * time.Second}
	a := g.newAdminHTTP(nil)
	defer a.Close()

	if v := keyrings(t.Context(), a, []healthRow{{Node: "a", Address: same}, {Node: "b", Address: same2}}); !v.Agreed || v.err() != nil {
		t.Errorf("the same keys in another order: %+v", v)
	}
	v := keyrings(t.Context(), a, []healthRow{
		{Node: "a", Role: "meta", Address: same},
		{Node: "b", Role: "meta"},
		{Node: "c", Role: "data", Address: other},
		{Node: "d", Role: "session", Address: refusing},
	})
	if v.Agreed || v.err() == nil || !strings.Contains(v.err().Error(), "do not all have the same") {
		t.Errorf("agreed = %v, err %v, with nodes disagreeing", v.Agreed, v.err())
	}
	want := []string{"", "no HTTP address known", "", "HTTP 401: an operator is required"}
	for i, w := range want {
		if r := v.Nodes[i]; (w == "") != (r.Error == "") || !strings.Contains(r.Error, w) {
			t.Errorf("%s: error %q, want %q", r.Node, r.Error, w)
		}
	}
	if v.Nodes[2].Primary != "bb" || v.Nodes[1].Role != "meta" {
		t.Errorf("rows %+v", v.Nodes)
	}
}
