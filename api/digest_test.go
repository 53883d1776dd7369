package api_test

import (
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

func TestParseDigest(t *testing.T) {
	h64, h128 := strings.Repeat("ab", 32), strings.Repeat("0f", 64)
	for _, tc := range []struct {
		in, algo, err string
	}{
		{"sha256:" + h64, "sha256", ""},
		{"sha512:" + h128, "sha512", ""},
		{h64, "", "not <algorithm>:<hex>"},
		{"md5:" + h64[:32], "", "not supported"},
		{"sha256:" + h128, "", "64 lowercase hex"},
		{"sha512:" + h64, "", "128 lowercase hex"},
		{"sha256:" + strings.ToUpper(h64), "", "lowercase hex"},
		{"sha256:" + h64[:63] + "g", "", "lowercase hex"},
		{"SHA256:" + h64, "", "not supported"},
		{"sha256:", "", "64 lowercase hex"},
		{"", "", "not <algorithm>:<hex>"},
		{"sha256:../../etc/passwd", "", "64 lowercase hex"},
	} {
		d, err := api.ParseDigest(tc.in)
		switch {
		case tc.err == "" && (err != nil || d.Algorithm != tc.algo || d.String() != tc.in):
			t.Errorf("ParseDigest(%q) = %+v, %v", tc.in, d, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || api.CodeOf(err) != api.CodeBadRequest):
			t.Errorf("ParseDigest(%q): error %v, want bad_request containing %q", tc.in, err, tc.err)
		}
	}
	if !api.ValidSHA256Hex(h64) || api.ValidSHA256Hex(h128) || api.ValidSHA256Hex(strings.ToUpper(h64)) || api.ValidSHA256Hex("sha256:"+h64[7:]) {
		t.Error("ValidSHA256Hex accepts or refuses the wrong strings")
	}
	if d, _ := api.ParseDigest("sha512:" + h128); d.Hash().Size() != 64 {
		t.Error("a sha512 digest's hash is not sha512")
	}
}
