package tufrepo

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// vfix is a project "demo" at role version 1 with one published file, a new file uploaded
// as a blob, and three maintainer keys of which m1 alone is delegated (threshold 1).
type vfix struct {
	m1, m2, m3, ec, stranger *OnlineSigner
	st                       ProjectState
	blobs                    map[string]int64
	blobCalls                [][]string
	now                      time.Time
	oldPath, newPath         string
	oldContent, newContent   []byte
}

func newVFix(t testing.TB) *vfix {
	f := &vfix{
		m1: newTestSigner(t, KeyEd25519), m2: newTestSigner(t, KeyEd25519), m3: newTestSigner(t, KeyEd25519),
		ec: newTestSigner(t, KeyECDSAP256), stranger: newTestSigner(t, KeyEd25519),
		now:        t0,
		oldPath:    "demo/1.0/demo-1.0.tar.gz",
		newPath:    "demo/1.1/demo-1.1.tar.gz",
		oldContent: []byte("release 1.0 bytes"),
		newContent: []byte("release 1.1 bytes, a little longer"),
	}
	f.st = ProjectState{
		Delegation:     delegationFor("demo", 1, f.m1),
		CurrentVersion: 1,
		Files:          map[string]PublishedFile{f.oldPath: {Length: int64(len(f.oldContent)), SHA256: sha256Hex(f.oldContent)}},
	}
	f.blobs = map[string]int64{sha256Hex(f.oldContent): int64(len(f.oldContent)), sha256Hex(f.newContent): int64(len(f.newContent))}
	return f
}

func (f *vfix) blobSizes(shas []string) (map[string]int64, error) {
	f.blobCalls = append(f.blobCalls, slices.Clone(shas))
	out := map[string]int64{}
	for _, s := range shas {
		if n, ok := f.blobs[s]; ok {
			out[s] = n
		}
	}
	return out, nil
}

// role is version 2 of the project role: the published file and the new one.
func (f *vfix) role() *metadata.Metadata[metadata.TargetsType] {
	return newProjectRole(2, f.now.Add(ProjectRoleExpiry), map[string]*metadata.TargetFiles{
		f.oldPath: targetFile(f.oldContent),
		f.newPath: targetFile(f.newContent),
	})
}

// with returns the role after mut, signed by m1.
func (f *vfix) with(t *testing.T, mut func(*metadata.TargetsType)) []byte {
	md := f.role()
	mut(&md.Signed)
	return signRole(t, md, f.m1)
}

// withTarget replaces the new file's entry by path → tf.
func (f *vfix) withTarget(t *testing.T, path string, tf *metadata.TargetFiles) []byte {
	return f.with(t, func(s *metadata.TargetsType) {
		delete(s.Targets, f.newPath)
		s.Targets[path] = tf
	})
}

func rawMsg(s string) *json.RawMessage { m := json.RawMessage(s); return &m }

func TestValidateProjectRoleAccepts(t *testing.T) {
	f := newVFix(t)
	raw := signRole(t, f.role(), f.m1)
	acc, err := ValidateProjectRole(raw, f.st, f.now, f.blobSizes)
	if err != nil {
		t.Fatalf("valid role refused: %v", err)
	}
	if !bytes.Equal(acc.Raw, raw) || acc.Version != 2 || !acc.Expires.Equal(f.now.Add(ProjectRoleExpiry)) {
		t.Errorf("accepted raw/version/expires: %d bytes, v%d, %s", len(acc.Raw), acc.Version, acc.Expires)
	}
	want := []NewFile{{Path: f.newPath, Version: "1.1", Filename: "demo-1.1.tar.gz", Length: int64(len(f.newContent)), SHA256: sha256Hex(f.newContent)}}
	if len(acc.NewFiles) != 1 || acc.NewFiles[0].Path != want[0].Path || acc.NewFiles[0].Version != want[0].Version ||
		acc.NewFiles[0].Filename != want[0].Filename || acc.NewFiles[0].Length != want[0].Length || acc.NewFiles[0].SHA256 != want[0].SHA256 || acc.NewFiles[0].Custom != nil {
		t.Errorf("NewFiles = %+v, want %+v (the published file is not new)", acc.NewFiles, want)
	}
	if !slices.Equal(acc.SignedBy, []string{f.m1.KeyID}) {
		t.Errorf("SignedBy = %v, want [%s]", acc.SignedBy, f.m1.KeyID)
	}
	// Blobs are looked up once, for the new file only.
	if len(f.blobCalls) != 1 || !slices.Equal(f.blobCalls[0], []string{sha256Hex(f.newContent)}) {
		t.Errorf("blob lookups %v, want one for the new file's sha256", f.blobCalls)
	}
}

