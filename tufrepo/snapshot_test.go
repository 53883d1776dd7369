package tufrepo

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// metaOp is one Set call; a Get of the same role follows it when get is true.
type metaOp struct {
	role            string
	version, length int64
	get             bool
}

// goTUFSnapshot is go-tuf's canonical encoding of a snapshot with the given meta: the
// reference EncodeSigned must match byte for byte.
func goTUFSnapshot(tb testing.TB, meta map[string]MetaEntry, version int64, expires time.Time) []byte {
	tb.Helper()
	md := metadata.Snapshot(expires.UTC().Truncate(time.Second))
	md.Signed.SpecVersion = SpecVersion
	md.Signed.Version = version
	md.Signed.Meta = map[string]*metadata.MetaFiles{}
	for name, e := range meta {
		// Not metadata.MetaFile(v), which turns versions below 1 into 1.
		md.Signed.Meta[name] = &metadata.MetaFiles{Version: e.Version, Length: e.Length}
	}
	b, err := cjson.EncodeCanonical(md.Signed)
	if err != nil {
		tb.Fatalf("go-tuf canonical encoding: %v", err)
	}
	return b
}

// applyOps runs ops on a new index (checking Get and Len along the way) and returns the
// index and the expected final table.
func applyOps(tb testing.TB, ops []metaOp) (*SnapshotIndex, map[string]MetaEntry) {
	tb.Helper()
	idx := &SnapshotIndex{}
	want := map[string]MetaEntry{}
	for _, op := range ops {
		idx.Set(op.role, op.version, op.length)
		want[MetaName(op.role)] = MetaEntry{Name: MetaName(op.role), Version: op.version, Length: op.length}
		if op.get {
			got, ok := idx.Get(op.role)
			if !ok || got != want[MetaName(op.role)] {
				tb.Fatalf("Get(%q) after Set = %+v, %v; want %+v", op.role, got, ok, want[MetaName(op.role)])
			}
		}
		if idx.Len() != len(want) {
			tb.Fatalf("Len() = %d after Set(%q), want %d", idx.Len(), op.role, len(want))
		}
	}
	return idx, want
}

func checkEncoding(tb testing.TB, idx *SnapshotIndex, want map[string]MetaEntry, version int64, expires time.Time) []byte {
	tb.Helper()
	got := idx.EncodeSigned(version, expires)
	ref := goTUFSnapshot(tb, want, version, expires)
	if !bytes.Equal(got, ref) {
		tb.Fatalf("EncodeSigned differs from go-tuf's canonical encoding\n got: %.400s\nwant: %.400s\nfirst difference at byte %d", got, ref, firstDiff(got, ref))
	}
	// Entries is sorted bytewise and has exactly the table.
	es := idx.Entries()
	if len(es) != len(want) {
		tb.Fatalf("Entries() has %d entries, want %d", len(es), len(want))
	}
	if !slices.IsSortedFunc(es, func(a, b MetaEntry) int { return strings.Compare(a.Name, b.Name) }) {
		tb.Fatalf("Entries() is not sorted bytewise")
	}
	for _, e := range es {
		if want[e.Name] != e {
			tb.Fatalf("entry %+v, want %+v", e, want[e.Name])
		}
	}
	return got
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSnapshotEncodeMatchesGoTUF(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tricky := []string{"a-b", "a.b", "a_b", "a", "a0", "recently-claimed", "targets", "claimed", "a-", "a.", "a..b", "-", "0", "z", "ab", "a-b-c"}

	shuffled := func(names []string) []string {
		s := slices.Clone(names)
		rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		return s
	}
	many := func(n int) []metaOp {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("project-%d", i)
		}
		ops := make([]metaOp, 0, n)
		for i, name := range shuffled(names) {
			ops = append(ops, metaOp{role: name, version: int64(i%50 + 1), length: int64(i * 7), get: i%997 == 0})
		}
		return ops
	}

	tests := []struct {
		name    string
		ops     []metaOp
		version int64
	}{
		{name: "empty", ops: nil, version: 1},
		{name: "three roles", ops: []metaOp{{role: "targets", version: 1, length: 1234}, {role: "claimed", version: 1, length: 800}, {role: "recently-claimed", version: 2, length: 901}}, version: 2},
		{name: "tricky names in order", ops: func() []metaOp {
			var ops []metaOp
			for i, n := range tricky {
				ops = append(ops, metaOp{role: n, version: int64(i + 1), length: int64(100 + i)})
			}
			return ops
		}(), version: 3},
		{name: "tricky names shuffled, several Sets with Gets in between", ops: func() []metaOp {
			var ops []metaOp
			for i, n := range shuffled(tricky) {
				ops = append(ops, metaOp{role: n, version: int64(i + 1), length: int64(100 + i), get: i%3 == 2})
			}
			return ops
		}(), version: 4},
		{name: "updating existing entries (merged and unmerged)", ops: []metaOp{
			{role: "targets", version: 1, length: 10},
			{role: "alpha", version: 1, length: 20, get: true}, // merges
			{role: "beta", version: 1, length: 30},             // stays in added
			{role: "alpha", version: 2, length: 25},            // update of a merged entry
			{role: "beta", version: 2, length: 35},             // update of an unmerged entry
			{role: "gamma", version: 1},                        // length 0 is omitted, as go-tuf does
			{role: "targets", version: 3, length: 0, get: true},
			{role: "alpha", version: 3, length: 26, get: true},
		}, version: 5},
		{name: "zero length omitted, large numbers", ops: []metaOp{{role: "a", version: 0, length: 0}, {role: "b", version: 1 << 60, length: 1<<53 + 1}}, version: 1 << 62},
		{name: "10k entries in random order", ops: many(10000), version: 77},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx, want := applyOps(t, tc.ops)
			for _, exp := range []time.Time{t0.Add(SnapshotExpiry), t0.Add(SnapshotExpiry + 1500*time.Millisecond)} {
				checkEncoding(t, idx, want, tc.version, exp)
			}
			// Set after an encode keeps working.
			idx.Set("after-encode", 9, 99)
			want[MetaName("after-encode")] = MetaEntry{Name: MetaName("after-encode"), Version: 9, Length: 99}
			checkEncoding(t, idx, want, tc.version+1, t0)
		})
	}
}

