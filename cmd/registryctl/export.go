package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-registry/strata/internal/access"
	"github.com/strata-registry/strata/internal/pki"
	"github.com/strata-registry/strata/pkg/client/identity"
	"github.com/strata-registry/strata/pkg/client/tlsconf"
)

// An export is one --export of certs init: a directory that gets, in the
// credentials directory layout, only what the identities it lists need,
// so that each node (or operator) is handed its own share and nothing
// else. What an identity brings:
//
//	every export                 ca.pem
//	ca-key                       ca-key.pem (a meta node that signs enrollments)
//	meta/, data/, session/NAME   its certificate and key, tokens.yaml, gossip.key
//	enroll/NAME                  its token, tokens.yaml, gossip.key, and an empty
//	                             directory per role it enrolls (where an enrolled
//	                             node writes its certificate)
//	client/, admin/NAME          its certificate, key and token
type export struct {
	dir   tlsconf.Dir
	caKey bool
	// ids have no cluster: the directory's CA decides it.
	ids []identity.ID
}

// caKeyItem is the export item for the CA key.
const caKeyItem = "ca-key"

// parseExport reads an --export value: DIR=ITEM[,ITEM...], each ITEM
// ROLE/NAME or ca-key.
func parseExport(spec string) (export, error) {
	i := strings.LastIndexByte(spec, '=')
	if i <= 0 || i == len(spec)-1 {
		return export{}, fmt.Errorf("--export %q: want DIR=ROLE/NAME[,ROLE/NAME...] (or ca-key among them)", spec)
	}
	e := export{dir: tlsconf.Dir(filepath.Clean(spec[:i]))}
	for _, item := range strings.Split(spec[i+1:], ",") {
		if item == caKeyItem {
			e.caKey = true
			continue
		}
		role, name, ok := strings.Cut(item, "/")
		id := identity.ID{Role: identity.Role(role), Name: name}
		switch {
		case !ok:
			return export{}, fmt.Errorf("--export %q: item %q: want ROLE/NAME or %s", spec, item, caKeyItem)
		case !id.Role.Valid():
			return export{}, fmt.Errorf("--export %q: item %q: unknown role %q (want meta, data, session, client, admin or enroll)", spec, item, role)
		}
		if err := identity.ValidName(name); err != nil {
			return export{}, fmt.Errorf("--export %q: item %q: %w", spec, item, err)
		}
		e.ids = append(e.ids, id)
	}
	return e, nil
}

// write copies into e.dir what its items need from src, and returns the
// paths it wrote. A file already there with the same content and mode is
// left alone; any other is replaced whole (written aside, then renamed),
// so a node reloading meanwhile reads the old file or the new one. src's
// files are the truth: rotating a key in src and writing again hands the
// new key to every export.
func (e export) write(src tlsconf.Dir) ([]string, error) {
	if same, err := samePath(string(src), string(e.dir)); err != nil || same {
		if err == nil {
			err = errors.New("it is the credentials directory itself")
		}
		return nil, fmt.Errorf("--export %s: %w", e.dir, err)
	}
	type pair struct{ from, to string }
	files := []pair{{src.CA(), e.dir.CA()}}
	var dirs []string
	shared := false
	if e.caKey {
		files = append(files, pair{src.CAKey(), e.dir.CAKey()})
	}
	for _, id := range e.ids {
		switch {
		case id.Role == identity.RoleEnroll:
			files = append(files, pair{src.Token(id.Role, id.Name), e.dir.Token(id.Role, id.Name)})
			roles, err := enrolls(src, id.Name)
			if err != nil {
				return nil, fmt.Errorf("--export %s: %w", e.dir, err)
			}
			for _, r := range roles {
				dirs = append(dirs, filepath.Join(string(e.dir), string(r))) // <role>/<name>.pem
			}
			shared = true
		default:
			files = append(files, pair{src.Cert(id.Role, id.Name), e.dir.Cert(id.Role, id.Name)},
				pair{src.Key(id.Role, id.Name), e.dir.Key(id.Role, id.Name)})
			if id.Role.Node() {
				shared = true
			} else {
				files = append(files, pair{src.Token(id.Role, id.Name), e.dir.Token(id.Role, id.Name)})
			}
		}
	}
	if shared {
		files = append(files, pair{src.Tokens(), e.dir.Tokens()}, pair{src.GossipKey(), e.dir.GossipKey()})
	}
	var written []string
	for _, f := range files {
		w, err := copyFile(f.from, f.to)
		if err != nil {
			return written, fmt.Errorf("--export %s: %w", e.dir, err)
		}
		if w {
			written = append(written, f.to)
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return written, fmt.Errorf("--export %s: %w", e.dir, err)
		}
	}
	return written, nil
}

// enrolls returns the roles the enroll identity name may enroll, from
// src's tokens file.
func enrolls(src tlsconf.Dir, name string) ([]identity.Role, error) {
	b, err := os.ReadFile(src.Tokens())
	if err != nil {
		return nil, err
	}
	f, err := access.ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Tokens(), err)
	}
	for _, en := range f.Identities {
		if en.Role == identity.RoleEnroll && en.Name == name {
			return en.Enroll, nil
		}
	}
	return nil, fmt.Errorf("%s has no enroll identity %q (certs init --enrollers)", src.Tokens(), name)
}

// copyFile makes to a copy of from, with from's mode, unless it is one
// already; it reports whether it wrote.
func copyFile(from, to string) (bool, error) {
	b, err := os.ReadFile(from)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%s does not exist (name its identity to certs init)", from)
	}
	if err != nil {
		return false, err
	}
	st, err := os.Stat(from)
	if err != nil {
		return false, err
	}
	mode := st.Mode().Perm()
	if old, err := os.ReadFile(to); err == nil && bytes.Equal(old, b) {
		if ost, err := os.Stat(to); err == nil && ost.Mode().Perm() == mode {
			return false, nil
		}
	}
	return true, pki.WriteFile(to, b, mode)
}

// samePath reports whether a and b name the same directory.
func samePath(a, b string) (bool, error) {
	aa, err := filepath.Abs(a)
	if err != nil {
		return false, err
	}
	bb, err := filepath.Abs(b)
	if err != nil {
		return false, err
	}
	return aa == bb, nil
}
