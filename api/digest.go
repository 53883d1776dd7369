package api

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"strings"
)

// Digest is a content digest as OCI and Cairn write it, "<algorithm>:<lowercase hex>",
// for the algorithms Cairn stores: sha256 and sha512. It is the one digest type, and
// ParseDigest the one parser, of the server, the blob store and the CLI.
type Digest struct {
	Algorithm string
	Hex       string
}

// String is "<algorithm>:<hex>".
func (d Digest) String() string { return d.Algorithm + ":" + d.Hex }

// Hash returns a new hash of d's algorithm (sha256 for the zero Digest).
func (d Digest) Hash() hash.Hash {
	if d.Algorithm == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// DigestAlgorithms are the algorithms ParseDigest reads.
func DigestAlgorithms() []string { return []string{"sha256", "sha512"} }

// digestHexLen is the hex length of each supported algorithm's digest.
func digestHexLen(algo string) int {
	switch algo {
	case "sha256":
		return 64
	case "sha512":
		return 128
	}
	return 0
}

// ParseDigest reads "sha256:<64 lowercase hex>" or "sha512:<128 lowercase hex>". Its
// error (bad_request) says which part is wrong; callers that answer in another format
// (the OCI registry's DIGEST_INVALID) wrap it.
func ParseDigest(s string) (Digest, error) {
	algo, hexsum, ok := strings.Cut(s, ":")
	if !ok {
		return Digest{}, Errorf(CodeBadRequest, "digest %.80q is not <algorithm>:<hex>", s)
	}
	n := digestHexLen(algo)
	if n == 0 {
		return Digest{}, Errorf(CodeBadRequest, "digest algorithm %.20q is not supported: use sha256 or sha512", algo)
	}
	if len(hexsum) != n || !isLowerHex(hexsum) {
		return Digest{}, Errorf(CodeBadRequest, "digest %.80q: a %s digest is %d lowercase hex digits", s, algo, n)
	}
	return Digest{Algorithm: algo, Hex: hexsum}, nil
}

// ValidSHA256Hex reports whether s is a SHA-256 digest in lowercase hex, without the
// algorithm prefix (how release files, bundles and key IDs are named).
func ValidSHA256Hex(s string) bool { return len(s) == 64 && isLowerHex(s) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
