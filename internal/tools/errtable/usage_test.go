package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

const apiPath = "github.com/cairn-dev/cairn/api"

// listedPackage is what `go list -json` says of a package.
type listedPackage struct {
	ImportPath string
	Dir        string
	Export     string
	GoFiles    []string
	CgoFiles   []string
	Standard   bool
	Module     *struct{ Path string }
}

// TestEveryCodeUsedIsRegistered type-checks every non-test package of the module and
// finds each constant of type api.Code (a constant, a literal passed to api.Errorf, a
// `Code:` field, an untyped string converted on the way); each must be in api.Registry,
// so a refusal can never go out with a code that has no status, title, exit class or OCI
// answer. A conversion to api.Code of a value that is not a constant would escape that,
// so it is refused outside package api.
//
// Exact rather than a text search: go/types records the type an untyped string gets,
// wherever it flows.
func TestEveryCodeUsedIsRegistered(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := listModule(t, root)
	fset := token.NewFileSet()
	imp := exportImporter(fset, pkgs)
	checked := 0
	for _, p := range pkgs {
		if p.Standard || p.Module == nil || p.Module.Path != "github.com/cairn-dev/cairn" {
			continue
		}
		var files []*ast.File
		for _, name := range slices.Concat(p.GoFiles, p.CgoFiles) {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		for _, problem := range unregisteredCodes(t, fset, imp, p.ImportPath, files) {
			t.Error(problem)
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("type-checked only %d packages of the module: the listing is wrong", checked)
	}
}

// TestUnregisteredCodeIsFound: the check finds an unregistered code however it is
// written, and a conversion of a variable, and passes the registered ones.
func TestUnregisteredCodeIsFound(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := `package fake

import "github.com/cairn-dev/cairn/api"

const mine api.Code = "made_up_const"

type refusal struct{ Code api.Code }

func f(s string) []error {
	var c api.Code = api.CodeNotFound
	_ = c
	return []error{
		api.Errorf("made_up_errorf", "x"),
		&api.Error{Code: "made_up_field"},
		api.Errorf(mine, "x"),
		api.OCIErrorf(api.CodeOCIBlobUnknown, nil, "registered"),
		api.Errorf(api.Code(s), "x"),
		g("made_up_param"),
	}
}

func g(c api.Code) error { return &api.Error{Code: c} }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "fake.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := listPackages(t, root, apiPath)
	got := unregisteredCodes(t, fset, exportImporter(fset, pkgs), "example.com/fake", []*ast.File{f})
	all := strings.Join(got, "\n")
	for _, want := range []string{"made_up_const", "made_up_errorf", "made_up_field", "made_up_param", "api.Code(s)"} {
		if !strings.Contains(all, want) {
			t.Errorf("the check did not find %s; it reported:\n%s", want, all)
		}
	}
	if strings.Contains(all, "oci_blob_unknown") || strings.Contains(all, "not_found") {
		t.Errorf("the check reported a registered code:\n%s", all)
	}
}

// unregisteredCodes type-checks one package and describes every unregistered api.Code
// constant in it, and (outside package api) every conversion of a non-constant to api.Code.
func unregisteredCodes(t *testing.T, fset *token.FileSet, imp types.Importer, path string, files []*ast.File) []string {
	t.Helper()
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
	var typeErrs []error
	conf := types.Config{
		Importer:    imp,
		FakeImportC: true, // cgo files: "C" is not needed to see where codes flow
		Error:       func(err error) { typeErrs = append(typeErrs, err) },
	}
	if _, err := conf.Check(path, fset, files, info); err != nil && !usesCgo(files) {
		t.Fatalf("type-checking %s: %v", path, errors.Join(typeErrs...))
	}
	var out []string
	for expr, tv := range info.Types {
		if !isCode(tv.Type) {
			continue
		}
		pos := fset.Position(expr.Pos())
		switch {
		case tv.Value != nil && tv.Value.Kind() == constant.String:
			c := api.Code(constant.StringVal(tv.Value))
			if _, ok := api.Lookup(c); !ok && c != "" { // "": no code, as in p.Code != ""
				out = append(out, fmt.Sprintf("%s: error code %q is not in api.Registry (api/errors.go): register it with its status, title and exit class", pos, c))
			}
		case path != apiPath:
			call, ok := expr.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 || !info.Types[call.Fun].IsType() {
				continue
			}
			if info.Types[call.Args[0]].Value == nil {
				out = append(out, fmt.Sprintf("%s: %s makes an error code from a value the registry cannot check: use an api.Code constant", pos, types.ExprString(call)))
			}
		}
	}
	slices.Sort(out)
	return out
}

func isCode(t types.Type) bool {
	n, ok := t.(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == apiPath && n.Obj().Name() == "Code"
}

func usesCgo(files []*ast.File) bool {
	for _, f := range files {
		for _, imp := range f.Imports {
			if imp.Path.Value == `"C"` {
				return true
			}
		}
	}
	return false
}

// listModule lists every package of the module and its dependencies, with export data.
func listModule(t *testing.T, root string) []listedPackage {
	return listPackages(t, root, "github.com/cairn-dev/cairn/...")
}

// listPackages runs `go list -deps -export` (which builds what is not in the build cache).
func listPackages(t *testing.T, root string, patterns ...string) []listedPackage {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, append([]string{"list", "-deps", "-export", "-json=ImportPath,Dir,Export,GoFiles,CgoFiles,Standard,Module"}, patterns...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("reading go list's output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// exportImporter imports packages from the export data go list built.
func exportImporter(fset *token.FileSet, pkgs []listedPackage) types.Importer {
	exports := map[string]string{}
	for _, p := range pkgs {
		exports[p.ImportPath] = p.Export
	}
	return importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
}
