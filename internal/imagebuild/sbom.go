package imagebuild

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/package-url/packageurl-go"
	"golang.org/x/mod/module"
)

// SPDXMediaType is the SBOM's media type, and the artifactType of its referrer manifest.
const SPDXMediaType = "application/spdx+json"

// SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/), the fields Cairn fills in.
type (
	SPDXDocument struct {
		SPDXVersion       string             `json:"spdxVersion"`
		DataLicense       string             `json:"dataLicense"`
		SPDXID            string             `json:"SPDXID"`
		Name              string             `json:"name"`
		DocumentNamespace string             `json:"documentNamespace"`
		CreationInfo      SPDXCreationInfo   `json:"creationInfo"`
		Packages          []SPDXPackage      `json:"packages"`
		Relationships     []SPDXRelationship `json:"relationships"`
	}
	SPDXCreationInfo struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
		Comment  string   `json:"comment,omitempty"`
	}
	SPDXPackage struct {
		Name                  string            `json:"name"`
		SPDXID                string            `json:"SPDXID"`
		VersionInfo           string            `json:"versionInfo,omitempty"`
		PackageFileName       string            `json:"packageFileName,omitempty"`
		Supplier              string            `json:"supplier,omitempty"`
		DownloadLocation      string            `json:"downloadLocation"`
		FilesAnalyzed         bool              `json:"filesAnalyzed"`
		Checksums             []SPDXChecksum    `json:"checksums,omitempty"`
		LicenseConcluded      string            `json:"licenseConcluded"`
		LicenseDeclared       string            `json:"licenseDeclared"`
		CopyrightText         string            `json:"copyrightText"`
		Comment               string            `json:"comment,omitempty"`
		ExternalRefs          []SPDXExternalRef `json:"externalRefs,omitempty"`
		PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
	}
	SPDXChecksum struct {
		Algorithm     string `json:"algorithm"`
		ChecksumValue string `json:"checksumValue"`
	}
	SPDXExternalRef struct {
		ReferenceCategory string `json:"referenceCategory"`
		ReferenceType     string `json:"referenceType"`
		ReferenceLocator  string `json:"referenceLocator"`
	}
	SPDXRelationship struct {
		SPDXElementID      string `json:"spdxElementId"`
		RelationshipType   string `json:"relationshipType"`
		RelatedSPDXElement string `json:"relatedSpdxElement"`
	}
)

const noAssertion = "NOASSERTION"

// sbomInput is what one platform's SBOM is made from.
type sbomInput struct {
	info      *buildinfo.BuildInfo // read from the binary that goes into the image
	binSHA256 string               // hex
	version   string               // the image's version label
	revision  string               // the commit
	platform  Platform
	created   time.Time
	source    string // org.opencontainers.image.source
	ca        caPackage
}

// caPackage describes the CA bundle copied into the image.
type caPackage struct {
	sha256  string // hex, of the bundle as copied
	version string // Debian package version, "" when unknown
	distro  string // e.g. debian-12, "" when unknown
}

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// spdxID makes an SPDX element ID (SPDXRef-[A-Za-z0-9.-]+) for a module. Sanitising
// alone could make two modules collide (a/b and a-b), so a short hash of the exact
// path@version is appended.
func spdxID(kind, path, version string) string {
	h := sha256.Sum256([]byte(path + "@" + version))
	return "SPDXRef-Package-" + kind + "-" + strings.Trim(spdxIDUnsafe.ReplaceAllString(path, "-"), "-") + "-" + hex.EncodeToString(h[:4])
}

// goPURL is the package URL of a Go module (pkg:golang/<path>@<version>).
func goPURL(path, version string) string {
	ns, name := "", path
	if i := strings.LastIndex(path, "/"); i >= 0 {
		ns, name = path[:i], path[i+1:]
	}
	return packageurl.NewPackageURL(packageurl.TypeGolang, ns, name, version, nil, "").ToString()
}

// h1ToSHA256 turns a go.sum hash ("h1:" and the base64 of a SHA-256) into hex, the form
// SPDX checksums take. It is the hash of the module's file tree (golang.org/x/mod's
// dirhash), which is what `go mod verify` and the checksum database check, not of a file.
func h1ToSHA256(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != sha256.Size {
		return "", false
	}
	return hex.EncodeToString(b), true
}

// goModulePackage is the SPDX package of one dependency, with its replacement applied:
// the code linked in is the replacement's.
func goModulePackage(m *debug.Module) SPDXPackage {
	path, version, sum := m.Path, m.Version, m.Sum
	comment := ""
	if r := m.Replace; r != nil {
		comment = fmt.Sprintf("replaces %s@%s", m.Path, m.Version)
		path, version, sum = r.Path, r.Version, r.Sum
	}
	p := SPDXPackage{
		Name: path, SPDXID: spdxID("go", path, version), VersionInfo: version,
		DownloadLocation: noAssertion, LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
		Comment: comment, PrimaryPackagePurpose: "LIBRARY",
	}
	if version == "" { // a replacement by a local directory: nothing to download or hash
		p.Comment = strings.TrimSpace(p.Comment + " (local directory replacement)")
		return p
	}
	if ep, err := module.EscapePath(path); err == nil {
		if ev, err := module.EscapeVersion(version); err == nil {
			p.DownloadLocation = "https://proxy.golang.org/" + ep + "/@v/" + ev + ".zip"
		}
	}
	if hx, ok := h1ToSHA256(sum); ok {
		p.Checksums = []SPDXChecksum{{Algorithm: "SHA256", ChecksumValue: hx}}
		p.Comment = strings.TrimSpace(p.Comment + " checksum: the go.sum hash " + sum + " (SHA-256 of the module's file tree, golang.org/x/mod/sumdb/dirhash), in hex")
	}
	p.ExternalRefs = []SPDXExternalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: goPURL(path, version)}}
	return p
}

