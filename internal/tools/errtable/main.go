// Command errtable writes the error-code tables of api/openapi.yaml (Problem.code: its
// description table and enum, REST codes only) and README.md ("Error codes": every code,
// REST and OCI) from the one error registry, api.Registry. Each table sits between
// marker lines; everything outside them is left alone.
//
//	go run ./internal/tools/errtable -w   # rewrite the tables
//	go run ./internal/tools/errtable      # check: exit 1 if a committed table differs
//
// The test of this package runs the check, so `go test ./internal/tools/errtable` (and
// make test) fails when the registry changes and the tables were not regenerated.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-dev/cairn/api"
)

// Regenerate is the command that rewrites the tables, for messages.
const Regenerate = "go run ./internal/tools/errtable -w"

// table is one generated region of a file: the lines between begin and end are render's.
type table struct {
	file       string // relative to the module root
	begin, end string // the marker lines, without their indentation
	render     func() string
}

func tables() []table {
	return []table{
		{
			file:   "api/openapi.yaml",
			begin:  "# BEGIN error codes: generated from api.Registry by " + Regenerate + "; do not edit",
			end:    "# END error codes",
			render: openAPICode,
		},
		{
			file:   "README.md",
			begin:  "<!-- BEGIN error codes: generated from api.Registry by " + Regenerate + "; do not edit -->",
			end:    "<!-- END error codes -->",
			render: readmeTable,
		},
	}
}

func main() {
	write := flag.Bool("w", false, "rewrite the tables instead of checking them")
	flag.Parse()
	root, err := moduleRoot()
	if err == nil {
		err = run(root, *write)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "errtable:", err)
		os.Exit(1)
	}
}

// run checks (or with write, rewrites) every table under the module root.
func run(root string, write bool) error {
	var stale []string
	for _, tb := range tables() {
		path := filepath.Join(root, tb.file)
		old, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", tb.file, err)
		}
		out, err := tb.splice(old)
		if err != nil {
			return err
		}
		if bytes.Equal(out, old) {
			continue
		}
		if !write {
			stale = append(stale, tb.file)
			continue
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", tb.file, err)
		}
		fmt.Println("errtable: rewrote the error-code table of", tb.file)
	}
	if len(stale) > 0 {
		return fmt.Errorf("the error-code tables of %s differ from api.Registry: run `%s` and commit the result", strings.Join(stale, " and "), Regenerate)
	}
	return nil
}

// splice replaces the lines between the table's markers with its rendering, indented as
// the begin marker is.
func (tb table) splice(src []byte) ([]byte, error) {
	lines := strings.SplitAfter(string(src), "\n")
	bi, ei := -1, -1
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case tb.begin:
			if bi >= 0 {
				return nil, fmt.Errorf("%s: the begin marker %q appears twice", tb.file, tb.begin)
			}
			bi = i
		case tb.end:
			if ei >= 0 {
				return nil, fmt.Errorf("%s: the end marker %q appears twice", tb.file, tb.end)
			}
			ei = i
		}
	}
	if bi < 0 || ei < 0 || ei < bi {
		return nil, fmt.Errorf("%s: no region between the lines %q and %q to write the error codes into: put them back where the table goes", tb.file, tb.begin, tb.end)
	}
	indent := lines[bi][:len(lines[bi])-len(strings.TrimLeft(lines[bi], " \t"))]
	var b strings.Builder
	for _, l := range lines[:bi+1] {
		b.WriteString(l)
	}
	for _, l := range strings.SplitAfter(tb.render(), "\n") {
		if strings.TrimSpace(l) != "" {
			b.WriteString(indent)
		}
		b.WriteString(l)
	}
	for _, l := range lines[ei:] {
		b.WriteString(l)
	}
	return []byte(b.String()), nil
}

// openAPICode is the Problem.code property: the REST codes' table and enum.
func openAPICode() string {
	var b strings.Builder
	b.WriteString("code:\n")
	b.WriteString("  type: string\n")
	b.WriteString("  description: |\n")
	b.WriteString("    The stable, machine-readable error code. The registry (code, HTTP status,\n")
	b.WriteString("    title):\n\n")
	b.WriteString("    | code | status | title |\n")
	b.WriteString("    | --- | --- | --- |\n")
	for _, ci := range api.Codes() {
		fmt.Fprintf(&b, "    | `%s` | %d | %s |\n", ci.Code, ci.Status, ci.Title)
	}
	b.WriteString("  enum:\n")
	for _, ci := range api.Codes() {
		fmt.Fprintf(&b, "    - %s\n", ci.Code)
	}
	return b.String()
}

// readmeTable is README.md's table of every code: where it is answered, its HTTP status,
// its OCI code and the CLI's exit status for it.
func readmeTable() string {
	var b strings.Builder
	b.WriteString("| code | HTTP | answered by | OCI code | `cairn` exit | meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, ci := range api.Registry() {
		where := "REST"
		switch {
		case ci.OCIOnly:
			where = "/v2/"
		case ci.OCI != "":
			where = "REST, /v2/"
		}
		oci := "—"
		if ci.OCI != "" {
			oci = "`" + ci.OCI + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %d | %s | %s | %d (%s) | %s |\n", ci.Code, ci.Status, where, oci, ci.Exit, ci.Exit, ci.Title)
	}
	return b.String()
}

// moduleRoot is the directory of the go.mod above the working directory, so the command
// works from anywhere in the module (and from go generate).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run this inside the Cairn module")
		}
		dir = parent
	}
}
