// Package gzchunk gzips successive versions of a large document incrementally.
//
// A snapshot at 100,000 projects is about 5 MB; gzip at its fastest level takes ~75 ms of
// CPU for it (BENCHMARKS.md), and every replica would pay that at every publish although
// a publish changes a few entries. Compressor cuts a document into chunks at boundaries
// chosen by its content (a gear rolling hash, so an insertion moves only the boundaries
// near it), deflates each chunk on its own ending with a sync flush, and reuses the
// deflated bytes of every chunk it deflated for the previous document. The chunks
// concatenate into one valid deflate stream (as pigz does), framed as one gzip member.
package gzchunk

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"hash/maphash"
	"sync"
)

// Chunk sizes: no boundary in the first minChunk bytes of a chunk, one on average every
// 1<<maskBits bytes after that, and always one at maxChunk.
const (
	minChunk = 48 << 10
	maskBits = 14
	maxChunk = 256 << 10
)

// Compressor holds the deflated chunks of the last document it compressed.
type Compressor struct {
	mu    sync.Mutex
	seed  maphash.Seed
	fw    *flate.Writer
	prev  map[uint64]chunk
	gear  *[256]uint64
	stats Stats
}

type chunk struct {
	raw, deflated []byte
}

// Stats says how much of the last document was reused.
type Stats struct {
	Chunks, Reused int
	Bytes, Deflate int // input bytes, and bytes deflated anew
}

// New returns a Compressor.
func New() *Compressor {
	fw, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level: no error
	return &Compressor{seed: maphash.MakeSeed(), fw: fw, gear: gearTable()}
}

// gearTable is the gear hash's table: fixed pseudo-random values (splitmix64), so that
// boundaries depend on the content only.
func gearTable() *[256]uint64 {
	var t [256]uint64
	x := uint64(0x9e3779b97f4a7c15)
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		t[i] = z ^ z>>31
	}
	return &t
}

// Gzip returns raw gzipped. Chunks equal to chunks of the previous document are not
// deflated again.
func (c *Compressor) Gzip(raw []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]byte, 0, len(raw)/6+64)
	// gzip header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
	out = append(out, 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255)
	next := make(map[uint64]chunk, len(c.prev))
	c.stats = Stats{Bytes: len(raw)}
	for start := 0; start < len(raw); {
		end := c.boundary(raw, start)
		piece := raw[start:end]
		h := maphash.Bytes(c.seed, piece)
		ch, ok := c.prev[h]
		if !ok || !bytes.Equal(ch.raw, piece) {
			ch = chunk{raw: piece, deflated: c.deflate(piece)}
			c.stats.Deflate += len(piece)
		} else {
			c.stats.Reused++
		}
		next[h] = ch
		out = append(out, ch.deflated...)
		c.stats.Chunks++
		start = end
	}
	// A final, empty block with fixed Huffman codes ends the deflate stream.
	out = append(out, 0x03, 0x00)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(raw))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(raw)))
	c.prev = next
	return out
}

// LastStats returns the Stats of the last Gzip call.
func (c *Compressor) LastStats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// boundary returns the end of the chunk that starts at start.
func (c *Compressor) boundary(raw []byte, start int) int {
	end := min(len(raw), start+maxChunk)
	i := start + minChunk
	if i >= end {
		return end
	}
	// The top bits: with a shifting hash, bit k depends on the last k+1 bytes only.
	const mask = (1<<maskBits - 1) << (64 - maskBits)
	var h uint64
	g := c.gear
	for ; i < end; i++ {
		h = h<<1 + g[raw[i]]
		if h&mask == 0 {
			return i + 1
		}
	}
	return end
}

// deflate compresses one chunk on its own and ends it with a sync flush: byte-aligned,
// not final, referring to nothing before it.
func (c *Compressor) deflate(piece []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(piece)/4 + 16)
	c.fw.Reset(&buf)
	// Writes and flushes to a bytes.Buffer cannot fail.
	_, _ = c.fw.Write(piece)
	_ = c.fw.Flush()
	return buf.Bytes()
}
