package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-registry/strata/internal/cli"
	"github.com/strata-registry/strata/internal/cluster"
)

func newKeyringCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keyring",
		Short: "Rotate the gossip encryption keys: edit a key file, check every node took it",
		Long: `Gossip is encrypted with the keys of each node's --gossip-key-file (base64,
one a line): the first encrypts, every one decrypts. A node re-reads the
file on SIGHUP. Rotating a key without a moment of split gossip takes three
rounds, each ending when status shows every node agreeing:

  1. registryctl keyring install FILE          add a new key, second: every node can read it
     (copy FILE to every node, SIGHUP them all; registryctl keyring status)
  2. registryctl keyring use FILE FINGERPRINT  make it the primary: nodes encrypt with it
     (copy, SIGHUP, status)
  3. registryctl keyring remove FILE OLD       drop the old key
     (copy, SIGHUP, status)

Where the nodes share one credentials directory (make run), the copy is
already done; compose copies each node its own (deploy/compose/docker-compose.yml
says how to rotate there). Keys are named by fingerprint (the first 8 bytes
of their SHA-256), never shown, and never given on the command line, where
the process list would show them: install makes a new one, or reads it
from a file or standard input.`,
	}
	cmd.AddCommand(
		keyFileCommand("list FILE", "List the keys of a key file, primary first", cobra.ExactArgs(1), func(_ *cobra.Command, keys [][]byte, _ []string) ([][]byte, error) {
			return keys, nil
		}),
		keyFileCommand("install FILE [KEY-FILE]", `Add a key as the second: a new random one, or the base64 key KEY-FILE holds ("-": standard input)`, cobra.RangeArgs(1, 2), installKey),
		keyFileCommand("use FILE FINGERPRINT", "Make the key with this fingerprint the primary", cobra.ExactArgs(2), useKey),
		keyFileCommand("remove FILE FINGERPRINT", "Remove the key with this fingerprint (not the primary)", cobra.ExactArgs(2), removeKey),
		newKeyringStatusCommand(g),
	)
	return cmd
}

// keyFileCommand is a subcommand that reads FILE, changes its keys with
// edit (args after FILE) and, if they changed, writes them back; then it
// prints the file's fingerprints.
func keyFileCommand(use, short string, args cobra.PositionalArgs, edit func(cmd *cobra.Command, keys [][]byte, args []string) ([][]byte, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := cluster.ReadKeyFile(args[0])
			if err != nil {
				return err
			}
			out, err := edit(cmd, keys, args[1:])
			if err != nil {
				return err
			}
			if !slices.EqualFunc(keys, out, bytes.Equal) {
				b := cluster.FormatKeys(out)
				if _, err := cluster.ParseKeys(b); err != nil {
					return err
				}
				if err := os.WriteFile(args[0], b, 0o600); err != nil {
					return err
				}
			}
			for i, k := range out {
				mark := ""
				if i == 0 {
					mark = "  (primary)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s%s\n", cluster.Fingerprint(k), mark)
			}
			return nil
		},
	}
}

// installKey adds a key second: the one args[0] holds ("-": standard
// input), or a new one.
func installKey(cmd *cobra.Command, keys [][]byte, args []string) ([][]byte, error) {
	var k []byte
	if len(args) == 1 {
		var err error
		if k, err = readKey(cmd.InOrStdin(), args[0]); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			return nil, fmt.Errorf("%s: key %s is in the file already", args[0], cluster.Fingerprint(k))
		}
	} else {
		var err error
		if k, err = cluster.NewKey(); err != nil {
			return nil, err
		}
	}
	return append([][]byte{keys[0], k}, keys[1:]...), nil
}