// EncodeSigned normalises expiry to UTC whole seconds, the form go-tuf writes.
func TestSnapshotEncodeExpiresNormalised(t *testing.T) {
	idx := &SnapshotIndex{}
	idx.Set("targets", 1, 10)
	loc := time.FixedZone("UTC+2", 2*3600)
	exp := time.Date(2026, 3, 8, 14, 0, 0, 999_999_999, loc)
	got := idx.EncodeSigned(1, exp)
	if !bytes.Contains(got, []byte(`"expires":"2026-03-08T12:00:00Z"`)) {
		t.Fatalf("expires not normalised to UTC whole seconds: %s", got)
	}
	if FormatExpires(exp) != "2026-03-08T12:00:00Z" {
		t.Fatalf("FormatExpires = %s", FormatExpires(exp))
	}
}

func TestSnapshotGetMissing(t *testing.T) {
	idx := &SnapshotIndex{}
	if _, ok := idx.Get("nope"); ok {
		t.Fatal("Get on an empty index found an entry")
	}
	idx.Set("a", 1, 1)
	if _, ok := idx.Get("b"); ok {
		t.Fatal("Get found a role that was never set")
	}
	if _, ok := idx.Get("a.json"); ok {
		t.Fatal("Get takes role names, not file names")
	}
}

func TestParseSnapshotRoundTrip(t *testing.T) {
	s := newTestSigner(t, KeyEd25519)
	ops := []metaOp{{role: "targets", version: 1, length: 1000}, {role: "claimed", version: 2, length: 500}, {role: "recently-claimed", version: 7, length: 2500}, {role: "a.b", version: 3}, {role: "a-b", version: 4, length: 4}}
	for i := range 500 {
		ops = append(ops, metaOp{role: fmt.Sprintf("p%03d", 499-i), version: int64(i + 1), length: int64(i)})
	}
	idx, want := applyOps(t, ops)
	exp := t0.Add(SnapshotExpiry)
	signed := checkEncoding(t, idx, want, 42, exp)
	raw, err := SignEnvelope(context.Background(), signed, s)
	if err != nil {
		t.Fatal(err)
	}
	back, md, err := ParseSnapshot(raw)
	if err != nil {
		t.Fatalf("ParseSnapshot: %v", err)
	}
	if md.Signed.Version != 42 || !md.Signed.Expires.Equal(exp) || md.Signed.SpecVersion != SpecVersion {
		t.Fatalf("parsed version %d expires %s spec %s", md.Signed.Version, md.Signed.Expires, md.Signed.SpecVersion)
	}
	if !slices.Equal(back.Entries(), idx.Entries()) {
		t.Fatalf("parsed entries differ from the encoded ones")
	}
	if again := back.EncodeSigned(42, exp); !bytes.Equal(again, signed) {
		t.Fatalf("re-encoding a parsed snapshot changed its bytes")
	}
	// The parsed index keeps working: update and add.
	back.Set("claimed", 3, 501)
	back.Set("new-project", 1, 10)
	want[MetaName("claimed")] = MetaEntry{Name: "claimed.json", Version: 3, Length: 501}
	want[MetaName("new-project")] = MetaEntry{Name: "new-project.json", Version: 1, Length: 10}
	checkEncoding(t, back, want, 43, exp)

	for _, bad := range [][]byte{nil, []byte("{"), []byte(`{"signatures":[],"signed":{"_type":"timestamp"}}`)} {
		if _, _, err := ParseSnapshot(bad); err == nil {
			t.Errorf("ParseSnapshot(%q) succeeded", bad)
		}
	}
}

const roleAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789._-"

