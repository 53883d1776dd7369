package oci_test

import (
	"os"
	"testing"

	"github.com/cairn-dev/cairn/internal/testdb"
)

var dbURL string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, "oci", &dbURL)) }
