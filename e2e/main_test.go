// Package e2e runs the real cairnd on loopback against real TUF clients: go-tuf v2's
// updater and tuf-js (Node), and attacks it with the powers of someone who has broken into
// the server.
package e2e

import (
	"os"
	"testing"

	"github.com/cairn-dev/cairn/internal/testdb"
)

var dbURL string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, "e2e", &dbURL)) }
