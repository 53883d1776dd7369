package blobstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// createLockedAnonymous makes the new file in dir with no name (O_TMPFILE), locks it, and
// only then links it under a name made from pattern (os.CreateTemp's form): there is no
// instant in which collection can see it unlocked. ok is false when the file system cannot
// make unnamed files (NFS, some FUSE, old kernels) or /proc is not mounted; the caller
// then falls back to create-then-lock.
func createLockedAnonymous(dir, pattern string) (f *os.File, ok bool, err error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("creating a file in %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			unix.Close(fd)
		}
	}()
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, true, fmt.Errorf("locking a new file in %s: %w", dir, err)
	}
	// Linking through /proc needs no privilege, unlike linkat's AT_EMPTY_PATH.
	// No stat of it first: this runs for every upload, and a missing /proc shows as
	// ENOENT from linkat (dir was just opened, so it is not the missing part).
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	prefix, suffix, _ := strings.Cut(pattern, "*")
	for range 10 {
		var r [8]byte
		_, _ = rand.Read(r[:])
		name := filepath.Join(dir, prefix+hex.EncodeToString(r[:])+suffix)
		err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if errors.Is(err, unix.ENOENT) {
			return nil, false, nil // /proc is not mounted: create, then lock
		}
		if err != nil {
			return nil, true, fmt.Errorf("naming a new file %s: %w", name, err)
		}
		done = true
		return os.NewFile(uintptr(fd), name), true, nil
	}
	return nil, true, fmt.Errorf("naming a new file in %s: 10 random names were taken", dir)
}
