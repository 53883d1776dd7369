package gzchunk

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// snapshotLike is a document shaped like snapshot metadata: n sorted entries.
func snapshotLike(n int, version func(i int) int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"signatures":[{"keyid":"0123","sig":"abcd"}],"signed":{"_type":"snapshot","meta":{`)
	for i := range n {
		fmt.Fprintf(&b, `"project-%07d.json":{"length":%d,"version":%d},`, i, 900+i%3000, version(i))
	}
	b.WriteString(`"targets.json":{"version":1}},"version":7}}`)
	return b.Bytes()
}

func gunzip(t *testing.T, gz []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func TestGzipRoundTripsAndReuses(t *testing.T) {
	c := New()
	r := rand.New(rand.NewPCG(1, 2))
	doc := snapshotLike(100000, func(int) int { return 1 })
	for round := range 5 {
		gz := c.Gzip(doc)
		if got := gunzip(t, gz); !bytes.Equal(got, doc) {
			t.Fatalf("round %d: gunzip gives %d bytes, want the %d compressed", round, len(got), len(doc))
		}
		st := c.LastStats()
		if round > 0 && st.Deflate > len(doc)/10 {
			t.Errorf("round %d: deflated %d of %d bytes again after a small change", round, st.Deflate, len(doc))
		}
		if len(gz) > len(doc)/3 {
			t.Errorf("round %d: %d bytes gzipped to %d", round, len(doc), len(gz))
		}
		// The next version: a few entries change, one is inserted.
		bump := r.IntN(100000)
		doc = snapshotLike(100000, func(i int) int {
			if i == bump {
				return 2 + round
			}
			return 1
		})
		doc = bytes.Replace(doc, []byte(`"project-0050000.json"`), []byte(`"project-0050000-new.json":{"version":1},"project-0050000.json"`), 1)
	}
}

func TestGzipSmallAndEmpty(t *testing.T) {
	c := New()
	for _, doc := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("abc"), 100000)} {
		if got := gunzip(t, c.Gzip(doc)); !bytes.Equal(got, doc) {
			t.Fatalf("%d bytes do not round-trip", len(doc))
		}
	}
}

// FuzzGzip: any document, compressed after any other, decompresses to itself.
func FuzzGzip(f *testing.F) {
	f.Add([]byte("hello"), []byte("hello, world"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		c := New()
		c.Gzip(a)
		if got := gunzip(t, c.Gzip(b)); !bytes.Equal(got, b) {
			t.Fatal("does not round-trip")
		}
	})
}

func BenchmarkGzipIncremental(b *testing.B) {
	doc := snapshotLike(100000, func(int) int { return 1 })
	c := New()
	c.Gzip(doc)
	b.SetBytes(int64(len(doc)))
	for i := 0; b.Loop(); i++ {
		d := bytes.Clone(doc)
		copy(d[len(d)/2:], fmt.Sprintf(`"project-%07d.json":{"length":1,"version":9},`, i))
		c.Gzip(d)
	}
}
