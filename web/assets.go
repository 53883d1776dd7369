package web

import (
	"crypto/sha256"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-chi/chi/v5"
)

// The built assets are committed (app.js is built from ui/ by `make web-assets`; a test
// rebuilds it and compares), so `go build` needs no Node toolchain. DESIGN.md, "Web UI".
//
//go:embed static templates
var files embed.FS

// assets are the static files with the content hash that versions their URLs.
type assets struct {
	Hash      string            // of every static file together: one URL prefix per build
	Integrity map[string]string // file → SRI sha384
	files     map[string][]byte
}

// URL returns the immutable URL of a static file.
func (a assets) URL(name string) string { return "/static/" + a.Hash + "/" + name }

// SRI returns the Subresource Integrity value of a static file.
func (a assets) SRI(name string) string { return a.Integrity[name] }

func loadAssets() assets {
	a := assets{Integrity: map[string]string{}, files: map[string][]byte{}}
	all := sha256.New()
	entries, err := fs.ReadDir(files, "static")
	if err != nil {
		panic(fmt.Sprintf("web: reading embedded assets: %v", err))
	}
	for _, e := range entries {
		b, err := files.ReadFile("static/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("web: reading embedded asset %s: %v", e.Name(), err))
		}
		a.files[e.Name()] = b
		fmt.Fprintf(all, "%s %d\n", e.Name(), len(b))
		all.Write(b)
		s := sha512.Sum384(b)
		a.Integrity[e.Name()] = "sha384-" + base64.StdEncoding.EncodeToString(s[:])
	}
	a.Hash = hex.EncodeToString(all.Sum(nil)[:8])
	return a
}

// static serves /static/<hash>/<file>. The hash names this build's assets, so they are
// cached forever; a page from an older build asking for its hash gets today's file.
func (u *UI) static(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "file")
	b, ok := u.asset.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if chi.URLParam(r, "hash") == u.asset.Hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

var funcs = template.FuncMap{
	"text":    userText,
	"short":   shortID,
	"time":    fmtTime,
	"size":    fmtSize,
	"add":     func(a, b int) int { return a + b },
	"version": func(v int64) string { return strconv.FormatInt(v, 10) },
	"verifyFor": func(kind, project, version, role string, roleVersion int64, sha string) verifyAttrs {
		return verifyAttrs{Kind: kind, Project: project, Version: version, Role: role, RoleVersion: roleVersion, SHA256: sha}
	},
}

// verifyAttrs tells the page's script what to verify.
type verifyAttrs struct {
	Kind, Project, Version, Role string
	RoleVersion                  int64
	SHA256                       string
}

func parseTemplates(a assets) *template.Template {
	t := template.New("").Funcs(funcs)
	return template.Must(t.ParseFS(files, "templates/*.html"))
}

// userText renders text a user controls (yank reasons, custom data, names, queries):
// HTML-escaped, isolated with <bdi> so it cannot reorder the text around it, and with
// every invisible control or bidirectional-override character shown as its code point,
// so "‮gpj.exe" cannot pass for "exe.jpg".
func userText(s string) template.HTML {
	var b strings.Builder
	b.WriteString("<bdi>")
	start := 0
	for i, r := range s {
		if !hiddenRune(r) {
			continue
		}
		b.WriteString(html.EscapeString(s[start:i]))
		fmt.Fprintf(&b, `<span class="ctl" title="invisible character U+%04X">U+%04X</span>`, r, r)
		start = i + len(string(r))
	}
	b.WriteString(html.EscapeString(s[start:]))
	b.WriteString("</bdi>")
	return template.HTML(b.String())
}

// hiddenRune reports characters that change how text reads without being seen: controls,
// bidirectional marks, embeddings, overrides and isolates, zero-width characters.
func hiddenRune(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case unicode.IsControl(r), r == 0xFFFD:
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return true
	case r >= 0x200B && r <= 0x200D, r == 0x2060, r == 0xFEFF:
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

func shortID(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtSize(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d bytes (%.1f MiB)", n, float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%d bytes (%.1f KiB)", n, float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
