package server

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// sealedMemfd returns a memfd holding raw that can no longer be written, grown or shrunk.
func sealedMemfd(raw []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("cairn-metadata", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return nil, fmt.Errorf("%w: memfd_create: %w", errNoMemfd, err)
	}
	if err != nil {
		return nil, fmt.Errorf("creating a metadata memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "cairn-metadata")
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing a metadata memfd: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing a metadata memfd: %w", err)
	}
	return f, nil
}
