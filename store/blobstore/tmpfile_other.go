//go:build !linux

package blobstore

import "os"

// createLockedAnonymous: unnamed files are Linux's (O_TMPFILE); elsewhere the caller
// creates, then locks, then checks the name.
func createLockedAnonymous(string, string) (*os.File, bool, error) { return nil, false, nil }
