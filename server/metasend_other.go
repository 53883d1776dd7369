//go:build !linux

package server

import "os"

// sealedMemfd: memfds are Linux's; elsewhere metadata is written from memory.
func sealedMemfd(raw []byte) (*os.File, error) { return nil, errNoMemfd }
