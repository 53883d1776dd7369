package merkle

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

func leafHash(t testing.TB, role string, v int64) Hash {
	t.Helper()
	h, err := Leaf{Role: role, Version: v, Length: 100 + v, SHA256: sha256.Sum256([]byte(fmt.Sprint(role, v)))}.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// reference builds the same tree with transparency-dev's in-memory reference tree.
func reference(leaves []Hash) *testonly.Tree {
	ref := testonly.New(rfc6962.DefaultHasher)
	for _, l := range leaves {
		ref.Append(l[:])
	}
	return ref
}

// TestTreeMatchesReferenceAcrossVersions changes and appends leaves over many versions and
// checks every kept version's root and proofs against a reference tree built from scratch.
func TestTreeMatchesReferenceAcrossVersions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var leaves []Hash
	for i := range 5 {
		leaves = append(leaves, leafHash(t, fmt.Sprint("r", i), 1))
	}
	tr := Build(1, leaves)
	history := map[int64][]Hash{1: append([]Hash(nil), leaves...)}
	now := time.Unix(0, 0)
	for v := int64(2); v <= 40; v++ {
		var ch []Change
		for range rng.IntN(4) {
			i := rng.Uint64N(uint64(len(leaves)))
			leaves[i] = leafHash(t, fmt.Sprint("r", i), v)
			ch = append(ch, Change{Index: i, Leaf: leaves[i]})
		}
		for range rng.IntN(3) {
			leaves = append(leaves, leafHash(t, fmt.Sprint("r", len(leaves)), 1))
			ch = append(ch, Change{Index: uint64(len(leaves) - 1), Leaf: leaves[len(leaves)-1]})
		}
		if err := tr.Apply(v, ch, now); err != nil {
			t.Fatal(err)
		}
		history[v] = append([]Hash(nil), leaves...)
	}
	for v, ls := range history {
		ref := reference(ls)
		root, err := tr.RootAt(v)
		if err != nil {
			t.Fatal(err)
		}
		if root.Size != uint64(len(ls)) || string(root.Hash[:]) != string(ref.Hash()) {
			t.Fatalf("version %d: root %x size %d, reference %x size %d", v, root.Hash, root.Size, ref.Hash(), len(ls))
		}
		for i := range ls {
			size, hs, err := tr.ProofAt(v, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			refProof, _ := ref.InclusionProof(uint64(i), size)
			if len(refProof) != len(hs) {
				t.Fatalf("version %d leaf %d: %d proof hashes, reference %d", v, i, len(hs), len(refProof))
			}
			for j := range hs {
				if string(hs[j][:]) != string(refProof[j]) {
					t.Fatalf("version %d leaf %d: proof hash %d differs from the reference", v, i, j)
				}
			}
			if err := verifyHash(root, uint64(i), ls[i], hs); err != nil {
				t.Fatalf("version %d leaf %d: %v", v, i, err)
			}
		}
	}
}

func verifyHash(root Root, i uint64, leaf Hash, hs []Hash) error {
	p := make([][]byte, len(hs))
	for j := range hs {
		p[j] = hs[j][:]
	}
	return verifyRaw(root, i, leaf[:], p)
}

func TestApplyRefusesBadChanges(t *testing.T) {
	tr := Build(1, []Hash{leafHash(t, "a", 1)})
	for _, tc := range []struct {
		name    string
		version int64
		ch      []Change
	}{
		{"same version", 1, nil},
		{"older version", 0, nil},
		{"leaf gap", 2, []Change{{Index: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tr.Root()
			if err := tr.Apply(tc.version, tc.ch, time.Now()); err == nil {
				t.Fatal("accepted")
			}
			if tr.Root() != before || tr.Version() != 1 {
				t.Fatal("a refused Apply changed the tree")
			}
		})
	}
}

func TestPruneBoundsVersions(t *testing.T) {
	tr := Build(1, []Hash{leafHash(t, "a", 1), leafHash(t, "b", 1)})
	t0 := time.Unix(1000, 0)
	for v := int64(2); v <= 10; v++ {
		if err := tr.Apply(v, []Change{{Index: 0, Leaf: leafHash(t, "a", v)}}, t0.Add(time.Duration(v)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	tr.Prune(Limits{Keep: time.Hour, MaxVersions: 4, MaxUndoNodes: 1 << 20}, t0.Add(20*time.Second))
	if n, _ := tr.Kept(); n != 4 || tr.Oldest() != 6 {
		t.Fatalf("kept %d versions, oldest %d; want 4, 6", n, tr.Oldest())
	}
	if _, err := tr.RootAt(5); !errors.Is(err, ErrNotKept) {
		t.Fatalf("version 5 after pruning: %v", err)
	}
	// Keep: versions replaced more than 5 s before now go.
	tr.Prune(Limits{Keep: 5 * time.Second, MaxVersions: 100, MaxUndoNodes: 1 << 20}, t0.Add(14*time.Second))
	if tr.Oldest() != 9 {
		t.Fatalf("oldest %d after a 5 s keep at t+14 s; want 9", tr.Oldest())
	}
	tr.Prune(Limits{Keep: time.Hour, MaxVersions: 100, MaxUndoNodes: 0}, t0)
	if n, nodes := tr.Kept(); n != 0 || nodes != 0 || tr.Oldest() != 10 {
		t.Fatalf("kept %d versions (%d nodes) with no node budget", n, nodes)
	}
	if _, err := tr.RootAt(10); err != nil {
		t.Fatalf("the newest version must stay: %v", err)
	}
}

// TestLeafEncodingIsUnambiguous: fields that would run together in a naive encoding
// give different leaves.
func TestLeafEncodingIsUnambiguous(t *testing.T) {
	a, _ := Leaf{Role: "ab", Version: 1, Length: 2}.Encode()
	b, _ := Leaf{Role: "a", Version: 1, Length: 2}.Encode()
	if string(a) == string(b) {
		t.Fatal("different roles encode alike")
	}
	for _, bad := range []Leaf{{Role: "", Version: 1}, {Role: "a", Version: 0}, {Role: "a", Version: 1, Length: -1}, {Role: string(make([]byte, MaxRoleName+1)), Version: 1}} {
		if _, err := bad.Encode(); err == nil {
			t.Fatalf("encoded %+v", bad)
		}
	}
}

func TestVerifyInclusion(t *testing.T) {
	var leaves []Leaf
	var hs []Hash
	for i := range 7 {
		l := Leaf{Role: fmt.Sprint("role", i), Version: int64(i + 1), Length: 10, SHA256: sha256.Sum256([]byte{byte(i)})}
		h, _ := l.Hash()
		leaves, hs = append(leaves, l), append(hs, h)
	}
	tr := Build(1, hs)
	root := tr.Root()
	_, p, err := tr.ProofAt(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(root, 3, leaves[3], p); err != nil {
		t.Fatal(err)
	}
	older := leaves[3]
	older.Version--
	swapped := leaves[3]
	swapped.SHA256[0] ^= 1
	other := root
	other.Hash[0] ^= 1
	for name, tc := range map[string]struct {
		root  Root
		index uint64
		leaf  Leaf
	}{
		"older version": {root, 3, older},
		"other bytes":   {root, 3, swapped},
		"other root":    {other, 3, leaves[3]},
		"other index":   {root, 4, leaves[3]},
		"out of range":  {root, 7, leaves[3]},
	} {
		if err := VerifyInclusion(tc.root, tc.index, tc.leaf, p); !errors.Is(err, ErrProof) {
			t.Errorf("%s: %v, want ErrProof", name, err)
		}
	}
}

func TestParseField(t *testing.T) {
	r := Root{Size: 3}
	r.Hash[0] = 0xab
	raw, _ := json.Marshal(r.Field())
	var v any
	_ = json.Unmarshal(raw, &v)
	got, err := ParseField(v)
	if err != nil || got != r {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{`[]`, `{"root":"ab","size":3}`, `{"root":"` + fmt.Sprintf("%064x", 1) + `","size":0}`, `{"root":"` + fmt.Sprintf("%064x", 1) + `","size":1.5}`, `{"root":"` + fmt.Sprintf("%064x", 1) + `","size":1,"x":1}`} {
		var v any
		_ = json.Unmarshal([]byte(bad), &v)
		if _, err := ParseField(v); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func verifyRaw(root Root, i uint64, leaf []byte, p [][]byte) error {
	return proofVerify(root, i, leaf, p)
}

// TestApplyJumpsForward: after a publish that jumps the version forward (restore
// recovery), the versions before and after the jump are provable and the skipped ones are
// not kept (they never existed).
func TestApplyJumpsForward(t *testing.T) {
	leaves := []Hash{leafHash(t, "a", 1), leafHash(t, "b", 1)}
	tr := Build(5, leaves)
	before := tr.Root()
	if err := tr.Apply(1000, []Change{{Index: 1, Leaf: leafHash(t, "b", 2)}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Apply(1001, []Change{{Index: 0, Leaf: leafHash(t, "a", 2)}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r, err := tr.RootAt(5); err != nil || r != before {
		t.Fatalf("version 5 after the jump: %v %v", r, err)
	}
	if _, err := tr.RootAt(1000); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{6, 999, 1002, 4} {
		if _, err := tr.RootAt(v); !errors.Is(err, ErrNotKept) {
			t.Errorf("version %d: %v, want ErrNotKept", v, err)
		}
	}
	if tr.Oldest() != 5 {
		t.Errorf("oldest %d, want 5", tr.Oldest())
	}
}
