package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"io"

	"github.com/sigstore/sigstore/pkg/signature"
)

// ed25519Signer is sigstore's Ed25519 signer whose crypto.Signer Sign honours
// ed25519.Options, as ed25519.PrivateKey does: the transparency log (package tlog) signs
// its statements with the online key as Ed25519ph, the only Ed25519 scheme Rekor v2
// verifies. SignMessage (what TUF metadata is signed with) stays pure Ed25519.
type ed25519Signer struct {
	*signature.ED25519Signer
	priv ed25519.PrivateKey
}

func newED25519Signer(priv ed25519.PrivateKey) (signature.Signer, error) {
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		return nil, err
	}
	return ed25519Signer{ED25519Signer: s, priv: priv}, nil
}

// Sign signs message as ed25519.PrivateKey.Sign does: pure Ed25519 for crypto.Hash(0) (or
// nil opts), Ed25519ph for &ed25519.Options{Hash: crypto.SHA512} over a SHA-512 digest.
func (s ed25519Signer) Sign(rand io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		opts = crypto.Hash(0)
	}
	return s.priv.Sign(rand, message, opts)
}
