package tufrepo

import (
	"fmt"

	"github.com/cairn-dev/cairn/attest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// AttestationKeys adds to into the maintainer keys of project's delegation (keyIDs, with
// their keys from keys) that key-based attestations may be signed with. A key ID already
// in into keeps its first project: callers add projects in name order, so server and
// client name the same one.
func AttestationKeys(into attest.MaintainerKeys, project string, keyIDs []string, keys map[string]*metadata.Key) error {
	for _, id := range keyIDs {
		if _, ok := into[id]; ok {
			continue
		}
		k, ok := keys[id]
		if !ok {
			return fmt.Errorf("the delegation of %s names key %s but does not list it", project, id)
		}
		pub, err := k.ToPublicKey()
		if err != nil {
			return fmt.Errorf("key %s of %s: %w", id, project, err)
		}
		into[id] = attest.MaintainerKey{Project: project, KeyID: id, Public: pub}
	}
	return nil
}
