package server_test

import (
	"os"
	"testing"

	"github.com/cairn-dev/cairn/internal/testdb"
)

// dbURL is this package's own fresh database.
var dbURL string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, "server", &dbURL)) }
