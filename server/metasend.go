package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
)

// Metadata of sendfileMin bytes or more, at an immutable versioned URL, is sent with
// sendfile(2) instead of one Write of its bytes: nginx sends the 48 KB snapshot from the
// page cache and cairnd copied it into the socket (BENCHMARKS.md §1, run G5).
//
// The file sent is not the store's or the static directory's: not every replica has them
// (the store keeps files only from 256 KiB, the static directory is optional, written after
// the head moves and pruned), and a file on disk can be replaced or removed under a reader.
// Each version gets its own sealed memfd instead: written once from the bytes the cache
// holds (whose sha256 was checked when they were read), read back and checked against that
// sha256, then sealed so that nothing can change them. Linux's sendfile sends from the
// file's position, so requests in flight each need their own open file description: the
// memfd is reopened through /proc/self/fd, and a few of those are kept per version.
const (
	sendfileMin = 1024
	// sendSourcesMax and sendSourcesBytes bound the memfds (a second copy of each version's
	// bytes, in tmpfs pages) and so the descriptors: clients fetch the current snapshot and
	// the versions the current timestamp names, a handful at a time.
	sendSourcesMax   = 32
	sendSourcesBytes = 256 << 20
	// sendIdleMax is how many reopened descriptors a version keeps between requests.
	sendIdleMax = 8
)

// sendSources is the bounded set of versions that have a memfd, oldest first: a new one
// retires the oldest beyond the bounds (its metaFile makes a new one if asked again).
type sendSources struct {
	mu    sync.Mutex
	live  []*metaFile
	bytes int64
	// disabled is set after memfds could not be made or reopened here (no memfd_create, no
	// /proc): every request is then written from memory, as before.
	disabled bool
}

// sendSource is one version's memfd and its idle reopened descriptors.
type sendSource struct {
	mu      sync.Mutex
	memfd   *os.File
	size    int64
	idle    []*sendFD
	retired bool
}

// sendFD is a descriptor of its own (its own file position) with the reader passed to
// net/http, kept together so that a request allocates neither.
type sendFD struct {
	f  *os.File
	lr io.LimitedReader
}

// source returns f's memfd, making it if f has none; nil if memfds cannot be used here.
func (ss *sendSources) source(f *metaFile) *sendSource {
	if src := f.send.Load(); src != nil {
		return src
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if src := f.send.Load(); src != nil {
		return src
	}
	if ss.disabled {
		return nil
	}
	src, err := newSendSource(f.raw, f.sum)
	if err != nil {
		ss.disabled = errors.Is(err, errNoMemfd)
		return nil
	}
	for len(ss.live) > 0 && (len(ss.live) >= sendSourcesMax || ss.bytes+src.size > sendSourcesBytes) {
		old := ss.live[0]
		ss.live = ss.live[1:]
		if o := old.send.Swap(nil); o != nil {
			ss.bytes -= o.size
			o.retire()
		}
	}
	f.send.Store(src)
	ss.live = append(ss.live, f)
	ss.bytes += src.size
	return src
}

var errNoMemfd = errors.New("memfds cannot be used on this system")

// newSendSource makes a sealed memfd holding raw and checks it holds exactly raw, whose
// sha256 is sum.
func newSendSource(raw, sum []byte) (*sendSource, error) {
	m, err := sealedMemfd(raw)
	if err != nil {
		return nil, err
	}
	back := make([]byte, len(raw)+1)
	n, err := m.ReadAt(back, 0)
	if err != nil && err != io.EOF {
		m.Close()
		return nil, fmt.Errorf("reading back a metadata memfd: %w", err)
	}
	if got := sha256.Sum256(back[:n]); n != len(raw) || !bytes.Equal(got[:], sum) {
		m.Close()
		return nil, fmt.Errorf("a metadata memfd holds %d bytes of sha256 %x, not %d of %x", n, got, len(raw), sum)
	}
	return &sendSource{memfd: m, size: int64(len(raw))}, nil
}

// take returns a descriptor positioned at the start, or nil (retired, or no reopen).
func (s *sendSource) take() *sendFD {
	s.mu.Lock()
	if s.retired {
		s.mu.Unlock()
		return nil
	}
	var d *sendFD
	if n := len(s.idle); n > 0 {
		d = s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
	} else {
		// Under the lock: retire closes memfd, whose number could then name another file.
		f, err := os.Open("/proc/self/fd/" + strconv.FormatUint(uint64(s.memfd.Fd()), 10))
		s.mu.Unlock()
		if err != nil {
			return nil
		}
		d = &sendFD{f: f}
	}
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		d.f.Close()
		return nil
	}
	d.lr = io.LimitedReader{R: d.f, N: s.size}
	return d
}

// give returns a descriptor after a complete send; anything else closes it.
func (s *sendSource) give(d *sendFD, ok bool) {
	s.mu.Lock()
	if ok && !s.retired && len(s.idle) < sendIdleMax {
		d.lr.R = d.f
		s.idle = append(s.idle, d)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	d.f.Close()
}

// retire closes the memfd and the idle descriptors; those in use are closed when given back.
func (s *sendSource) retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired = true
	for _, d := range s.idle {
		d.f.Close()
	}
	s.idle = nil
	s.memfd.Close()
}

// sendBody writes a 200 with f's raw bytes by sendfile(2), the header already set, and
// reports whether it did; false means nothing was written (the caller writes the bytes).
// It needs net/http's own ResponseWriter, or a wrapper that keeps Flush and ReadFrom.
func (ss *sendSources) sendBody(w http.ResponseWriter, f *metaFile) bool {
	fl, ok := w.(http.Flusher)
	rf, ok2 := w.(io.ReaderFrom)
	if !ok || !ok2 {
		return false
	}
	src := ss.source(f)
	if src == nil {
		return false
	}
	d := src.take()
	if d == nil {
		return false
	}
	w.WriteHeader(http.StatusOK)
	// The header goes out on its own, so that net/http's ReadFrom hands the whole body to
	// sendfile instead of first copying 512 bytes through a buffer.
	fl.Flush()
	n, err := rf.ReadFrom(&d.lr)
	src.give(d, err == nil && n == src.size)
	return true
}
