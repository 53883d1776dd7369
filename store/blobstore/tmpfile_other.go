//go:build !linux

package blobstore

import (
	"errors"
	"os"
)

// createLockedAnonymous: unnamed files are Linux's (O_TMPFILE); elsewhere the caller
// creates, then locks, then checks the name.
func createLockedAnonymous(string, string) (*os.File, bool, error) { return nil, false, nil }

// createUnnamed: never (O_TMPFILE is Linux's), so Put takes the named path.
func createUnnamed(string) (*os.File, bool, error) { return nil, false, nil }

var errNoUnnamed = errors.New("files without a name are Linux's (O_TMPFILE)")

func linkUnnamed(*os.File, string) error { return errNoUnnamed }

func (t *Temp) nameLocked(*os.File, string) (string, error) { return "", errNoUnnamed }
