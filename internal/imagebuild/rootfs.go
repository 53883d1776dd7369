package imagebuild

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"
)

// The image's user: the "nonroot" user of distroless images, so that a Kubernetes
// securityContext written for those (runAsUser 65532) fits this image too.
const (
	nonrootUID = 65532
	// User is the image config's User: numeric, so that a runtime can check runAsNonRoot
	// without reading /etc/passwd.
	User = "65532:65532"
	// BinaryPath is where cairnd is in the image; it is the entrypoint.
	BinaryPath = "/usr/local/bin/cairnd"
	// CABundlePath is where Go's crypto/x509 looks first on Linux.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

// maxCABundle bounds the CA bundle read into the image (Debian's is about 200 KB).
const maxCABundle = 8 << 20

// entry is one file or directory of a layer.
type entry struct {
	name string // without a leading slash; directories end in "/"
	mode int64
	uid  int
	data []byte
}

// baseEntries is the static base: what a static Go binary needs from an operating system
// image and nothing else (no shell, no package manager, no libc). /tmp is world-writable
// and sticky, for a runtime that leaves the root file system writable; with a read-only
// root file system (the Helm chart) an emptyDir is mounted there.
func baseEntries(caBundle []byte) []entry {
	return []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: CABundlePath[1:], mode: 0o644, data: caBundle},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: nonrootUID},
		{name: "root/", mode: 0o700},
		{name: "tmp/", mode: 0o1777},
	}
}

func binaryEntries(bin []byte) []entry {
	return []entry{
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: "usr/local/bin/", mode: 0o755},
		{name: BinaryPath[1:], mode: 0o755, data: bin},
	}
}

// layerTar writes entries as an uncompressed tar in the given order, every header with
// the same modification time and no user or group names, so that the same inputs give
// the same bytes (and layer digest) on every machine.
func layerTar(entries []entry, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime.UTC().Truncate(time.Second), Format: tar.FormatPAX}
		if e.name[len(e.name)-1] == '/' {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// readCABundle reads a PEM bundle of CA certificates and checks that every block is a
// certificate that parses, so that a truncated or wrong file fails the build, not TLS in
// production.
func readCABundle(path string) ([]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("CA certificates %s: %w (on Debian: apt-get install ca-certificates; or pass another bundle)", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCABundle+1))
	if err != nil {
		return nil, 0, fmt.Errorf("CA certificates %s: %w", path, err)
	}
	if len(b) > maxCABundle {
		return nil, 0, fmt.Errorf("CA certificates %s: larger than %d bytes: not a CA bundle", path, maxCABundle)
	}
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, 0, fmt.Errorf("CA certificates %s: text after certificate %d is not PEM", path, n)
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, 0, fmt.Errorf("CA certificates %s: block %d is %q, want CERTIFICATE", path, n+1, blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, 0, fmt.Errorf("CA certificates %s: certificate %d: %w", path, n+1, err)
		}
		n++
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("CA certificates %s: no PEM certificate in the file", path)
	}
	return b, n, nil
}
