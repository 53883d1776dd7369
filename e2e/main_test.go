// Package e2e runs the real cairnd on loopback against real TUF clients: go-tuf v2's
// updater and tuf-js (Node), and attacks it with the powers of someone who has broken into
// the server.
package e2e

import (
	"net/http"
	"os"
	"testing"

	"github.com/cairn-dev/cairn/internal/testdb"
)

var dbURL string

func TestMain(m *testing.M) {
	if u := os.Getenv(browserURLEnv); u != "" {
		os.Exit(fakeBrowser(u))
	}
	os.Exit(testdb.Main(m, "e2e", &dbURL))
}

// browserURLEnv makes the test binary act as a browser (fakeBrowserOnPath).
const browserURLEnv = "CAIRN_E2E_BROWSER_URL"

// fakeBrowser opens u as a browser would for a login: it follows the redirects, which
// end at the CLI's loopback listener.
func fakeBrowser(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 1
	}
	resp.Body.Close()
	return 0
}
