// Package merkle is Cairn's Merkle snapshot (TUF TAP 16): an RFC 6962 tree whose leaves
// are (role, version, length, sha256 of the role's exact signed bytes), one per role the
// classic snapshot lists, in a stable order (a role keeps the index it got when it first
// appeared). The timestamp carries the tree's root and size; a client proves a role's leaf
// against that root with an inclusion proof of O(log n) hashes instead of downloading a
// snapshot of O(n) entries.
//
// Hashing and proofs are github.com/transparency-dev/merkle's (RFC 6962: leaf prefix 0x00,
// node prefix 0x01). The package does no I/O.
package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Hash is a SHA-256 node or leaf hash.
type Hash = [sha256.Size]byte

// FieldName is the custom field of timestamp's "signed" object that carries the tree:
// {"root": "<hex>", "size": N}. Standard TUF clients keep it as an unrecognised field
// (it is covered by the signature) and ignore it.
const FieldName = "x-cairn-merkle"

// leafFormat is the first byte of every encoded leaf: a new encoding gets a new value.
const leafFormat = 1

// MaxRoleName bounds a leaf's role name (its length is encoded in two bytes).
const MaxRoleName = 1024

// MaxProofHashes bounds an inclusion proof: a tree of 2^63 leaves needs 63.
const MaxProofHashes = 64

// Leaf is what the tree commits to for one role.
type Leaf struct {
	Role    string
	Version int64
	Length  int64
	SHA256  Hash
}

// Encode returns the leaf's canonical bytes: one format byte (1), the role name's length
// as a big-endian uint16 and its bytes, version and length as big-endian uint64, and the
// 32 bytes of sha256. Every field has a fixed size or a length prefix, so two different
// leaves never encode alike.
func (l Leaf) Encode() ([]byte, error) {
	if l.Role == "" || len(l.Role) > MaxRoleName {
		return nil, fmt.Errorf("merkle leaf: role name of %d bytes (1 to %d allowed)", len(l.Role), MaxRoleName)
	}
	if l.Version < 1 || l.Length < 0 {
		return nil, fmt.Errorf("merkle leaf for %q: version %d and length %d (version ≥ 1, length ≥ 0 required)", l.Role, l.Version, l.Length)
	}
	b := make([]byte, 0, 1+2+len(l.Role)+8+8+sha256.Size)
	b = append(b, leafFormat)
	b = binary.BigEndian.AppendUint16(b, uint16(len(l.Role)))
	b = append(b, l.Role...)
	b = binary.BigEndian.AppendUint64(b, uint64(l.Version))
	b = binary.BigEndian.AppendUint64(b, uint64(l.Length))
	b = append(b, l.SHA256[:]...)
	return b, nil
}

// Hash returns the RFC 6962 leaf hash of the encoded leaf.
func (l Leaf) Hash() (Hash, error) {
	enc, err := l.Encode()
	if err != nil {
		return Hash{}, err
	}
	return Hash(rfc6962.DefaultHasher.HashLeaf(enc)), nil
}

// Root is the tree a timestamp commits to.
type Root struct {
	Hash Hash
	Size uint64
}

// Field returns the value of the timestamp's FieldName field.
func (r Root) Field() map[string]any {
	return map[string]any{"root": hex.EncodeToString(r.Hash[:]), "size": r.Size}
}

// ParseField reads the FieldName field as a JSON decoder left it (map[string]any with
// float64 or json.Number numbers). Anything but exactly {"root": 64 hex digits,
// "size": integer ≥ 1} is an error.
func ParseField(v any) (Root, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Root{}, fmt.Errorf("%s is not an object", FieldName)
	}
	if len(m) != 2 {
		return Root{}, fmt.Errorf("%s must have exactly the fields root and size", FieldName)
	}
	var r Root
	s, ok := m["root"].(string)
	raw, err := hex.DecodeString(s)
	if !ok || err != nil || len(raw) != sha256.Size {
		return Root{}, fmt.Errorf("%s.root is not 64 hex digits", FieldName)
	}
	copy(r.Hash[:], raw)
	switch n := m["size"].(type) {
	case float64:
		if n < 1 || n != float64(uint64(n)) || n > 1<<53 {
			return Root{}, fmt.Errorf("%s.size %v is not a positive integer", FieldName, n)
		}
		r.Size = uint64(n)
	case interface{ Int64() (int64, error) }:
		i, err := n.Int64()
		if err != nil || i < 1 {
			return Root{}, fmt.Errorf("%s.size is not a positive integer", FieldName)
		}
		r.Size = uint64(i)
	default:
		return Root{}, fmt.Errorf("%s.size is not a number", FieldName)
	}
	return r, nil
}

// ErrProof is wrapped by every failed inclusion proof check.
var ErrProof = errors.New("merkle inclusion proof does not verify")

// VerifyInclusion checks that leaf is at index in the tree root commits to, with the
// RFC 6962 proof hashes.
func VerifyInclusion(root Root, index uint64, leaf Leaf, hashes []Hash) error {
	if len(hashes) > MaxProofHashes {
		return fmt.Errorf("%w: %d hashes (at most %d)", ErrProof, len(hashes), MaxProofHashes)
	}
	if index >= root.Size {
		return fmt.Errorf("%w: index %d is outside a tree of %d leaves", ErrProof, index, root.Size)
	}
	lh, err := leaf.Hash()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProof, err)
	}
	p := make([][]byte, len(hashes))
	for i := range hashes {
		p[i] = hashes[i][:]
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, root.Size, lh[:], p, root.Hash[:]); err != nil {
		return fmt.Errorf("%w: %w", ErrProof, err)
	}
	return nil
}
