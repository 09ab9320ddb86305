package cluster

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzParseKeys: a gossip key file never panics the parser, and what it
// accepts formats back to the same keys.
func FuzzParseKeys(f *testing.F) {
	k := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	for _, s := range []string{k + "\n", "# c\n" + k + "\n" + k + "\n", "!!\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseKeys(b)
		if err != nil {
			return
		}
		back, err := ParseKeys(FormatKeys(keys))
		if err != nil || len(back) != len(keys) {
			t.Fatalf("keys %d parse back as %d (%v)", len(keys), len(back), err)
		}
		for i := range keys {
			if !bytes.Equal(keys[i], back[i]) {
				t.Fatalf("key %d changed in a round trip", i)
			}
		}
	})
}
