package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

func benchLeaves(n int) []Hash {
	hs := make([]Hash, n)
	for i := range hs {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		hs[i] = sha256.Sum256(b[:])
	}
	return hs
}

// BenchmarkMerkleBuild: loading the tree (a publisher's or replica's start, or reload).
func BenchmarkMerkleBuild(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		leaves := benchLeaves(n)
		b.Run(fmt.Sprintf("leaves=%d", n), func(b *testing.B) {
			for b.Loop() {
				Build(1, leaves)
			}
		})
	}
}

// BenchmarkMerkleApply: one publish's change to the tree (k role versions, one of them a
// new role), with the undo record that keeps the previous version provable, under the
// replica's limits (so pruning runs too).
func BenchmarkMerkleApply(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, k := range []int{1, 100} {
			b.Run(fmt.Sprintf("leaves=%d/changes=%d", n, k), func(b *testing.B) {
				t := Build(1, benchLeaves(n))
				lim := Limits{Keep: time.Hour, MaxVersions: 4096, MaxUndoNodes: 1 << 21}
				now := time.Unix(0, 0)
				ch := make([]Change, k)
				v := int64(1)
				for b.Loop() {
					v++
					for j := range ch {
						ch[j] = Change{Index: (uint64(v)*7919 + uint64(j)*104729) % t.Size(), Leaf: Hash{byte(v), byte(j)}}
					}
					ch[k-1] = Change{Index: t.Size(), Leaf: Hash{byte(v)}}
					if err := t.Apply(v, ch, now); err != nil {
						b.Fatal(err)
					}
					t.Prune(lim, now)
				}
			})
		}
	}
}

// BenchmarkMerkleProof: one inclusion proof, of the newest version and of a version 100
// publishes old (read through the undo records).
func BenchmarkMerkleProof(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		t := Build(1, benchLeaves(n))
		for v := int64(2); v <= 101; v++ {
			ch := make([]Change, 10)
			for j := range ch {
				ch[j] = Change{Index: uint64(v*1000+int64(j)*7) % uint64(n), Leaf: Hash{byte(v), byte(j)}}
			}
			if err := t.Apply(v, ch, time.Unix(0, 0)); err != nil {
				b.Fatal(err)
			}
		}
		for _, at := range []int64{101, 1} {
			b.Run(fmt.Sprintf("leaves=%d/age=%d", n, 101-at), func(b *testing.B) {
				i := uint64(0)
				for b.Loop() {
					i = (i + 7919) % uint64(n)
					if _, _, err := t.ProofAt(at, i); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMerkleVerify: what a client spends on one proof.
func BenchmarkMerkleVerify(b *testing.B) {
	leaves := make([]Hash, 1_000_000)
	l := Leaf{Role: "some-project", Version: 3, Length: 1234}
	h, _ := l.Hash()
	copy(leaves, benchLeaves(len(leaves)))
	leaves[123456] = h
	t := Build(1, leaves)
	_, p, _ := t.ProofAt(1, 123456)
	root := t.Root()
	for b.Loop() {
		if err := VerifyInclusion(root, 123456, l, p); err != nil {
			b.Fatal(err)
		}
	}
}
