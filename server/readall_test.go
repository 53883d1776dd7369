package server

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads the whole body whatever Content-Length announced, in pieces of any size,
// and passes on a read error.
func TestReadAll(t *testing.T) {
	body := strings.Repeat("0123456789", 100)
	for _, tc := range []struct {
		name   string
		length int64
	}{
		{"unknown length", -1},
		{"zero", 0},
		{"exact", int64(len(body))},
		{"announced shorter", 10},
		{"announced longer", int64(len(body)) * 2},
	} {
		for _, r := range []io.Reader{strings.NewReader(body), iotest.OneByteReader(strings.NewReader(body)), iotest.DataErrReader(strings.NewReader(body))} {
			got, err := readAll(r, tc.length)
			if err != nil || !bytes.Equal(got, []byte(body)) {
				t.Errorf("%s, %T: %d bytes, %v; want the %d bytes of the body", tc.name, r, len(got), err, len(body))
			}
		}
	}
	boom := errors.New("boom")
	if _, err := readAll(io.MultiReader(strings.NewReader(body), iotest.ErrReader(boom)), int64(len(body))); !errors.Is(err, boom) {
		t.Errorf("read error lost: %v", err)
	}
}