func TestValidateProjectRoleAcceptsVariants(t *testing.T) {
	tests := []struct {
		name      string
		state     func(f *vfix, st *ProjectState)
		build     func(t *testing.T, f *vfix) []byte
		newFiles  []string
		signedBy  func(f *vfix) []string
		noLookups bool
	}{
		{
			name:  "new project, version 1",
			state: func(f *vfix, st *ProjectState) { st.CurrentVersion, st.Files = 0, nil },
			build: func(t *testing.T, f *vfix) []byte {
				md := f.role()
				md.Signed.Version = 1
				return signRole(t, md, f.m1)
			},
			newFiles: []string{"demo/1.0/demo-1.0.tar.gz", "demo/1.1/demo-1.1.tar.gz"},
		},
		{
			name:  "new project with no targets",
			state: func(f *vfix, st *ProjectState) { st.CurrentVersion, st.Files = 0, nil },
			build: func(t *testing.T, f *vfix) []byte {
				return signRole(t, newProjectRole(1, f.now.Add(ProjectRoleExpiry), nil), f.m1)
			},
			noLookups: true,
		},
		{
			name: "re-signing with no new file, published file yanked in custom",
			build: func(t *testing.T, f *vfix) []byte {
				return f.with(t, func(s *metadata.TargetsType) {
					delete(s.Targets, f.newPath)
					s.Targets[f.oldPath].Custom = rawMsg(`{"yanked":true}`)
				})
			},
			noLookups: true,
		},
		{
			name: "expires exactly MinProjectRoleLifetime from now",
			build: func(t *testing.T, f *vfix) []byte {
				return f.with(t, func(s *metadata.TargetsType) { s.Expires = f.now.Add(MinProjectRoleLifetime) })
			},
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
		},
		{
			name: "expires exactly MaxProjectRoleExpiry from now",
			build: func(t *testing.T, f *vfix) []byte {
				return f.with(t, func(s *metadata.TargetsType) { s.Expires = f.now.Add(MaxProjectRoleExpiry) })
			},
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
		},
		{
			name: "spec_version 1.0.0",
			build: func(t *testing.T, f *vfix) []byte {
				return f.with(t, func(s *metadata.TargetsType) { s.SpecVersion = "1.0.0" })
			},
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
		},
		{
			name: "custom exactly MaxCustomBytes",
			build: func(t *testing.T, f *vfix) []byte {
				return f.with(t, func(s *metadata.TargetsType) {
					s.Targets[f.newPath].Custom = rawMsg(`"` + strings.Repeat("x", MaxCustomBytes-2) + `"`)
				})
			},
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
		},
		{
			name: "custom with control characters (escaped in the file)",
			build: func(t *testing.T, f *vfix) []byte {
				return f.with(t, func(s *metadata.TargetsType) {
					s.Targets[f.newPath].Custom = rawMsg(`{"notes":"line 1\nline 2\u0001"}`)
				})
			},
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
		},
		{
			name:     "2 of 3 with two valid signatures",
			state:    func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 2, f.m1, f.m2, f.m3) },
			build:    func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.m3, f.m1) },
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
			signedBy: func(f *vfix) []string { return []string{f.m3.KeyID, f.m1.KeyID} },
		},
		{
			name:     "2 of 3 with three valid signatures",
			state:    func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 2, f.m1, f.m2, f.m3) },
			build:    func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.m1, f.m2, f.m3) },
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
			signedBy: func(f *vfix) []string { return []string{f.m1.KeyID, f.m2.KeyID, f.m3.KeyID} },
		},
		{
			name:     "ecdsa maintainer key",
			state:    func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 1, f.ec) },
			build:    func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.ec) },
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
			signedBy: func(f *vfix) []string { return []string{f.ec.KeyID} },
		},
		{
			name:     "ed25519 and ecdsa maintainers, 2 of 2",
			state:    func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 2, f.m1, f.ec) },
			build:    func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.ec, f.m1) },
			newFiles: []string{"demo/1.1/demo-1.1.tar.gz"},
			signedBy: func(f *vfix) []string { return []string{f.ec.KeyID, f.m1.KeyID} },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newVFix(t)
			if tc.state != nil {
				tc.state(f, &f.st)
			}
			acc, err := ValidateProjectRole(tc.build(t, f), f.st, f.now, f.blobSizes)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			var got []string
			for _, nf := range acc.NewFiles {
				got = append(got, nf.Path)
			}
			if !slices.Equal(got, tc.newFiles) {
				t.Errorf("NewFiles %v, want %v", got, tc.newFiles)
			}
			wantSigned := []string{f.m1.KeyID}
			if tc.signedBy != nil {
				wantSigned = tc.signedBy(f)
			}
			if !slices.Equal(acc.SignedBy, wantSigned) {
				t.Errorf("SignedBy %v, want %v", acc.SignedBy, wantSigned)
			}
			if tc.noLookups && len(f.blobCalls) != 0 {
				t.Errorf("blobs looked up with no new file: %v", f.blobCalls)
			}
		})
	}
}

