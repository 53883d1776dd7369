//go:build !linux

package cli

import (
	"os"
	"testing"
)

// openPTY opens a pseudo-terminal on Linux; elsewhere the test that needs one is skipped.
func openPTY(t *testing.T) (*os.File, func() string) {
	t.Skip("opens a Linux pseudo-terminal")
	return nil, nil
}
