package tufrepo

import (
	"fmt"

	"github.com/cairn-dev/cairn/api"
)

// Proposal is a submitted project role, read (strictly, once) before the project's state
// is known, so that the blobs it names can be looked up together with that state
// (store.DB.UploadStateWithBlobs) instead of in a round trip of their own. A document
// that does not read is kept with its error, which ValidateRead returns in
// ValidateProposal's order.
type Proposal struct {
	raw []byte
	pr  *projectRole
	err error
}

// ReadProposal reads a submitted role of project.
func ReadProposal(raw []byte, project string) *Proposal {
	p := &Proposal{raw: raw}
	if len(raw) > MaxProjectRoleBytes {
		p.err = api.Errorf(api.CodeTooLarge, "project role metadata is %d bytes; at most %d are allowed", len(raw), MaxProjectRoleBytes)
		return p
	}
	p.pr, p.err = readProjectRole(raw, fmt.Sprintf("project role metadata for %q", project))
	return p
}

// TargetSums returns the path and sha256 of each target that lists exactly one sha256:
// the blobs validation may look up. Nothing if the document did not read.
func (p *Proposal) TargetSums() (paths []string, sums [][]byte) {
	if p.err != nil {
		return nil, nil
	}
	ts := p.pr.Signed.Targets
	paths, sums = make([]string, 0, len(ts)), make([][]byte, 0, len(ts))
	for i := range ts {
		if sum, err := targetSHA256(ts[i].Path, ts[i].Hashes); err == nil {
			paths, sums = append(paths, ts[i].Path), append(sums, sum)
		}
	}
	return paths, sums
}