func TestValidateProjectRoleRefusals(t *testing.T) {
	sha512Only := func(content []byte) *metadata.TargetFiles {
		tf := metadata.TargetFile()
		tf.Length = int64(len(content))
		s := sha512.Sum512(content)
		tf.Hashes = metadata.Hashes{"sha512": s[:]}
		return tf
	}
	pathCase := func(path string) func(t *testing.T, f *vfix) []byte {
		return func(t *testing.T, f *vfix) []byte { return f.withTarget(t, path, targetFile(f.newContent)) }
	}
	tests := []struct {
		name     string
		state    func(f *vfix, st *ProjectState)
		build    func(t *testing.T, f *vfix) []byte
		code     api.Code
		contains func(f *vfix) []string
	}{
		// Parsing.
		{name: "too large", build: func(t *testing.T, f *vfix) []byte {
			return append([]byte(`{"signatures":[],"signed":`), bytes.Repeat([]byte(" "), MaxProjectRoleBytes)...)
		}, code: api.CodeTooLarge, contains: func(*vfix) []string {
			return []string{fmt.Sprint(MaxProjectRoleBytes + 26), fmt.Sprint(MaxProjectRoleBytes)}
		}},
		{name: "unparseable", build: func(*testing.T, *vfix) []byte { return []byte(`{"signatures":[`) }, code: api.CodeMalformedMetadata, contains: func(*vfix) []string { return []string{`"demo"`} }},
		{name: "not JSON at all", build: func(*testing.T, *vfix) []byte { return []byte("hello") }, code: api.CodeMalformedMetadata},
		// The parser differential of issue #9: Go reads the last case-insensitive match of
		// "signed", JavaScript the exact key. Each reading is signed by a maintainer.
		{name: "signed and Signed, each signed by a maintainer",
			state: func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 1, f.m1, f.m2) },
			build: func(t *testing.T, f *vfix) []byte {
				a := signRole(t, f.role(), f.m1)
				other := f.role()
				other.Signed.Targets["demo/1.1/evil.tar.gz"] = targetFile([]byte("never uploaded"))
				b := signRole(t, other, f.m2)
				sigs := append(sigsOf(t, a), sigsOf(t, b)...)
				sj, _ := json.Marshal(sigs)
				return []byte(fmt.Sprintf(`{"signatures":%s,"signed":%s,"Signed":%s}`, sj, mustSigned(t, a), mustSigned(t, b)))
			},
			code: api.CodeAmbiguousJSON, contains: func(*vfix) []string { return []string{`"signed" and "Signed"`, "$.Signed"} }},
		{name: "Signed alone", build: func(t *testing.T, f *vfix) []byte {
			return bytes.Replace(signRole(t, f.role(), f.m1), []byte(`"signed":`), []byte(`"Signed":`), 1)
		}, code: api.CodeAmbiguousJSON, contains: func(*vfix) []string { return []string{`differs from the field "signed" only in case`} }},
		{name: "duplicate target path", build: func(t *testing.T, f *vfix) []byte {
			raw := signRole(t, f.role(), f.m1)
			entry := `"` + f.newPath + `":{"hashes":{"sha256":"` + sha256Hex(f.newContent) + `"},"length":` + fmt.Sprint(len(f.newContent)) + `}`
			return bytes.Replace(raw, []byte(entry), []byte(entry+`,`+entry), 1)
		}, code: api.CodeAmbiguousJSON, contains: func(f *vfix) []string { return []string{"duplicate key", f.newPath} }},
		{name: "yanked spelled Yanked in custom", build: func(t *testing.T, f *vfix) []byte {
			tf := targetFile(f.newContent)
			tf.Custom = rawMsg(`{"Yanked":true}`)
			return f.withTarget(t, f.newPath, tf)
		}, code: api.CodeAmbiguousJSON, contains: func(*vfix) []string { return []string{`"Yanked"`, `"yanked"`} }},
		{name: "version beyond 2^53", build: func(t *testing.T, f *vfix) []byte {
			return bytes.Replace(signRole(t, f.role(), f.m1), []byte(`"version":2`), []byte(`"version":9007199254740994`), 1)
		}, code: api.CodeAmbiguousJSON, contains: func(*vfix) []string { return []string{"2^53"} }},
		{name: "lone surrogate in custom", build: func(t *testing.T, f *vfix) []byte {
			tf := targetFile(f.newContent)
			tf.Custom = rawMsg(`{"note":"LONE"}`)
			return bytes.Replace(f.withTarget(t, f.newPath, tf), []byte("LONE"), []byte(`\ud800`), 1)
		}, code: api.CodeAmbiguousJSON, contains: func(*vfix) []string { return []string{"surrogate"} }},
		{name: "upper-case hash hex re-encodes differently", build: func(t *testing.T, f *vfix) []byte {
			raw := signRole(t, f.role(), f.m1)
			h := sha256Hex(f.newContent)
			return bytes.Replace(raw, []byte(h), []byte(strings.ToUpper(h)), 1)
		}, code: api.CodeAmbiguousJSON, contains: func(*vfix) []string { return []string{"go-tuf's reading"} }},
		{name: "null custom re-encodes differently", build: func(t *testing.T, f *vfix) []byte {
			raw := signRole(t, f.role(), f.m1)
			entry := `"hashes":{"sha256":"` + sha256Hex(f.newContent) + `"},`
			signed := bytes.Replace(mustSigned(t, raw), []byte(entry), []byte(`"custom":null,`+entry), 1)
			out, err := SignEnvelope(t.Context(), signed, f.m1)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}, code: api.CodeAmbiguousJSON, contains: func(*vfix) []string { return []string{"go-tuf's reading"} }},
		{name: "root metadata instead of targets", build: func(t *testing.T, f *vfix) []byte {
			root := metadata.Root(f.now.Add(ProjectRoleExpiry))
			root.Signed.Version = 2
			return signRole(t, root, f.m1)
		}, code: api.CodeMalformedMetadata},
		{name: "snapshot metadata instead of targets", build: func(t *testing.T, f *vfix) []byte {
			return resign(t, Envelope((&SnapshotIndex{}).EncodeSigned(2, f.now.Add(ProjectRoleExpiry)), nil), f.m1)
		}, code: api.CodeMalformedMetadata},
		{name: "target without hashes", build: func(t *testing.T, f *vfix) []byte {
			raw := signRole(t, f.role(), f.m1)
			return bytes.Replace(raw, []byte(`"hashes":{"sha256":"`+sha256Hex(f.newContent)+`"}`), []byte(`"hashes":{}`), 1)
		}, code: api.CodeMalformedMetadata},
		{name: "same key signing twice", build: func(t *testing.T, f *vfix) []byte {
			// go-tuf's FromBytes refuses duplicate key IDs, so a doubled signature is
			// malformed rather than counted twice.
			raw := signRole(t, f.role(), f.m1)
			s := sigsOf(t, raw)
			return Envelope(mustSigned(t, raw), []metadata.Signature{s[0], s[0]})
		}, state: func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 2, f.m1, f.m2) },
			code: api.CodeMalformedMetadata, contains: func(f *vfix) []string { return []string{"multiple signatures", f.m1.KeyID} }},
		{name: "wrong spec_version", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.SpecVersion = "2.0.0" })
		}, code: api.CodeMalformedMetadata, contains: func(*vfix) []string { return []string{`"2.0.0"`} }},
		{name: "empty spec_version", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.SpecVersion = "" })
		}, code: api.CodeMalformedMetadata},

		// Version.
		{name: "version replayed (current)", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Version = 1 })
		}, code: api.CodeVersionConflict, contains: func(*vfix) []string { return []string{`"demo"`, "version 1", "must be 2, not 1"} }},
		{name: "version lower", state: func(f *vfix, st *ProjectState) { st.CurrentVersion = 5 }, build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Version = 3 })
		}, code: api.CodeVersionConflict, contains: func(*vfix) []string { return []string{"must be 6, not 3"} }},
		{name: "version skips ahead", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Version = 3 })
		}, code: api.CodeVersionConflict, contains: func(*vfix) []string { return []string{"must be 2, not 3"} }},
		{name: "version 0", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Version = 0 })
		}, code: api.CodeVersionConflict},

		// Expiry.
		{name: "expired", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Expires = f.now.Add(-time.Hour) })
		}, code: api.CodeExpired, contains: func(f *vfix) []string { return []string{"version 2", FormatExpires(f.now.Add(-time.Hour))} }},
		{name: "expires within MinProjectRoleLifetime", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Expires = f.now.Add(MinProjectRoleLifetime - time.Second) })
		}, code: api.CodeExpired, contains: func(*vfix) []string { return []string{"less than 1h0m0s"} }},
		{name: "expiry too far", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Expires = f.now.Add(MaxProjectRoleExpiry + time.Second) })
		}, code: api.CodeExpiryTooFar, contains: func(*vfix) []string { return []string{"400 days"} }},

		// Shape.
		{name: "delegations present", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) {
				s.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
			})
		}, code: api.CodeDelegationForbidden, contains: func(*vfix) []string { return []string{`"demo"`, "delegations"} }},
		{name: "delegating to a sub-role", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) {
				s.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{f.m2.KeyID: f.m2.Key},
					Roles: []metadata.DelegatedRole{{Name: "evil", KeyIDs: []string{f.m2.KeyID}, Threshold: 1, Paths: []string{"*"}}}}
			})
		}, code: api.CodeDelegationForbidden},
		{name: "too many targets", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) {
				tf := targetFile(f.newContent)
				for i := range MaxTargetsPerRole {
					s.Targets[fmt.Sprintf("demo/2.%d/f", i)] = tf
				}
			})
		}, code: api.CodeTooMany, contains: func(*vfix) []string {
			return []string{fmt.Sprint(MaxTargetsPerRole + 2), fmt.Sprint(MaxTargetsPerRole)}
		}},

		// Paths.
		{name: "path with 2 components", build: pathCase("demo/demo-1.1.tar.gz"), code: api.CodeInvalidPath, contains: func(*vfix) []string { return []string{`"demo/demo-1.1.tar.gz"`, "<project>/<version>/<filename>"} }},
		{name: "path with 4 components", build: pathCase("demo/1.1/sub/f.tar.gz"), code: api.CodeInvalidPath, contains: func(*vfix) []string { return []string{`"demo/1.1/sub/f.tar.gz"`} }},
		{name: "path of another project", build: pathCase("other/1.1/f.tar.gz"), code: api.CodePathOutsideProject, contains: func(*vfix) []string { return []string{`"other/1.1/f.tar.gz"`, `"demo/"`} }},
		{name: "path of a project with a longer name", build: pathCase("demo-evil/1.1/f.tar.gz"), code: api.CodePathOutsideProject},
		{name: "path with uppercase project", build: pathCase("Demo/1.1/f.tar.gz"), code: api.CodePathOutsideProject},
		{name: "leading slash", build: pathCase("/demo/1.1/f.tar.gz"), code: api.CodeInvalidPath},
		{name: "trailing slash", build: pathCase("demo/1.1/"), code: api.CodeInvalidPath},
		{name: "empty version", build: pathCase("demo//f.tar.gz"), code: api.CodeInvalidPath},
		{name: "version ..", build: pathCase("demo/../f.tar.gz"), code: api.CodeInvalidPath, contains: func(*vfix) []string { return []string{"release version", `".."`} }},
		{name: "version .", build: pathCase("demo/./f.tar.gz"), code: api.CodeInvalidPath},
		{name: "filename ..", build: pathCase("demo/1.1/.."), code: api.CodeInvalidPath, contains: func(*vfix) []string { return []string{"file name"} }},
		{name: "filename .", build: pathCase("demo/1.1/."), code: api.CodeInvalidPath},
		{name: "hidden filename", build: pathCase("demo/1.1/.hidden"), code: api.CodeInvalidPath, contains: func(*vfix) []string { return []string{`".hidden"`} }},
		{name: "a/../b inside the path", build: pathCase("demo/a/../b"), code: api.CodeInvalidPath},
		{name: "a/../b after the version", build: pathCase("demo/1.1/a/../b"), code: api.CodeInvalidPath},
		{name: "glob star in filename", build: pathCase("demo/1.1/*"), code: api.CodeInvalidPath},
		{name: "glob star inside filename", build: pathCase("demo/1.1/f*.tar.gz"), code: api.CodeInvalidPath},
		{name: "glob ? in version", build: pathCase("demo/1.?/f.tar.gz"), code: api.CodeInvalidPath},
		{name: "glob class in filename", build: pathCase("demo/1.1/f[0-9].tar.gz"), code: api.CodeInvalidPath},
		{name: "backslash in filename", build: pathCase(`demo/1.1/a\b`), code: api.CodeInvalidPath},
		{name: "space in filename", build: pathCase("demo/1.1/a b"), code: api.CodeInvalidPath},
		{name: "unicode in filename", build: pathCase("demo/1.1/fé.tar.gz"), code: api.CodeInvalidPath},
		{name: "filename too long", build: pathCase("demo/1.1/" + strings.Repeat("f", MaxFilenameLength+1)), code: api.CodeInvalidPath},
		{name: "version too long", build: pathCase("demo/" + strings.Repeat("1", MaxVersionLength+1) + "/f"), code: api.CodeInvalidPath},

		// Hashes, lengths, blobs.
		{name: "two hashes", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) {
				h := sha512.Sum512(f.newContent)
				s.Targets[f.newPath].Hashes["sha512"] = h[:]
			})
		}, code: api.CodeHashMismatch, contains: func(f *vfix) []string { return []string{f.newPath, "2 hashes"} }},
		{name: "sha512 only", build: func(t *testing.T, f *vfix) []byte { return f.withTarget(t, f.newPath, sha512Only(f.newContent)) },
			code: api.CodeHashMismatch, contains: func(f *vfix) []string { return []string{f.newPath, "sha256"} }},
		{name: "short sha256", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) {
				s.Targets[f.newPath].Hashes["sha256"] = s.Targets[f.newPath].Hashes["sha256"][:16]
			})
		}, code: api.CodeHashMismatch, contains: func(f *vfix) []string { return []string{f.newPath, "32-byte"} }},
		{name: "negative length", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Targets[f.newPath].Length = -1 })
		}, code: api.CodeLengthMismatch, contains: func(f *vfix) []string { return []string{f.newPath} }},
		{name: "blob missing", state: func(f *vfix, st *ProjectState) { delete(f.blobs, sha256Hex(f.newContent)) },
			build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.m1) },
			code:  api.CodeBlobMissing, contains: func(f *vfix) []string { return []string{f.newPath, "sha256:" + sha256Hex(f.newContent)} }},
		{name: "length mismatch", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Targets[f.newPath].Length++ })
		}, code: api.CodeLengthMismatch, contains: func(f *vfix) []string {
			return []string{f.newPath, fmt.Sprint(len(f.newContent) + 1), fmt.Sprintf("is %d bytes", len(f.newContent))}
		}},
		{name: "custom too large", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) {
				s.Targets[f.newPath].Custom = rawMsg(`"` + strings.Repeat("x", MaxCustomBytes-1) + `"`)
			})
		}, code: api.CodeTooLarge, contains: func(f *vfix) []string { return []string{f.newPath, fmt.Sprint(MaxCustomBytes + 1)} }},

		// Immutability.
		{name: "earlier path removed", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { delete(s.Targets, f.oldPath) })
		}, code: api.CodeImmutablePath, contains: func(f *vfix) []string { return []string{f.oldPath, "yank"} }},
		{name: "earlier path changed hash", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Targets[f.oldPath] = targetFile([]byte("release 1.0 BYTES")) })
		}, code: api.CodeImmutablePath, contains: func(f *vfix) []string { return []string{f.oldPath, sha256Hex(f.oldContent)} }},
		{name: "earlier path changed length", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Targets[f.oldPath].Length++ })
		}, code: api.CodeImmutablePath, contains: func(f *vfix) []string { return []string{f.oldPath} }},
		{name: "earlier path now points at the new blob", build: func(t *testing.T, f *vfix) []byte {
			return f.with(t, func(s *metadata.TargetsType) { s.Targets[f.oldPath] = targetFile(f.newContent) })
		}, code: api.CodeImmutablePath},

		// Signatures.
		{name: "no signatures", build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role()) },
			code: api.CodeThresholdNotMet, contains: func(*vfix) []string { return []string{`"demo"`, "no signatures"} }},
		{name: "signed by an undelegated key", build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.stranger) },
			code: api.CodeKeyNotDelegated, contains: func(f *vfix) []string { return []string{`"demo"`, f.stranger.KeyID, f.m1.KeyID} }},
		{name: "signed by a key listed in keys but not in the role's keyids",
			state: func(f *vfix, st *ProjectState) { st.Delegation.Keys[f.m2.KeyID] = f.m2.Key },
			build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.m2) },
			code:  api.CodeKeyNotDelegated, contains: func(f *vfix) []string { return []string{f.m2.KeyID} }},
		{name: "delegated key, signature over other bytes", build: func(t *testing.T, f *vfix) []byte {
			// Signed, then modified: the new file's length changes after signing.
			raw := signRole(t, f.role(), f.m1)
			md := f.role()
			md.Signed.Targets[f.newPath].Custom = rawMsg(`{"note":"added after signing"}`)
			signed, err := Canonical(md.Signed)
			if err != nil {
				t.Fatal(err)
			}
			return Envelope(signed, sigsOf(t, raw))
		}, code: api.CodeSignatureInvalid, contains: func(f *vfix) []string { return []string{`"demo"`, f.m1.KeyID} }},
		{name: "delegated key, garbage signature", build: func(t *testing.T, f *vfix) []byte {
			md := f.role()
			signed, _ := Canonical(md.Signed)
			return Envelope(signed, []metadata.Signature{{KeyID: f.m1.KeyID, Signature: []byte("not a signature")}})
		}, code: api.CodeSignatureInvalid, contains: func(f *vfix) []string { return []string{f.m1.KeyID} }},
		{name: "ecdsa key's signature claimed by the ed25519 key id", build: func(t *testing.T, f *vfix) []byte {
			raw := signRole(t, f.role(), f.ec)
			s := sigsOf(t, raw)
			s[0].KeyID = f.m1.KeyID
			return Envelope(mustSigned(t, raw), s)
		}, code: api.CodeSignatureInvalid},
		{name: "1 of 2 signatures for threshold 2",
			state: func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 2, f.m1, f.m2) },
			build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.m2) },
			code:  api.CodeThresholdNotMet, contains: func(*vfix) []string { return []string{`"demo"`, "1 of the 2"} }},
		{name: "1 valid and 1 undelegated for threshold 2",
			state: func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 2, f.m1, f.m2) },
			build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.m1, f.stranger) },
			code:  api.CodeKeyNotDelegated, contains: func(f *vfix) []string { return []string{f.stranger.KeyID} }},
		// Signatures that verify nothing are refused even when the threshold is met: a
		// document the server accepts carries only signatures every reader counts.
		{name: "threshold met plus a signature by an undelegated key",
			build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.stranger, f.m1) },
			code:  api.CodeKeyNotDelegated, contains: func(f *vfix) []string { return []string{f.stranger.KeyID, "remove that signature"} }},
		{name: "threshold met plus another delegated key's bad signature",
			state: func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 1, f.m1, f.m2) },
			build: func(t *testing.T, f *vfix) []byte {
				raw := signRole(t, f.role(), f.m1)
				sigs := sigsOf(t, raw)
				sigs = append(sigs, metadata.Signature{KeyID: f.m2.KeyID, Signature: bytes.Repeat([]byte{7}, 64)})
				return Envelope(mustSigned(t, raw), sigs)
			},
			code: api.CodeSignatureInvalid, contains: func(f *vfix) []string { return []string{f.m2.KeyID} }},
		{name: "1 valid and 1 bad for threshold 2",
			state: func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 2, f.m1, f.m2) },
			build: func(t *testing.T, f *vfix) []byte {
				raw := signRole(t, f.role(), f.m1)
				s := append(sigsOf(t, raw), metadata.Signature{KeyID: f.m2.KeyID, Signature: bytes.Repeat([]byte{1}, 64)})
				return Envelope(mustSigned(t, raw), s)
			},
			code: api.CodeSignatureInvalid, contains: func(f *vfix) []string { return []string{f.m2.KeyID} }},
		{name: "3 of 3 with two signatures",
			state: func(f *vfix, st *ProjectState) { st.Delegation = delegationFor("demo", 3, f.m1, f.m2, f.m3) },
			build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.m1, f.m3) },
			code:  api.CodeThresholdNotMet, contains: func(*vfix) []string { return []string{"2 of the 3"} }},

		// Order: the first thing to fix is reported.
		{name: "bad version and bad path: version first", build: func(t *testing.T, f *vfix) []byte {
			md := f.role()
			md.Signed.Version = 7
			md.Signed.Targets["other/1/f"] = targetFile(f.newContent)
			return signRole(t, md, f.stranger)
		}, code: api.CodeVersionConflict},
		{name: "bad path and missing blob: path first", state: func(f *vfix, st *ProjectState) { f.blobs = map[string]int64{} },
			build: pathCase("other/1.1/f"), code: api.CodePathOutsideProject},
		{name: "missing blob and bad signature: blob first", state: func(f *vfix, st *ProjectState) { f.blobs = map[string]int64{} },
			build: func(t *testing.T, f *vfix) []byte { return signRole(t, f.role(), f.stranger) }, code: api.CodeBlobMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newVFix(t)
			if tc.state != nil {
				tc.state(f, &f.st)
			}
			raw := tc.build(t, f)
			acc, err := ValidateProjectRole(raw, f.st, f.now, f.blobSizes)
			if acc != nil {
				t.Errorf("returned an accepted role with the error")
			}
			var want []string
			if tc.contains != nil {
				want = tc.contains(f)
			}
			wantCode(t, err, tc.code, want...)
		})
	}
}

