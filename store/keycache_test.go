package store

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestKeyCache(t *testing.T) {
	keySet := func(i int) []byte {
		k := &metadata.Key{Type: "ed25519", Scheme: "ed25519", Value: metadata.KeyVal{PublicKey: fmt.Sprintf("%064x", i)}}
		b, err := json.Marshal(map[string]*metadata.Key{fmt.Sprint("id", i): k})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var c keyCache
	a1, err := c.decode(keySet(1))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := c.decode(keySet(1))
	if err != nil || fmt.Sprintf("%p", a1) != fmt.Sprintf("%p", a2) {
		t.Fatalf("the same bytes were decoded again (%p, %p, %v)", a1, a2, err)
	}
	b, err := c.decode(keySet(2))
	if err != nil || fmt.Sprintf("%p", a1) == fmt.Sprintf("%p", b) {
		t.Fatalf("other bytes gave the cached keys: %v", err)
	}
	for _, k := range b {
		if k.Value.PublicKey != fmt.Sprintf("%064x", 2) {
			t.Fatalf("decoded %+v", k)
		}
	}
	if _, err := c.decode([]byte(`{"x":`)); err == nil {
		t.Fatal("invalid JSON decoded")
	}
	if len(c.m) != 2 {
		t.Fatalf("%d entries, want 2 (a failed decode is not cached)", len(c.m))
	}
	for i := range maxCachedKeySets + 10 {
		if _, err := c.decode(keySet(100 + i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > maxCachedKeySets {
		t.Fatalf("%d entries, more than the bound %d", len(c.m), maxCachedKeySets)
	}
}