// buildSBOM is the SPDX document of one platform's image: cairnd (the main module at the
// image's version, its binary's SHA-256), the Go standard library it was built with,
// every module linked into it as the binary's build information lists it, and the CA
// bundle. Its creation time is the commit time, so that a rebuild gives the same bytes.
func buildSBOM(in sbomInput) ([]byte, error) {
	bi := in.info
	if bi.Main.Path == "" {
		return nil, fmt.Errorf("sbom: the binary's build information names no main module (built with go run, or not with module mode?)")
	}
	plat := in.platform.String()
	created := in.created.UTC().Format(time.RFC3339)
	doc := SPDXDocument{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              fmt.Sprintf("cairnd image %s %s", in.version, plat),
		DocumentNamespace: fmt.Sprintf("https://%s/spdx/cairnd/%s/%s/%s", bi.Main.Path, in.version, strings.ReplaceAll(plat, "/", "-"), in.binSHA256[:16]),
		CreationInfo: SPDXCreationInfo{Created: created, Creators: []string{"Tool: cairn-mkimage"},
			Comment: "Generated from the build information of the cairnd binary in the image (debug/buildinfo), not by scanning files."},
	}
	var settings []string
	for _, s := range bi.Settings {
		settings = append(settings, s.Key+"="+s.Value)
	}
	mainID := "SPDXRef-Package-cairnd"
	download := noAssertion
	if in.revision != "" && in.source != "" {
		download = "git+" + in.source + "@" + in.revision
	}
	doc.Packages = append(doc.Packages, SPDXPackage{
		Name: bi.Main.Path, SPDXID: mainID, VersionInfo: in.version, PackageFileName: BinaryPath[1:],
		DownloadLocation: download, Checksums: []SPDXChecksum{{Algorithm: "SHA256", ChecksumValue: in.binSHA256}},
		LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
		Comment:               fmt.Sprintf("cairnd (%s) for %s from commit %s; checksum: of the binary; build settings: %s", bi.Path, plat, in.revision, strings.Join(settings, " ")),
		ExternalRefs:          []SPDXExternalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: goPURL(bi.Main.Path, in.version)}},
		PrimaryPackagePurpose: "APPLICATION",
	})
	doc.Relationships = append(doc.Relationships, SPDXRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", mainID})

	// The standard library, as vulnerability scanners expect it (name stdlib, PURL version
	// without the "go" prefix).
	stdID := spdxID("go", "stdlib", bi.GoVersion)
	doc.Packages = append(doc.Packages, SPDXPackage{
		Name: "stdlib", SPDXID: stdID, VersionInfo: bi.GoVersion, DownloadLocation: "https://go.dev/dl/",
		LicenseConcluded: noAssertion, LicenseDeclared: "BSD-3-Clause", CopyrightText: noAssertion,
		ExternalRefs:          []SPDXExternalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: goPURL("stdlib", strings.TrimPrefix(bi.GoVersion, "go"))}},
		PrimaryPackagePurpose: "LIBRARY",
	})
	doc.Relationships = append(doc.Relationships, SPDXRelationship{mainID, "DEPENDS_ON", stdID})

	deps := make([]*debug.Module, len(bi.Deps))
	copy(deps, bi.Deps)
	sort.Slice(deps, func(i, j int) bool { return deps[i].Path < deps[j].Path })
	for _, m := range deps {
		p := goModulePackage(m)
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, SPDXRelationship{mainID, "DEPENDS_ON", p.SPDXID})
	}

	ca := SPDXPackage{
		Name: "ca-certificates", SPDXID: "SPDXRef-Package-ca-certificates", VersionInfo: in.ca.version, PackageFileName: CABundlePath[1:],
		DownloadLocation: noAssertion, Checksums: []SPDXChecksum{{Algorithm: "SHA256", ChecksumValue: in.ca.sha256}},
		LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion,
		Comment:               "the CA certificate bundle of the build machine, copied into the image; checksum: of the bundle file",
		PrimaryPackagePurpose: "FILE",
	}
	if in.ca.version != "" {
		ca.Supplier = "Organization: Debian"
		ca.Comment = "the CA certificate bundle of the build machine's Debian ca-certificates package, copied into the image; checksum: of the bundle file"
		var q packageurl.Qualifiers
		q = append(q, packageurl.Qualifier{Key: "arch", Value: "all"})
		if in.ca.distro != "" {
			q = append(q, packageurl.Qualifier{Key: "distro", Value: in.ca.distro})
		}
		ca.ExternalRefs = []SPDXExternalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
			ReferenceLocator: packageurl.NewPackageURL(packageurl.TypeDebian, "debian", "ca-certificates", in.ca.version, q, "").ToString()}}
	}
	doc.Packages = append(doc.Packages, ca)
	doc.Relationships = append(doc.Relationships, SPDXRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", ca.SPDXID})

	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	return append(b, '\n'), nil
}

func setting(bi *buildinfo.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
