// Command fastref is a second reference for the metadata GET benchmark: the same files and
// headers as bench/refserver, served from memory by fasthttp instead of net/http. It is a
// separate module so that Cairn itself does not depend on fasthttp; it answers "how close
// to nginx can a Go server get", not "what cairnd does".
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/valyala/fasthttp"
)

type file struct {
	raw         []byte
	etag, cache string
}

func main() {
	dir := flag.String("dir", "", "directory of metadata files")
	listen := flag.String("listen", "127.0.0.1:8083", "address")
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
		files[e.Name()] = &file{raw: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, cache: cache}
	}
	h := func(ctx *fasthttp.RequestCtx) {
		name, ok := strings.CutPrefix(string(ctx.Path()), "/metadata/")
		f := files[name]
		if !ok || f == nil {
			ctx.Error("not found", fasthttp.StatusNotFound)
			return
		}
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Cache-Control", f.cache)
		ctx.Response.Header.Set("ETag", f.etag)
		if string(ctx.Request.Header.Peek("If-None-Match")) == f.etag {
			ctx.SetStatusCode(fasthttp.StatusNotModified)
			return
		}
		ctx.SetBody(f.raw)
	}
	log.Fatal((&fasthttp.Server{Handler: h, Name: "fastref"}).ListenAndServe(*listen))
}
