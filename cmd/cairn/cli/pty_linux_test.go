//go:build linux

package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what cairn writes to tty, the test reads from the
// returned function once cairn is done.
func openPTY(t *testing.T) (tty *os.File, output func() string) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the terminal side: %v", err)
	}
	// A new pseudo-terminal has no size; a terminal window has one.
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 120}); err != nil {
		t.Fatalf("sizing the pseudo-terminal: %v", err)
	}
	var (
		buf  bytes.Buffer
		wg   sync.WaitGroup
		once sync.Once
	)
	wg.Add(1)
	go func() { // drained all the time, or cairn blocks once the terminal's buffer is full
		defer wg.Done()
		io.Copy(&buf, ptmx) // ends with EIO when the terminal side is closed
	}()
	finish := func() {
		once.Do(func() {
			tty.Close()
			wg.Wait()
			ptmx.Close()
		})
	}
	t.Cleanup(finish)
	return tty, func() string { finish(); return buf.String() }
}
