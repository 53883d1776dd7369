package oci_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/cairn-dev/cairn/internal/testdb"
)

var (
	dbURL     string
	sharedDir string // data directory of the registry the tests share
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		u, drop, err := testdb.Create("oci")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer drop()
		dbURL = u
		if sharedDir, err = os.MkdirTemp("", "cairn-oci-test-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(sharedDir)
		code := m.Run()
		if shared != nil {
			_ = shared.Close()
		}
		return code
	}())
}
