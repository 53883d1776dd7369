package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// signAndSubmitRole signs the project's next role version with signer, submits it and
// waits for its publication (submitAndAwait).
func (a *app) signAndSubmitRole(ac *client.API, project string, next *metadata.Metadata[metadata.TargetsType], signer signature.Signer, wait time.Duration) (api.SubmitResult, error) {
	raw, err := client.SignRole(next, signer)
	if err != nil {
		return api.SubmitResult{}, err
	}
	return a.submitAndAwait(ac, project, wait, func(serverWait time.Duration) (api.SubmitResult, error) {
		return ac.SubmitRole(a.ctx, project, raw, serverWait)
	})
}

// errWaitEnded marks a wait for publication that ran out of time, which is not a failure:
// the server has accepted the release.
var errWaitEnded = errors.New("wait ended")

func (a *app) waitPublished(ac *client.API, project string, version int64, d time.Duration) (api.SubmitResult, error) {
	ctx, cancel := context.WithTimeout(a.ctx, d)
	defer cancel()
	res, err := ac.WaitPublished(ctx, project, version, time.Second)
	if err != nil && ctx.Err() != nil && a.ctx.Err() == nil {
		return res, errWaitEnded
	}
	return res, err
}

// submitAndAwait sends a role version (or a signature on one) with submit, which may let
// the server hold its answer for up to 30 seconds of wait, then waits out the rest of wait
// for publication.
func (a *app) submitAndAwait(ac *client.API, project string, wait time.Duration, submit func(serverWait time.Duration) (api.SubmitResult, error)) (api.SubmitResult, error) {
	serverWait := min(wait, 30*time.Second)
	res, err := submit(serverWait)
	if err != nil {
		return res, err
	}
	return a.awaitPublication(ac, project, res, wait, serverWait)
}

// awaitPublication follows a submission the server accepted: a pending proposal is
// final for now; a staged version is waited for until wait (of which the server already
// held the answer for serverWait) has passed.
func (a *app) awaitPublication(ac *client.API, project string, res api.SubmitResult, wait, serverWait time.Duration) (api.SubmitResult, error) {
	if res.Status != api.StatusStaged || wait <= serverWait {
		return res, nil
	}
	a.notef("Role version %d is staged; waiting for publication…\n", res.RoleVersion)
	r, err := a.waitPublished(ac, project, res.RoleVersion, wait-serverWait)
	switch {
	case err == nil:
		return r, nil
	case errors.Is(err, errWaitEnded):
		return res, nil
	}
	return res, err
}

// describePending says that a role version waits for co-signers, and what to do.
func describePending(res api.SubmitResult) string {
	s := fmt.Sprintf("Role version %d of %s is pending: %d of %d maintainer signatures; ask a co-maintainer to run `cairn sign %s`.",
		res.RoleVersion, res.Project, res.Signatures, res.Threshold, res.Project)
	if res.RoleVersion == 1 {
		s += " Clients see the project once enough maintainers have signed."
	}
	return s
}

// describeSubmit says in words where a submission stands.
func describeSubmit(res api.SubmitResult) string {
	if res.Status == api.StatusPending {
		return describePending(res)
	}
	if res.Status == api.StatusPublished {
		return fmt.Sprintf("Role version %d of %s is published in snapshot %d.", res.RoleVersion, res.Project, res.SnapshotVersion)
	}
	return fmt.Sprintf("Role version %d of %s is %s: the server accepted it and will publish it in its next snapshot.", res.RoleVersion, res.Project, res.Status)
}
