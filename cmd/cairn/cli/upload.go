package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
)

// uploadResult is what 'cairn upload --output json' prints.
type uploadResult struct {
	api.SubmitResult
	Version string     `json:"version"`
	Files   []api.File `json:"files"`
}

func (a *app) uploadCommand() *cobra.Command {
	var (
		keyName string
		wait    time.Duration
		output  string
		attests []string
	)
	cmd := &cobra.Command{
		Use:   "upload NAME VERSION FILE... --key KEY",
		Short: "Upload and sign a new release of a project",
		Long: `upload publishes FILEs as release VERSION of project NAME. It refreshes and
verifies the project's TUF metadata, uploads the files, writes the next version of the
project's role metadata listing them (keeping every earlier release unchanged), signs it
with KEY and submits it, then waits up to --wait for it to be published.

File names become part of the release's paths, so they must be 1-200 of A-Z a-z 0-9
. _ + - starting with a letter or digit; a VERSION that was already released is refused.`,
		Args: cobra.MinimumNArgs(3),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			return a.upload(args[0], args[1], args[2:], keyName, wait, output, attests)
		}),
	}
	cmd.Flags().StringVar(&keyName, "key", "", "your signing key (required)")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the release to be published (0: do not wait)")
	cmd.Flags().StringArrayVar(&attests, "attest", nil, "bind this Sigstore bundle (FILE.sigstore.json) to the files it attests: its sha256 goes into their signed custom data, and it is attached once published (repeatable)")
	addOutputFlag(cmd, &output)
	cmd.MarkFlagRequired("key")
	return cmd
}

func (a *app) upload(project, version string, paths []string, keyName string, wait time.Duration, output string, attests []string) error {
	// Everything that can be checked locally is checked before the server is touched.
	files := make([]api.File, 0, len(paths))
	for _, p := range paths {
		if st, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return api.Errorf(api.CodeBadRequest, "release file %s does not exist; nothing was uploaded", p)
		} else if err == nil && st.IsDir() {
			return api.Errorf(api.CodeBadRequest, "%s is a directory: give the release files themselves; nothing was uploaded", p)
		}
		f := api.File{Name: filepath.Base(p)}
		if err := tufrepo.ValidateComponent("file name", f.Name, tufrepo.MaxFilenameLength); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		files = append(files, f)
	}
	if err := client.CheckRelease(project, version, withDummyDigests(files)); err != nil {
		return err
	}
	if err := a.requireToken(); err != nil {
		return err
	}
	for i, p := range paths {
		f, err := client.HashFile(p)
		if err != nil {
			return err
		}
		files[i] = f
	}
	kf, err := a.loadKey(keyName)
	if err != nil {
		return err
	}
	signer, err := a.openSigner(kf)
	if err != nil {
		return err
	}

	repo, pr, err := a.projectRole(project)
	if err != nil {
		return err
	}
	if err := requireMaintainerKey(pr, project, keyName, kf); err != nil {
		return err
	}
	a.noteThreshold(pr, project, "upload", keyName)
	bundles, err := a.readUploadBundles(repo, project, version, attests, files)
	if err != nil {
		return err
	}
	next, err := client.NextProjectRole(pr.Metadata, project, version, files, a.now())
	if err != nil {
		return err
	}
	if err := bindUploadBundles(next, bundles); err != nil {
		return err
	}
	ac, err := a.apiClient()
	if err != nil {
		return err
	}
	a.notef("Uploading %d file(s) for %s %s (role version %d → %d)\n", len(files), project, version, pr.Version(), next.Signed.Version)
	for i, f := range files {
		if err := a.uploadBlob(ac, paths[i], f); err != nil {
			return err
		}
	}
	res, err := a.signAndSubmitRole(ac, project, next, signer.Signer, wait)
	if err != nil {
		return err
	}
	if len(bundles) > 0 {
		if res.Status == api.StatusPublished {
			if err := a.postUploadBundles(ac, bundles); err != nil {
				return err
			}
		} else {
			a.notef("The bound attestations are attached once the release is published: run the same upload's bundles through the API then.\n")
		}
	}
	if output == "json" {
		return a.printJSON(uploadResult{SubmitResult: res, Version: version, Files: files})
	}
	switch res.Status {
	case api.StatusPublished:
		a.printf("Published %s %s (%d file(s)) as role version %d in snapshot %d.\n", project, version, len(files), res.RoleVersion, res.SnapshotVersion)
	case api.StatusPending:
		a.printf("Uploaded %s %s (%d file(s)). %s\n", project, version, len(files), describePending(res))
	default:
		a.printf("%s\n", describeSubmit(res))
	}
	return nil
}

// uploadBlob sends one file unless the server already has its blob.
func (a *app) uploadBlob(ac *client.API, path string, f api.File) error {
	have, err := ac.BlobExists(a.ctx, f.SHA256)
	if err != nil {
		return err
	}
	if have {
		a.notef("  %s: already on the server (sha256 %s)\n", f.Name, f.SHA256)
		return nil
	}
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	defer r.Close()
	// Without a bar the *os.File itself goes to the HTTP client, as before: no counting
	// layer on the default (non-terminal) path.
	body, done := a.trackProgress(f.Name, f.Length, r)
	res, err := ac.PutBlob(a.ctx, f.SHA256, body, f.Length)
	done(err == nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if res.Size != 0 && res.Size != f.Length {
		return api.Errorf(api.CodeLengthMismatch, "the server stored %d bytes for %s, which has %d: did the file change while uploading?", res.Size, path, f.Length)
	}
	a.notef("  %s: uploaded %d bytes (sha256 %s)\n", f.Name, f.Length, f.SHA256)
	return nil
}

// withDummyDigests lets CheckRelease validate names and the version before any file is
// read; the real digests replace these.
func withDummyDigests(files []api.File) []api.File {
	out := make([]api.File, len(files))
	for i, f := range files {
		f.SHA256 = "0000000000000000000000000000000000000000000000000000000000000000"
		out[i] = f
	}
	return out
}
