package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

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

Where the nodes share one credentials directory (make run, compose), the
copy is already done. Keys are named by fingerprint (the first 8 bytes of
their SHA-256), never shown.`,
	}
	cmd.AddCommand(
		keyFileCommand("list FILE", "List the keys of a key file, primary first", 1, func(keys [][]byte, _ []string) ([][]byte, error) {
			return keys, nil
		}),
		keyFileCommand("install FILE [BASE64-KEY]", "Add a key (a new random one unless given) as the second", 1, installKey),
		keyFileCommand("use FILE FINGERPRINT", "Make the key with this fingerprint the primary", 2, useKey),
		keyFileCommand("remove FILE FINGERPRINT", "Remove the key with this fingerprint (not the primary)", 2, removeKey),
		newKeyringStatusCommand(g),
	)
	return cmd
}

// keyFileCommand is a subcommand that reads FILE, changes its keys with
// edit (args after FILE) and, if they changed, writes them back.
func keyFileCommand(use, short string, minArgs int, edit func(keys [][]byte, args []string) ([][]byte, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.RangeArgs(minArgs, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := cluster.ReadKeyFile(args[0])
			if err != nil {
				return err
			}
			out, err := edit(keys, args[1:])
			if err != nil {
				return err
			}
			if !slices.EqualFunc(keys, out, func(a, b []byte) bool { return string(a) == string(b) }) {
				if _, err := cluster.ParseKeys(cluster.FormatKeys(out)); err != nil {
					return err
				}
				if err := os.WriteFile(args[0], cluster.FormatKeys(out), 0o600); err != nil {
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

func installKey(keys [][]byte, args []string) ([][]byte, error) {
	var k []byte
	var err error
	if len(args) == 1 {
		if k, err = base64.StdEncoding.DecodeString(args[0]); err != nil {
			return nil, fmt.Errorf("key: not base64: %w", err)
		}
	} else if k, err = cluster.NewKey(); err != nil {
		return nil, err
	}
	return append([][]byte{keys[0], k}, keys[1:]...), nil
}

func find(keys [][]byte, fp string) (int, error) {
	for i, k := range keys {
		if cluster.Fingerprint(k) == fp {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no key with fingerprint %q in the file (registryctl keyring list FILE)", fp)
}

func useKey(keys [][]byte, args []string) ([][]byte, error) {
	i, err := find(keys, args[0])
	if err != nil {
		return nil, err
	}
	out := append([][]byte{keys[i]}, slices.Delete(slices.Clone(keys), i, i+1)...)
	return out, nil
}

func removeKey(keys [][]byte, args []string) ([][]byte, error) {
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
		RunE:  g.acrossNodes(func(ctx context.Context, targets []healthRow) verdictView { return g.keyrings(ctx, targets) }),
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
func (g *globals) keyrings(ctx context.Context, targets []healthRow) keyringView {
	hc, done := g.adminHTTP()
	defer done()
	rows := make([]keyringRow, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		rows[i] = keyringRow{Node: tg.Node, Role: tg.Role}
		wg.Go(func() {
			code, body, err := g.httpGet(ctx, hc, g.adminURL(tg.Address, "/api/v1/keyring"))
			var ki cluster.KeyInfo
			switch {
			case err != nil:
				rows[i].Error = err.Error()
			case code != http.StatusOK:
				rows[i].Error = fmt.Sprintf("HTTP %d: %s", code, strings.TrimSpace(string(body)))
			case json.Unmarshal(body, &ki) != nil:
				rows[i].Error = "unreadable answer"
			default:
				rows[i].Primary, rows[i].Keys = ki.Primary, ki.Keys
				slices.Sort(rows[i].Keys)
			}
		})
	}
	wg.Wait()
	v := keyringView{Agreed: true, Nodes: rows}
	for _, r := range rows {
		if r.Error != "" || r.Primary != rows[0].Primary || !slices.Equal(r.Keys, rows[0].Keys) {
			v.Agreed = false
		}
	}
	return v
}
