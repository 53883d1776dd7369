package merkle

import (
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func proofVerify(root Root, i uint64, leaf []byte, p [][]byte) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, i, root.Size, leaf, p, root.Hash[:])
}
