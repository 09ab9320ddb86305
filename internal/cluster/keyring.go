package cluster

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/memberlist"
)

// The gossip key file holds the keys memberlist encrypts the pool's traffic
// with (AES-GCM): one base64 key per line, 16, 24 or 32 bytes, the primary
// (the one this node encrypts with) first; every key listed decrypts.
// Blank lines and lines starting with '#' are ignored. Rotating keys is
// three edits of every node's file, each followed by SIGHUP (or by
// `registryctl keyring`, which does the same through the admin API):
// add the new key second (installed everywhere), move it first (used), then
// drop the old one (removed).

// KeyFileMaxBytes bounds a gossip key file.
const KeyFileMaxBytes = 64 << 10

// maxKeys bounds the keys of one keyring.
const maxKeys = 32

// ParseKeys reads a gossip key file's contents.
func ParseKeys(b []byte) ([][]byte, error) {
	if len(b) > KeyFileMaxBytes {
		return nil, fmt.Errorf("cluster: gossip key file is %d bytes, at most %d allowed", len(b), KeyFileMaxBytes)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("cluster: gossip key file line %d: not base64: %v", line, err)
		}
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("cluster: gossip key file line %d: %v", line, err)
		}
		for _, o := range keys {
			if bytes.Equal(o, k) {
				return nil, fmt.Errorf("cluster: gossip key file line %d: a key listed twice", line)
			}
		}
		if len(keys) == maxKeys {
			return nil, fmt.Errorf("cluster: gossip key file has more than %d keys", maxKeys)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cluster: gossip key file: %v", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("cluster: gossip key file holds no key")
	}
	return keys, nil
}

// ReadKeyFile reads and parses a gossip key file.
func ReadKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip key file: %w", err)
	}
	defer f.Close()
	// One byte over the limit is enough for ParseKeys to refuse the file.
	b, err := io.ReadAll(io.LimitReader(f, KeyFileMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip key file: %w", err)
	}
	return ParseKeys(b)
}

// FormatKeys writes keys in the key file's format, primary first.
func FormatKeys(keys [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("# Strata gossip keys (base64), primary first; see `registryctl keyring --help`.\n")
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// NewKey returns a random 32-byte gossip key (AES-256).
func NewKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// Fingerprint names a key without revealing it: the first 8 bytes of its
// SHA-256, hex.
func Fingerprint(k []byte) string {
	h := sha256.Sum256(k)
	return hex.EncodeToString(h[:8])
}
