package tufrepo

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

func TestValidateProjectName(t *testing.T) {
	tests := []struct {
		name     string
		ok       bool
		contains []string
	}{
		{"a", true, nil},
		{"0", true, nil},
		{"foo", true, nil},
		{"foo-bar", true, nil},
		{"foo.bar_baz-9", true, nil},
		{"9lives", true, nil},
		{"a-", true, nil},
		{"a..b", true, nil},
		{"root-tools", true, nil},
		{"claimed2", true, nil},
		{strings.Repeat("a", 64), true, nil},
		{strings.Repeat("a", 65), false, []string{"65 characters", "at most 64"}},
		{strings.Repeat("é", 40), false, []string{"80 characters"}}, // bytes, not runes
		{"", false, []string{"empty"}},
		{"Foo", false, []string{`use "foo"`, "not normalised"}},
		{"FOO-Bar.Baz", false, []string{`use "foo-bar.baz"`}},
		{"-foo", false, []string{`"-foo"`, "starting with a letter or digit"}},
		{".foo", false, nil},
		{"_foo", false, nil},
		{"foo/bar", false, nil},
		{"foo bar", false, nil},
		{"foo*", false, nil},
		{"foo+bar", false, nil},
		{"føø", false, nil},
		{"FØØ", false, nil}, // lowercase is still not ASCII: no "use" hint
		{"ﬀ", false, nil},
		{"foo\n", false, nil},
		{"..", false, nil},
		{"root", false, []string{`"root"`, "reserved"}},
		{"timestamp", false, []string{"reserved"}},
		{"snapshot", false, []string{"reserved"}},
		{"targets", false, []string{"reserved"}},
		{"claimed", false, []string{"reserved"}},
		{"recently-claimed", false, []string{"reserved"}},
		{"unclaimed", false, []string{"reserved"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateProjectName(tc.name)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantCode(t, err, api.CodeInvalidName, tc.contains...)
			if strings.Contains(tc.name, "ø") && strings.Contains(err.Error(), "use \"") {
				t.Errorf("hint for a name that has no valid lowercase form: %v", err)
			}
		})
	}
}

// BUG: an uppercase reserved name is told to use its lowercase form, which is refused too.
func TestValidateProjectNameHintIsValid(t *testing.T) {
	for _, name := range []string{"Root", "TARGETS", "Recently-Claimed", "Unclaimed"} {
		err := ValidateProjectName(name)
		if err == nil {
			t.Fatalf("%q accepted", name)
		}
		if i := strings.Index(err.Error(), `use "`); i >= 0 {
			hint := err.Error()[i+5:]
			hint = hint[:strings.IndexByte(hint, '"')]
			if herr := ValidateProjectName(hint); herr != nil {
				t.Errorf("%q: hint %q is itself refused: %v", name, hint, herr)
			}
		}
	}
}

func TestIsReservedRole(t *testing.T) {
	for _, n := range []string{RoleRoot, RoleTimestamp, RoleSnapshot, RoleTargets, RoleClaimed, RoleRecentlyClaimed, "unclaimed"} {
		if !IsReservedRole(n) {
			t.Errorf("%q is not reserved", n)
		}
	}
	for _, n := range []string{"", "roots", "Root", "targets2", "recently_claimed", "bins"} {
		if IsReservedRole(n) {
			t.Errorf("%q is reserved", n)
		}
	}
}

