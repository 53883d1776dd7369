// Command refserver is the minimal Go reference for the metadata GET benchmark: net/http
// serving the files of a directory from memory under /metadata/, with the headers cairnd
// sends (Content-Type, Cache-Control, ETag), and nothing else.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type file struct {
	raw          []byte
	etag, cache  string
	contentLenHV []string
}

func main() {
	dir := flag.String("dir", "", "directory of metadata files")
	listen := flag.String("listen", "127.0.0.1:8082", "address")
	flag.Parse()
	files := map[string]*file{}
	ents, err := os.ReadDir(*dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(*dir, e.Name()))
		if err != nil {
			log.Fatal(err)
		}
		sum := sha256.Sum256(b)
		cache := "public, max-age=31536000, immutable"
		if e.Name() == "timestamp.json" || e.Name() == "root.json" {
			cache = "public, max-age=5"
		}
		files[e.Name()] = &file{raw: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, cache: cache, contentLenHV: []string{strconv.Itoa(len(b))}}
	}
	ct := []string{"application/json"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/metadata/")
		f := files[name]
		if !ok || f == nil {
			http.NotFound(w, r)
			return
		}
		hd := w.Header()
		hd["Content-Type"] = ct
		hd["Cache-Control"] = []string{f.cache}
		hd["Etag"] = []string{f.etag}
		hd["Content-Length"] = f.contentLenHV
		if r.Header.Get("If-None-Match") == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(f.raw)
	})
	log.Fatal(http.ListenAndServe(*listen, h))
}