// fuzzNames turns bytes into role names over [a-z0-9._-]: alphabet bytes are kept, other
// even bytes (such as ' ') end a name, other odd bytes map into the alphabet.
func fuzzNames(data []byte) []string {
	var names []string
	var cur []byte
	for _, b := range data {
		switch {
		case strings.IndexByte(roleAlphabet, b) >= 0:
			cur = append(cur, b)
		case b%2 == 0:
			names = append(names, string(cur))
			cur = cur[:0]
		default:
			cur = append(cur, roleAlphabet[int(b)%len(roleAlphabet)])
		}
	}
	if len(cur) > 0 {
		names = append(names, string(cur))
	}
	return names
}

func FuzzSnapshotEncode(f *testing.F) {
	f.Add([]byte("a-b a.b a_b a a0"), int64(1), int64(0), uint8(3))
	f.Add([]byte("recently-claimed targets claimed a-b.c a_b-c a.b_c"), int64(7), int64(123456), uint8(1))
	f.Add([]byte{}, int64(0), int64(-5), uint8(0))
	f.Add([]byte("   zz z zz z- z. z_ z0"), int64(1<<40), int64(1<<50), uint8(2))
	f.Add([]byte("\x01\x03\xff\x80x\x7fy"), int64(-1), int64(1), uint8(255))
	f.Fuzz(func(t *testing.T, data []byte, version, length int64, getEvery uint8) {
		names := fuzzNames(data)
		if len(names) > 2000 {
			names = names[:2000]
		}
		ops := make([]metaOp, 0, len(names))
		for i, n := range names {
			l := length * int64(i%3) // some zero lengths, which go-tuf omits
			ops = append(ops, metaOp{role: n, version: version + int64(i), length: l, get: getEvery != 0 && i%int(getEvery) == 0})
		}
		idx, want := applyOps(t, ops)
		checkEncoding(t, idx, want, version, t0)
	})
}

// benchIndex builds an index of n project roles plus the top-level ones.
func benchIndex(n int) (*SnapshotIndex, map[string]MetaEntry) {
	idx := &SnapshotIndex{}
	meta := make(map[string]MetaEntry, n+3)
	set := func(role string, v, l int64) {
		idx.Set(role, v, l)
		meta[MetaName(role)] = MetaEntry{Name: MetaName(role), Version: v, Length: l}
	}
	set(RoleTargets, 1, 1500)
	set(RoleClaimed, 3, 40000)
	set(RoleRecentlyClaimed, 9, 90000)
	for i := range n {
		set(fmt.Sprintf("project-%07d", (i*7919)%n), int64(i%20+1), int64(1000+i%5000))
		if i%1000 == 999 {
			idx.Entries() // merge in batches, as publishes do
		}
	}
	idx.Entries()
	return idx, meta
}

func BenchmarkSnapshotEncode(b *testing.B) {
	s := newTestSigner(b, KeyEd25519)
	ctx := context.Background()
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			idx, _ := benchIndex(n)
			exp := t0.Add(SnapshotExpiry)
			var size int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				raw, err := SignEnvelope(ctx, idx.EncodeSigned(int64(i+2), exp), s)
				if err != nil {
					b.Fatal(err)
				}
				size = len(raw)
			}
			b.ReportMetric(float64(size), "bytes/snapshot")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}

func BenchmarkSnapshotEncodeGoTUF(b *testing.B) {
	s := newTestSigner(b, KeyEd25519)
	ctx := context.Background()
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			_, meta := benchIndex(n)
			exp := t0.Add(SnapshotExpiry)
			md := metadata.Snapshot(exp)
			md.Signed.SpecVersion = SpecVersion
			md.Signed.Meta = make(map[string]*metadata.MetaFiles, len(meta))
			for _, name := range slices.Sorted(maps.Keys(meta)) {
				mf := metadata.MetaFile(meta[name].Version)
				mf.Length = meta[name].Length
				md.Signed.Meta[name] = mf
			}
			var size int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				md.Signed.Version = int64(i + 2)
				signed, err := cjson.EncodeCanonical(md.Signed)
				if err != nil {
					b.Fatal(err)
				}
				raw, err := SignEnvelope(ctx, signed, s)
				if err != nil {
					b.Fatal(err)
				}
				size = len(raw)
			}
			b.ReportMetric(float64(size), "bytes/snapshot")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}

// BenchmarkSnapshotSetNewRoles sets k roles that are new to a 10k index in one batch, as
// one publish does for k newly staged projects. Set scans the unmerged additions linearly,
// so a batch costs O(k²): compare ns/role across k.
func BenchmarkSnapshotSetNewRoles(b *testing.B) {
	for _, k := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("new=%d", k), func(b *testing.B) {
			names := make([]string, k)
			for i := range names {
				names[i] = fmt.Sprintf("new-project-%07d", i)
			}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				idx, _ := benchIndex(10_000)
				b.StartTimer()
				for _, n := range names {
					idx.Set(n, 1, 100)
				}
				idx.Entries()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(k), "ns/role")
		})
	}
}
