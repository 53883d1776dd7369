package client

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/mirror"
)

// BundleAsOf reads the export time every expiry check of --as-of-bundle uses: a document
// that parsers could read as two different times is refused, a plain one is read.
func TestBundleAsOfReadsOneExportTime(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	recent, old := now.Add(-time.Hour).Format(time.RFC3339), now.Add(-400*24*time.Hour).Format(time.RFC3339)
	tests := []struct {
		name, body, wantErr string
	}{
		{"plain", `{"exported_at":"` + recent + `"}`, ""},
		{"duplicate key", `{"exported_at":"` + old + `","exported_at":"` + recent + `"}`, "does not name the bundle's export time"},
		{"case variant", `{"exported_at":"` + old + `","Exported_At":"` + recent + `"}`, "does not name the bundle's export time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/"+mirror.InfoPath {
					http.NotFound(w, r)
					return
				}
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			r, err := OpenRepo(RepoConfig{Server: srv.URL, TrustedRoot: clienttest.New(t).Root(), MetadataDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.BundleAsOf(ctx(t), now, 0)
			if tc.wantErr == "" {
				if err != nil || !got.Equal(now.Add(-time.Hour)) {
					t.Fatalf("BundleAsOf = %v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("BundleAsOf = %v, %v; want an error containing %q", got, err, tc.wantErr)
			}
		})
	}
}