func TestValidateProjectRoleBlobLookupError(t *testing.T) {
	f := newVFix(t)
	_, err := ValidateProjectRole(signRole(t, f.role(), f.m1), f.st, f.now, func([]string) (map[string]int64, error) { return nil, errInjected })
	if err == nil || api.CodeOf(err) != api.CodeInternal || !strings.Contains(err.Error(), "looking up blobs") {
		t.Fatalf("blob lookup failure gave %v (code %s), want an internal error", err, api.CodeOf(err))
	}
}

// A role accepted by ValidateProjectRole also verifies with go-tuf against the delegation
// BuildDelegator publishes for the project.
func TestValidatedRoleVerifiesThroughDelegator(t *testing.T) {
	f := newVFix(t)
	f.st.Delegation = delegationFor("demo", 2, f.m1, f.m2, f.m3)
	raw := signRole(t, f.role(), f.m2, f.m3)
	if _, err := ValidateProjectRole(raw, f.st, f.now, f.blobSizes); err != nil {
		t.Fatal(err)
	}
	signed, err := buildDelegator(1, f.now.Add(RecentlyClaimedExpiry), []ProjectDelegation{f.st.Delegation})
	if err != nil {
		t.Fatal(err)
	}
	del, err := metadata.Targets().FromBytes(Envelope(signed, nil))
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := del.VerifyDelegate("demo", md); err != nil {
		t.Fatalf("go-tuf refuses what the server accepted: %v", err)
	}
}

