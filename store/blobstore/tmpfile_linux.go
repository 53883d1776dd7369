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
	fd, ok, err := openUnnamed(dir)
	if !ok || err != nil {
		return nil, ok, err
	}
	name, ok, err := lockAndName(fd, dir, pattern)
	if !ok || err != nil {
		unix.Close(fd)
		return nil, ok, err
	}
	return os.NewFile(uintptr(fd), name), true, nil
}

// createUnnamed makes a new file in dir with no name (O_TMPFILE), for linkUnnamed to
// place once it is complete; ok is false where the file system cannot.
func createUnnamed(dir string) (*os.File, bool, error) {
	fd, ok, err := openUnnamed(dir)
	if !ok || err != nil {
		return nil, ok, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), true, nil
}

// linkUnnamed names f, a file createUnnamed made, path; the error is fs.ErrExist when
// path is taken and fs.ErrNotExist when its directory (or /proc) is missing.
func linkUnnamed(f *os.File, path string) error {
	return linkFD(int(f.Fd()), path)
}

// nameLocked locks f, a file createUnnamed made in t's directory, and links it under a
// name made from pattern, which it returns.
func (t *Temp) nameLocked(f *os.File, pattern string) (string, error) {
	name, ok, err := lockAndName(int(f.Fd()), t.dir, pattern)
	if err == nil && !ok {
		err = errors.New("/proc/self/fd is missing")
	}
	if err != nil {
		return "", err
	}
	return name, nil
}

func openUnnamed(dir string) (int, bool, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return -1, false, nil
	}
	if err != nil {
		return -1, true, fmt.Errorf("creating a file in %s: %w", dir, err)
	}
	return fd, true, nil
}

// linkFD links the file of fd, which has no name or another, at path. Linking through
// /proc needs no privilege, unlike linkat's AT_EMPTY_PATH.
func linkFD(fd int, path string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
}

// lockAndName locks the file of fd and then links it in dir under a name made from
// pattern. ok is false when /proc is not mounted. No stat of /proc first: this runs for
// every upload, and a missing /proc shows as ENOENT from linkat (dir was just opened, so
// it is not the missing part).
func lockAndName(fd int, dir, pattern string) (name string, ok bool, err error) {
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return "", true, fmt.Errorf("locking a new file in %s: %w", dir, err)
	}
	prefix, suffix, _ := strings.Cut(pattern, "*")
	for range 10 {
		var r [8]byte
		_, _ = rand.Read(r[:])
		name := filepath.Join(dir, prefix+hex.EncodeToString(r[:])+suffix)
		err := linkFD(fd, name)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if errors.Is(err, unix.ENOENT) {
			return "", false, nil // /proc is not mounted: create, then lock
		}
		if err != nil {
			return "", true, fmt.Errorf("naming a new file %s: %w", name, err)
		}
		return name, true, nil
	}
	return "", true, fmt.Errorf("naming a new file in %s: 10 random names were taken", dir)
}