// readKey reads the one key of a key file (path, or stdin for "-"), in
// the gossip key file's format.
func readKey(stdin io.Reader, path string) ([]byte, error) {
	name := path
	r := stdin
	if path == "-" {
		name = "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	// One byte over the limit is enough for ParseKeys to refuse it.
	b, err := io.ReadAll(io.LimitReader(r, cluster.KeyFileMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ks, err := cluster.ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(ks) != 1 {
		return nil, fmt.Errorf("%s holds %d keys: give one", name, len(ks))
	}
	return ks[0], nil
}

func find(keys [][]byte, fp string) (int, error) {
	for i, k := range keys {
		if cluster.Fingerprint(k) == fp {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no key with fingerprint %q in the file (registryctl keyring list FILE)", fp)
}

func useKey(_ *cobra.Command, keys [][]byte, args []string) ([][]byte, error) {
	i, err := find(keys, args[0])
	if err != nil {
		return nil, err
	}
	out := append([][]byte{keys[i]}, slices.Delete(slices.Clone(keys), i, i+1)...)
	return out, nil
}

func removeKey(_ *cobra.Command, keys [][]byte, args []string) ([][]byte, error) {
	i, err := find(keys, args[0])
	if err != nil {
		return nil, err
	}
	if i == 0 {
		return nil, errors.New("that is the primary key: make another one primary first (keyring use)")
	}
	return slices.Delete(slices.Clone(keys), i, i+1), nil
}

// keyringView is what status prints: every node's keyring.
type keyringView struct {
	Agreed bool         `json:"agreed" yaml:"agreed"`
	Nodes  []keyringRow `json:"nodes" yaml:"nodes"`
}

type keyringRow struct {
	Node    string   `json:"node" yaml:"node"`
	Role    string   `json:"role" yaml:"role"`
	Primary string   `json:"primary,omitempty" yaml:"primary,omitempty"`
	Keys    []string `json:"keys,omitempty" yaml:"keys,omitempty"`
	Error   string   `json:"error,omitempty" yaml:"error,omitempty"`
}

func (v keyringView) writeTable(w io.Writer) error {
	t := newTable(w, "NODE", "ROLE", "PRIMARY", "KEYS", "ERROR")
	for _, r := range v.Nodes {
		t.row(r.Node, r.Role, r.Primary, strings.Join(r.Keys, ","), r.Error)
	}
	return t.flush()
}

func newKeyringStatusCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every node's gossip keys (GET /api/v1/keyring); exit 1 unless all agree",
		Args:  cobra.NoArgs,
		RunE: g.acrossNodes(func(ctx context.Context, a *adminHTTP, targets []healthRow) verdictView {
			return keyrings(ctx, a, targets)
		}),
	}
	cli.DescribeEnv(cmd.Flags())
	return cmd
}

// err is the command's result: nil when every node answered with the
// same keys and primary.
func (v keyringView) err() error {
	if !v.Agreed {
		return errors.New("the nodes do not all have the same gossip keys and primary")
	}
	return nil
}

// keyrings asks every target's admin HTTP for its keyring, all at once.
func keyrings(ctx context.Context, a *adminHTTP, targets []healthRow) keyringView {
	rows := make([]keyringRow, len(targets))
	for i, ans := range a.getAll(ctx, targets, "/api/v1/keyring") {
		r := &rows[i]
		r.Node, r.Role = targets[i].Node, targets[i].Role
		var ki cluster.KeyInfo
		switch {
		case ans.err != nil:
			r.Error = ans.err.Error()
		case ans.code != http.StatusOK:
			r.Error = fmt.Sprintf("HTTP %d: %s", ans.code, strings.TrimSpace(string(ans.body)))
		case json.Unmarshal(ans.body, &ki) != nil:
			r.Error = "unreadable answer"
		default:
			r.Primary, r.Keys = ki.Primary, ki.Keys
			slices.Sort(r.Keys)
		}
	}
	v := keyringView{Agreed: true, Nodes: rows}
	for _, r := range rows {
		if r.Error != "" || r.Primary != rows[0].Primary || !slices.Equal(r.Keys, rows[0].Keys) {
			v.Agreed = false
		}
	}
	return v
}
