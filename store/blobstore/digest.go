package blobstore

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"regexp"
	"strings"
)

// Digests name their algorithm ("sha256:<hex>", "sha512:<hex>"). Blobs of either
// algorithm live side by side, so a sha256 OCI layer and a release file with the same
// bytes are one blob.

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidSHA256 reports whether s is a lowercase hex SHA-256.
func ValidSHA256(s string) bool { return sha256HexRE.MatchString(s) }

var digestHexLen = map[string]int{"sha256": 64, "sha512": 128}

// ParseDigest splits a digest into its algorithm and lowercase hex, and checks both.
func ParseDigest(d string) (algo, hexsum string, err error) {
	algo, hexsum, ok := strings.Cut(d, ":")
	if !ok {
		return "", "", fmt.Errorf("digest %.80q is not <algorithm>:<hex>", d)
	}
	n, known := digestHexLen[algo]
	if !known {
		return "", "", fmt.Errorf("digest algorithm %.20q is not supported: use sha256 or sha512", algo)
	}
	if len(hexsum) != n || strings.Trim(hexsum, "0123456789abcdef") != "" {
		return "", "", fmt.Errorf("digest %.80q: a %s digest is %d lowercase hex digits", d, algo, n)
	}
	return algo, hexsum, nil
}

// NewDigester returns the hash of a supported algorithm.
func NewDigester(algo string) (hash.Hash, error) {
	switch algo {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("digest algorithm %.20q is not supported: use sha256 or sha512", algo)
}
