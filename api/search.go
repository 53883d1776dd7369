package api

import "time"

// SearchNote is what every search answer says about itself: its results come from the
// server's database, unverified.
const SearchNote = "search results are pointers from the server's database, not verified metadata: verify through TUF (cairn search does) before trusting a hash, a key or a release"

// SearchResult is the answer of GET /api/v1/search. Kind is "projects" when only project
// filters were given (name prefix, maintainer key) and "files" when a file filter was
// (sha256, publication date range); the project filters then narrow the files.
type SearchResult struct {
	Kind     string          `json:"kind"`
	Projects []SearchProject `json:"projects,omitempty"`
	Files    []SearchFile    `json:"files,omitempty"`
	// Next is the cursor of the next page; empty on the last one.
	Next string `json:"next,omitempty"`
	Note string `json:"note"`
}

// SearchProject is a project that matched.
type SearchProject struct {
	Name      string   `json:"name"`
	Delegator string   `json:"delegator"`
	Threshold int      `json:"threshold"`
	KeyIDs    []string `json:"key_ids"`
	// RoleVersion is the published version of the project's role.
	RoleVersion int64 `json:"role_version"`
}

// SearchFile is a published release file that matched.
type SearchFile struct {
	Project string `json:"project"`
	Version string `json:"version"`
	File    string `json:"file"`
	Path    string `json:"path"`
	Length  int64  `json:"length"`
	SHA256  string `json:"sha256"`
	// PublishedAt is when the server accepted the file; the next snapshot published it.
	PublishedAt time.Time `json:"published_at"`
}