// The same ed25519 key registered twice (its hex in lower and upper case: two key IDs)
// counts once for go-tuf; the server refuses the second signature outright. KeyFromAPI refuses upper-case hex, so such a
// delegation can only come from elsewhere (an admin's hand-written claimed metadata).
func TestVerifyThresholdSameKeyTwoKeyIDs(t *testing.T) {
	f := newVFix(t)
	lower := KeyToAPI(f.m1.Key)
	upper := lower
	upper.KeyVal.Public = strings.ToUpper(lower.KeyVal.Public)
	if _, err := KeyFromAPI(upper); api.CodeOf(err) != api.CodeInvalidKey {
		t.Fatalf("KeyFromAPI(upper-case hex): %v, want invalid_key", err)
	}
	k2 := &metadata.Key{Type: upper.KeyType, Scheme: upper.Scheme, Value: metadata.KeyVal{PublicKey: upper.KeyVal.Public}}
	id2 := KeyID(k2)
	if id2 == f.m1.KeyID {
		t.Fatal("upper-case hex has the same key ID; this test's premise is gone")
	}
	f.st.Delegation = ProjectDelegation{Name: "demo", Keys: map[string]*metadata.Key{f.m1.KeyID: f.m1.Key, id2: k2}, KeyIDs: []string{f.m1.KeyID, id2}, Threshold: 2}
	raw := signRole(t, f.role(), f.m1)
	s := sigsOf(t, raw)
	s = append(s, metadata.Signature{KeyID: id2, Signature: s[0].Signature})
	_, err := ValidateProjectRole(Envelope(mustSigned(t, raw), s), f.st, f.now, f.blobSizes)
	wantCode(t, err, api.CodeSignatureRepeated, "one public key")
}

