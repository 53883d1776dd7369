package client

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// fixture is a fake server with one project whose maintainer key the test holds.
type fixture struct {
	srv     *clienttest.Server
	project string
	key     *clienttest.Key
	role    *metadata.Metadata[metadata.TargetsType] // latest published
}

// newFixture creates project with the given releases (version → file name → contents),
// published in order through NextProjectRole and SignRole.
func newFixture(t *testing.T, project string, claimed bool, releases ...release) *fixture {
	t.Helper()
	f := &fixture{srv: clienttest.New(t), project: project, key: clienttest.NewKey(t)}
	f.role = NewProjectRole(time.Now())
	raw, err := SignRole(f.role, f.key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.AddProject(project, []*metadata.Key{f.key.Public}, 1, claimed, raw)
	for _, r := range releases {
		f.release(t, r)
	}
	return f
}

type release struct {
	version string
	files   map[string]string
}

func (f *fixture) release(t *testing.T, r release) {
	t.Helper()
	var files []api.File
	for name, body := range r.files {
		sum := f.srv.PutBlob([]byte(body))
		files = append(files, api.File{Name: name, Length: int64(len(body)), SHA256: sum})
	}
	next, err := NextProjectRole(f.role, f.project, r.version, files, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := SignRole(next, f.key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.PublishRole(f.project, raw)
	f.role = next
}

func (f *fixture) repo(t *testing.T) *Repo {
	t.Helper()
	return openRepo(t, f.srv, t.TempDir())
}

func openRepo(t *testing.T, srv *clienttest.Server, dir string) *Repo {
	t.Helper()
	r, err := OpenRepo(RepoConfig{Server: srv.URL, TrustedRoot: srv.Root(), MetadataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
