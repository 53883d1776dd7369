package tufrepo

import (
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// auditChain returns n entries chained from prev, as the store writes them.
func auditChain(prev []byte, firstSeq int64, n int) []api.LogEntry {
	entries := make([]api.LogEntry, n)
	for i := range entries {
		e := api.LogEntry{
			Seq: firstSeq + int64(i), Action: api.ActionSigned, Role: RoleSnapshot, Version: int64(10 + i),
			Length: int64(1000 + i), SHA256: sha256Hex([]byte{byte(i)}), Snapshot: int64(10 + i),
			Time: t0.Add(time.Duration(i) * time.Second).Add(123456 * time.Nanosecond),
		}
		if i%2 == 0 {
			e.Action, e.Role = api.ActionAccepted, "proj"
		}
		e.PrevHash = hex.EncodeToString(prev)
		h := AuditHash(prev, e)
		e.Hash = hex.EncodeToString(h)
		entries[i] = e
		prev = h
	}
	return entries
}

func TestAuditChainVerifies(t *testing.T) {
	entries := auditChain(nil, 1, 5)
	last, err := VerifyAuditChain(nil, entries)
	if err != nil {
		t.Fatalf("VerifyAuditChain: %v", err)
	}
	if hex.EncodeToString(last) != entries[4].Hash {
		t.Fatalf("returned hash %x, want the last entry's %s", last, entries[4].Hash)
	}
	// Verifying in pages: the second page starts from the first page's last hash.
	mid, err := VerifyAuditChain(nil, entries[:2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAuditChain(mid, entries[2:]); err != nil {
		t.Fatalf("second page: %v", err)
	}
	// An empty page returns prev unchanged.
	if got, err := VerifyAuditChain(mid, nil); err != nil || string(got) != string(mid) {
		t.Fatalf("empty page: %x, %v", got, err)
	}
	// The first entry of the log has an empty prev_hash.
	if entries[0].PrevHash != "" {
		t.Fatalf("first prev_hash %q", entries[0].PrevHash)
	}
}

func TestAuditChainDetectsTampering(t *testing.T) {
	fields := []struct {
		name   string
		mutate func(*api.LogEntry)
	}{
		{"seq", func(e *api.LogEntry) { e.Seq++ }},
		{"action", func(e *api.LogEntry) { e.Action = "deleted" }},
		{"role", func(e *api.LogEntry) { e.Role += "x" }},
		{"version", func(e *api.LogEntry) { e.Version++ }},
		{"length", func(e *api.LogEntry) { e.Length-- }},
		{"sha256", func(e *api.LogEntry) { e.SHA256 = sha256Hex([]byte("other")) }},
		{"snapshot", func(e *api.LogEntry) { e.Snapshot++ }},
		{"time +1µs", func(e *api.LogEntry) { e.Time = e.Time.Add(time.Microsecond) }},
		{"time -1s", func(e *api.LogEntry) { e.Time = e.Time.Add(-time.Second) }},
		{"prev_hash", func(e *api.LogEntry) { e.PrevHash = sha256Hex([]byte("x")) }},
		{"prev_hash not hex", func(e *api.LogEntry) { e.PrevHash = "zz" }},
		{"hash", func(e *api.LogEntry) { e.Hash = sha256Hex([]byte("y")) }},
		{"hash empty", func(e *api.LogEntry) { e.Hash = "" }},
	}
	for _, f := range fields {
		for i := range 5 {
			entries := auditChain(nil, 1, 5)
			f.mutate(&entries[i])
			if _, err := VerifyAuditChain(nil, entries); err == nil {
				t.Errorf("changing %s of entry %d went undetected", f.name, i)
			}
		}
	}

	base := auditChain(nil, 1, 5)
	structural := []struct {
		name    string
		prev    []byte
		entries []api.LogEntry
	}{
		{"swap 1 and 2", nil, []api.LogEntry{base[0], base[2], base[1], base[3], base[4]}},
		{"reverse", nil, []api.LogEntry{base[4], base[3], base[2], base[1], base[0]}},
		{"drop the first", nil, base[1:]},
		{"drop a middle entry", nil, slices.Delete(slices.Clone(base), 2, 3)},
		{"duplicate an entry", nil, []api.LogEntry{base[0], base[1], base[1], base[2]}},
		{"start from the wrong prev", mustHex(base[1].Hash), base[3:]},
		{"chain from a non-empty prev given an empty one", []byte{}, auditChain(mustHex(base[4].Hash), 6, 2)},
		{"entry from another chain spliced in", nil, []api.LogEntry{base[0], base[1], auditChain(nil, 3, 3)[2], base[3]}},
	}
	for _, s := range structural {
		if _, err := VerifyAuditChain(s.prev, s.entries); err == nil {
			t.Errorf("%s went undetected", s.name)
		}
	}

	// The error names the entry.
	entries := auditChain(nil, 1, 5)
	entries[3].Version = 99
	wantContains(t, errOnly(VerifyAuditChain(nil, entries)), "entry 4", "v99")
	entries = auditChain(nil, 1, 5)
	entries[2].PrevHash = ""
	wantContains(t, errOnly(VerifyAuditChain(nil, entries)), "entry 3", "prev_hash")
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func errOnly(_ []byte, err error) error { return err }

func TestAuditHashProperties(t *testing.T) {
	e := auditChain(nil, 1, 1)[0]
	h := AuditHash(nil, e)
	if len(h) != 32 {
		t.Fatalf("hash length %d", len(h))
	}
	// Hash and PrevHash are not inputs (prev is passed separately).
	e2 := e
	e2.Hash, e2.PrevHash = "anything", "else"
	if string(AuditHash(nil, e2)) != string(h) {
		t.Error("Hash/PrevHash fields change the hash")
	}
	// prev is an input.
	if string(AuditHash([]byte{1}, e)) == string(h) {
		t.Error("prev does not change the hash")
	}
	// Time: the same instant in another zone hashes the same; sub-microsecond differences
	// vanish (AuditTime keeps what PostgreSQL stores).
	e3 := e
	e3.Time = e.Time.In(time.FixedZone("X", -5*3600))
	if string(AuditHash(nil, e3)) != string(h) {
		t.Error("the time zone changes the hash")
	}
	e3.Time = e.Time.Truncate(time.Microsecond).Add(999 * time.Nanosecond)
	if string(AuditHash(nil, e3)) != string(h) {
		t.Error("a sub-microsecond difference changes the hash")
	}
	if AuditTime(e.Time.In(time.FixedZone("X", 3600))).Location() != time.UTC || AuditTime(e.Time).Nanosecond()%1000 != 0 {
		t.Error("AuditTime does not normalise to UTC microseconds")
	}
	// Field boundaries are unambiguous: moving characters between adjacent fields changes
	// the hash.
	a := api.LogEntry{Action: "ab", Role: "c", Time: t0}
	b := api.LogEntry{Action: "a", Role: "bc", Time: t0}
	if string(AuditHash(nil, a)) == string(AuditHash(nil, b)) {
		t.Error(`("ab","c") and ("a","bc") hash the same`)
	}
	c := api.LogEntry{Seq: 1, Version: 23, Time: t0}
	d := api.LogEntry{Seq: 12, Version: 3, Time: t0}
	if string(AuditHash(nil, c)) == string(AuditHash(nil, d)) {
		t.Error("seq/version boundary is ambiguous")
	}
}
