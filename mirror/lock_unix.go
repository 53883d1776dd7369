//go:build unix

package mirror

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes the directory's import lock (an exclusive flock on DIR/.cairn-mirror.lock), so
// that two imports never interleave their checks and writes. It fails at once, rather than
// wait, when another import holds it.
func (d *Dir) Lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(d.root, ".cairn-mirror.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the mirror directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the mirror directory %s: another import is running (%w)", d.root, err)
	}
	return func() { f.Close() }, nil
}
