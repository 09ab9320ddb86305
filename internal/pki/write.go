package pki

import (
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with b, mode perm, whole or not at all: it
// writes a temporary file beside it (making the directory if need be),
// syncs it and renames it over path, so a reader (a node reloading on
// SIGHUP) or a crash sees the old file or the new one, never a part.
func WriteFile(path string, b []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // none left after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