// NewFile.SHA256 is lowercase hex, the form blobs are keyed by.
func TestValidateNewFileSHA256IsLowercaseHex(t *testing.T) {
	f := newVFix(t)
	acc, err := ValidateProjectRole(signRole(t, f.role(), f.m1), f.st, f.now, f.blobSizes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(f.newContent)
	if acc.NewFiles[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("SHA256 %q is not lowercase hex of the content", acc.NewFiles[0].SHA256)
	}
}

// TestValidateProjectRoleReleaseTags: a release whose OCI tag (api.ReleaseTag) another
// release of the project has is refused (oci_tag_collision), whether the other is published
// or added by the same role version; a collision accepted by an older server does not block
// the project's next, unrelated release, but no file may be added to either release.
func TestValidateProjectRoleReleaseTags(t *testing.T) {
	f := newVFix(t)
	file := func(p string) (string, *metadata.TargetFiles) { return p, targetFile(f.newContent) }
	published := func(paths ...string) map[string]PublishedFile {
		m := map[string]PublishedFile{}
		for _, p := range paths {
			m[p] = PublishedFile{Length: int64(len(f.newContent)), SHA256: sha256Hex(f.newContent)}
		}
		return m
	}
	for _, c := range []struct {
		name      string
		published []string // besides nothing: the state's files
		added     []string
		wantErr   string // "" when accepted; else text the detail must hold
	}{
		{"3.0+x after 3.0_x", []string{"demo/3.0_x/a"}, []string{"demo/3.0+x/a"}, "already the tag of release demo 3.0_x"},
		{"3.0_x after 3.0+x", []string{"demo/3.0+x/a"}, []string{"demo/3.0_x/a"}, "already the tag of release demo 3.0+x"},
		{"both at once", nil, []string{"demo/3.0+x/a", "demo/3.0_x/a"}, "releases demo 3.0+x and demo 3.0_x would both be the OCI tag demo:3.0_x"},
		{"distinct tags", []string{"demo/3.0+x/a"}, []string{"demo/3.0+y/a", "demo/3.0/a", "demo/3.0-x/a"}, ""},
		{"a file added to the same release", []string{"demo/3.0+x/a"}, []string{"demo/3.0+x/b"}, ""},
		{"an old collision, a new release", []string{"demo/3.0+x/a", "demo/3.0_x/a"}, []string{"demo/4.0/a"}, ""},
		{"an old collision, a file added to one side", []string{"demo/3.0+x/a", "demo/3.0_x/a"}, []string{"demo/3.0_x/b"}, "already the tag of release demo 3.0+x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := f.st
			st.Files = published(c.published...)
			md := newProjectRole(2, f.now.Add(ProjectRoleExpiry), map[string]*metadata.TargetFiles{})
			for _, p := range append(slices.Clone(c.published), c.added...) {
				k, v := file(p)
				md.Signed.Targets[k] = v
			}
			_, err := ValidateProjectRole(signRole(t, md, f.m1), st, f.now, f.blobSizes)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			p := api.ProblemFor(err)
			if p.Code != api.CodeOCITagCollision || !strings.Contains(p.Detail, c.wantErr) {
				t.Fatalf("got %v (%s), want oci_tag_collision with %q", err, p.Code, c.wantErr)
			}
		})
	}
}

// BenchmarkValidateProposal is the request handler's CPU for one upload of a role that
// already lists 50 files (the load harness's roles reach 35–60 at 32 uploaders).
func BenchmarkValidateProposal(b *testing.B) {
	f := newVFix(b)
	targets := map[string]*metadata.TargetFiles{}
	for i := range 50 {
		content := []byte(fmt.Sprintf("release 0.%d bytes", i))
		path := fmt.Sprintf("demo/0.%d/demo-0.%d.tar.gz", i, i)
		targets[path] = targetFile(content)
		f.st.Files[path] = PublishedFile{Length: int64(len(content)), SHA256: sha256Hex(content)}
		f.blobs[sha256Hex(content)] = int64(len(content))
	}
	targets[f.oldPath] = targetFile(f.oldContent)
	targets[f.newPath] = targetFile(f.newContent)
	raw := signRole(b, newProjectRole(2, f.now.Add(ProjectRoleExpiry), targets), f.m1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ValidateProposal(raw, f.st, f.now, f.blobSizes); err != nil {
			b.Fatal(err)
		}
	}
}
