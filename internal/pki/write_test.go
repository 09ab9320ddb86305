package pki

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFile_ReplacesWhole_KeepsMode_LeavesNoTemporary: the file is
// made with its directory, replaced on a second write (a file's mode is
// the new one's), and nothing else is left beside it.
func TestWriteFile_ReplacesWhole_KeepsMode_LeavesNoTemporary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "key.pem")
	for _, w := range []struct {
		b    string
		mode os.FileMode
	}{{"first", 0o644}, {"second, longer", 0o600}} {
		if err := WriteFile(path, []byte(w.b), w.mode); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != w.b {
			t.Fatalf("read %q (%v), want %q", got, err, w.b)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != w.mode {
			t.Fatalf("mode %v (%v), want %v", fi.Mode(), err, w.mode)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v (%v), want only key.pem", entries, err)
	}
}
