package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
)

// The disk cache (WithCacheDir) holds one file per subscribed key with its
// last live snapshot, named by a hash of the key (keys hold characters no
// file name may). Writes go to a temporary file renamed into place, so a
// crash leaves the old snapshot or the new one, never half of one.

type cacheFile struct {
	Key      string   `json:"key"`
	Snapshot Snapshot `json:"snapshot"`
}

func (c *Client) cachePath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.opts.cacheDir, hex.EncodeToString(sum[:16])+".json")
}

// readCache returns key's cached snapshot, marked Cached.
func (c *Client) readCache(key string) (*Snapshot, bool) {
	if c.opts.cacheDir == "" {
		return nil, false
	}
	b, err := os.ReadFile(c.cachePath(key))
	if err != nil {
		return nil, false
	}
	var f cacheFile
	if err := json.Unmarshal(b, &f); err != nil || f.Key != key {
		c.logger.Warn("strata: ignoring an unreadable cache file", "key", key, "err", err)
		return nil, false
	}
	f.Snapshot.Cached = true
	return &f.Snapshot, true
}

// writeCache stores a live snapshot of key (errors are logged: the cache
// is a fallback, never a reason to fail).
func (c *Client) writeCache(key string, snap *Snapshot) {
	if c.opts.cacheDir == "" {
		return
	}
	err := func() error {
		if err := os.MkdirAll(c.opts.cacheDir, 0o755); err != nil {
			return err
		}
		b, err := json.Marshal(cacheFile{Key: key, Snapshot: *snap})
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(c.opts.cacheDir, ".snapshot-*")
		if err != nil {
			return err
		}
		if _, err := tmp.Write(b); err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			return err
		}
		if err := tmp.Close(); err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
		return os.Rename(tmp.Name(), c.cachePath(key))
	}()
	if err != nil {
		c.logger.Warn("strata: cannot write the snapshot cache", "key", key, "err", err)
	}
}
