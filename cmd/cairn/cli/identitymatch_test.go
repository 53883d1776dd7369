package cli

import "testing"

func TestIdentityMatcher(t *testing.T) {
	m := identityMatcher{domains: []string{"hello.dev"}, repository: "https://github.com/hello/hello/"}
	for san, want := range map[string]bool{
		"alice@hello.dev":            true,
		"bob@sub.hello.dev":          true,
		"eve@hello.dev.evil.example": false,
		"https://github.com/hello/hello/.github/workflows/release.yml@refs/tags/v1":      true,
		"https://github.com/hello/hello-fork/.github/workflows/release.yml@refs/tags/v1": false,
		"https://github.com/hello/hellox":                                                false,
		"https://ci.hello.dev/job/1":                                                     true,
		"mallory@example.org":                                                            false,
	} {
		if got := m.matches(san); got != want {
			t.Errorf("matches(%q) = %v, want %v", san, got, want)
		}
	}
	if (identityMatcher{}).matches("alice@hello.dev") || (identityMatcher{}).String() != "" {
		t.Error("an empty matcher matches or names something")
	}
}