func TestCanonicalProjectName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"foo", "foo"},
		{"Foo", "foo"},
		{"foo-bar", "foo-bar"},
		{"foo.bar", "foo-bar"},
		{"foo_bar", "foo-bar"},
		{"Foo.Bar_Baz", "foo-bar-baz"},
		{"foo__bar", "foo-bar"},
		{"foo-._bar", "foo-bar"},
		{"foo...bar", "foo-bar"},
		{"a.b-c_d", "a-b-c-d"},
		{"foo-", "foo-"},
		{"foo._", "foo-"},
		{"  Foo  ", "foo"},
		{"9.0", "9-0"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := CanonicalProjectName(tc.in); got != tc.want {
			t.Errorf("CanonicalProjectName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Names that must collide (impersonation) and names that must not.
	if CanonicalProjectName("foo.bar") != CanonicalProjectName("FOO_bar") {
		t.Error("foo.bar and FOO_bar do not collide")
	}
	if CanonicalProjectName("foobar") == CanonicalProjectName("foo-bar") {
		t.Error("foobar and foo-bar collide")
	}
}

func TestValidateComponent(t *testing.T) {
	tests := []struct {
		s  string
		ok bool
	}{
		{"1.0.0", true},
		{"1.0.0+local.1", true},
		{"1.0.0-rc.1", true},
		{"v2", true},
		{"A", true},
		{"0", true},
		{"foo_bar-1.0.tar.gz", true},
		{"pkg-1.0-py3-none-any.whl", true},
		{strings.Repeat("a", 30), true},
		{strings.Repeat("a", 31), false},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"-rc", false},
		{"_x", false},
		{"+x", false},
		{"a/b", false},
		{`a\b`, false},
		{"a*", false},
		{"a?", false},
		{"a[b]", false},
		{"a{b,c}", false},
		{"a b", false},
		{"a:b", false},
		{"a%2f", false},
		{"é", false},
		{"a\x00", false},
		{"a\n", false},
	}
	for _, tc := range tests {
		err := ValidateComponent("file name", tc.s, 30)
		if tc.ok && err != nil {
			t.Errorf("ValidateComponent(%q): %v", tc.s, err)
		}
		if !tc.ok {
			if err == nil {
				t.Errorf("ValidateComponent(%q) accepted", tc.s)
				continue
			}
			wantCode(t, err, api.CodeInvalidPath, "file name", "1 to 30")
		}
	}
}

// FuzzComponent holds the byte loop of ValidateComponent to the pattern it implements.
func FuzzComponent(f *testing.F) {
	spec := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	for _, s := range []string{"", "a", "1.0+x_y-z", ".a", "a\n", "é", "a/b", "Z9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isComponent(s), spec.MatchString(s); got != want {
			t.Fatalf("isComponent(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}

func TestSplitTargetPath(t *testing.T) {
	tests := []struct {
		path              string
		version, filename string
		code              api.Code
		contains          []string
	}{
		{path: "demo/1.0/demo-1.0.tar.gz", version: "1.0", filename: "demo-1.0.tar.gz"},
		{path: "demo/2.0+local/a", version: "2.0+local", filename: "a"},
		{path: "demo/1.0", code: api.CodeInvalidPath, contains: []string{`"demo/1.0"`, "<project>/<version>/<filename>"}},
		{path: "demo", code: api.CodeInvalidPath},
		{path: "", code: api.CodeInvalidPath},
		{path: "demo/1.0/a/b", code: api.CodeInvalidPath},
		{path: "demo/1.0/", code: api.CodeInvalidPath, contains: []string{"file name"}},
		{path: "demo//a", code: api.CodeInvalidPath, contains: []string{"release version"}},
		{path: "/demo/a", code: api.CodePathOutsideProject, contains: []string{`"demo/"`}},
		{path: "other/1.0/a", code: api.CodePathOutsideProject, contains: []string{`"other/1.0/a"`, `project "demo"`}},
		{path: "demox/1.0/a", code: api.CodePathOutsideProject},
		{path: "DEMO/1.0/a", code: api.CodePathOutsideProject},
		{path: "demo/../a", code: api.CodeInvalidPath, contains: []string{"release version", `".."`}},
		{path: "demo/1.0/..", code: api.CodeInvalidPath, contains: []string{"file name"}},
		{path: "demo/1.0/.a", code: api.CodeInvalidPath},
		{path: "demo/1.0/*", code: api.CodeInvalidPath},
		{path: "demo/*/a", code: api.CodeInvalidPath},
		{path: "demo/1.0/" + strings.Repeat("f", MaxFilenameLength), version: "1.0", filename: strings.Repeat("f", MaxFilenameLength)},
		{path: "demo/1.0/" + strings.Repeat("f", MaxFilenameLength+1), code: api.CodeInvalidPath},
		{path: "demo/" + strings.Repeat("1", MaxVersionLength) + "/a", version: strings.Repeat("1", MaxVersionLength), filename: "a"},
		{path: "demo/" + strings.Repeat("1", MaxVersionLength+1) + "/a", code: api.CodeInvalidPath},
	}
	for _, tc := range tests {
		v, f, err := SplitTargetPath("demo", tc.path)
		if tc.code == "" {
			if err != nil || v != tc.version || f != tc.filename {
				t.Errorf("SplitTargetPath(%q) = %q, %q, %v", tc.path, v, f, err)
			}
			if TargetPath("demo", v, f) != tc.path {
				t.Errorf("TargetPath does not invert SplitTargetPath for %q", tc.path)
			}
			continue
		}
		if v != "" || f != "" {
			t.Errorf("SplitTargetPath(%q) returned parts with an error", tc.path)
		}
		wantCode(t, err, tc.code, tc.contains...)
	}
}

func TestLayoutNames(t *testing.T) {
	if ProjectPathPattern("demo") != "demo/*/*" {
		t.Error(ProjectPathPattern("demo"))
	}
	if MetaName("demo") != "demo.json" || VersionedName("snapshot", 12) != "12.snapshot.json" {
		t.Error(MetaName("demo"), VersionedName("snapshot", 12))
	}
	// The create request bound leaves room for a maximal role in base64 plus the rest.
	if MaxCreateRequestSize <= MaxProjectRoleBytes*4/3 {
		t.Error("MaxCreateRequestSize does not fit a base64 project role")
	}
}
