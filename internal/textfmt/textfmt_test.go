package textfmt

import "testing"

func TestSizeAndPlural(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"},
		{1, "1 byte"},
		{1023, "1023 bytes"},
		{1024, "1024 bytes (1.0 KiB)"},
		{1536, "1536 bytes (1.5 KiB)"},
		{5 << 20, "5242880 bytes (5.0 MiB)"},
		{3 << 40, "3298534883328 bytes (3.0 TiB)"},
		{1 << 60, "1152921504606846976 bytes (1024.0 PiB)"},
	} {
		if got := Size(tc.n); got != tc.want {
			t.Errorf("Size(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if Plural(2, "file") != "2 files" || Plural(1, "file") != "1 file" {
		t.Error("Plural")
	}
}
