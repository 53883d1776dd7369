package blobstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback starts writing a range of f to disk without waiting (Linux), so a later
// fsync of a large upload does not have it all to do at once.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
