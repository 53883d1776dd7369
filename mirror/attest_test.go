package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestAttestationPaths(t *testing.T) {
	h := func(s string) string { x := sha256.Sum256([]byte(s)); return hex.EncodeToString(x[:]) }
	file, body := strings.Repeat("cd", 32), "bundle bytes"
	for _, tt := range []struct {
		name, path, mediaType, bytes string
		ok                           bool
	}{
		{"trusted root", "targets/_cairn/sigstore/" + h("tr") + ".trusted_root.json", MediaTypeOwnTarget, "tr", true},
		{"index", "targets/_cairn/attestations/" + h("idx") + "." + file + ".json", MediaTypeOwnTarget, "idx", true},
		{"bundle", AttestationPath(file, h(body), false), MediaTypeAttestation, body, true},
		{"record", AttestationPath(file, h(body), true), MediaTypeAttestationRecord, "{}", true},
		{"own target at another digest", "targets/_cairn/sigstore/" + h("other") + ".trusted_root.json", MediaTypeOwnTarget, "tr", false},
		{"bundle at another digest", AttestationPath(file, h("other"), false), MediaTypeAttestation, body, false},
		{"record typed as bundle", AttestationPath(file, h(body), true), MediaTypeAttestation, body, false},
		{"unknown own target", "targets/_cairn/other/" + h("x") + ".x.json", MediaTypeOwnTarget, "x", false},
		{"traversal", "attestations/../../" + h(body) + ".sigstore.json", MediaTypeAttestation, body, false},
		{"uppercase digest", "attestations/" + strings.ToUpper(file) + "/" + h(body) + ".sigstore.json", MediaTypeAttestation, body, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, &Bundle{Info: Info{Format: Format}, Files: []File{BytesFile(tt.path, tt.mediaType, []byte(tt.bytes))}})
			if (err == nil) != tt.ok {
				t.Fatalf("Write of %s: %v, want ok=%v", tt.path, err, tt.ok)
			}
			if !tt.ok {
				return
			}
			b, err := Read(&buf, t.TempDir(), Limits{})
			if err != nil {
				t.Fatalf("reading it back: %v", err)
			}
			if f, ok := b.File(tt.path); !ok || f.MediaType != tt.mediaType {
				t.Fatalf("read back %+v", b.Files)
			}
		})
	}
	if tp, sum, err := OwnTargetFile(OwnTargetPath("_cairn/attestations/"+file+".json", h("i"))); err != nil || tp != "_cairn/attestations/"+file+".json" || sum != h("i") {
		t.Errorf("OwnTargetPath does not round-trip: %s %s %v", tp, sum, err)
	}
}
