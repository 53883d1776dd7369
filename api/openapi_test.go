package api_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"gopkg.in/yaml.v3"
)

// These tests keep api/openapi.yaml honest against the Go code of this package: the error
// code registry, and the wire types' JSON field names, requiredness and types. The server
// package checks the routes and live answers against the same document.

type node = map[string]any

func loadSpec(t *testing.T) node {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("api/openapi.yaml does not parse: %v", err)
	}
	return doc
}

// get follows keys through nested maps; it fails the test if one is missing.
func get(t *testing.T, n any, keys ...string) any {
	t.Helper()
	cur := n
	for i, k := range keys {
		m, ok := cur.(node)
		if !ok {
			t.Fatalf("openapi: %s is not a mapping", strings.Join(keys[:i], "."))
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("openapi: %s is missing", strings.Join(keys[:i+1], "."))
		}
	}
	return cur
}

// resolve follows a local $ref ("#/a/b/c") to the node it names, or returns nil.
func resolve(doc node, ref string) any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = doc
	for _, k := range strings.Split(p, "/") {
		k = strings.ReplaceAll(strings.ReplaceAll(k, "~1", "/"), "~0", "~")
		m, ok := cur.(node)
		if !ok {
			return nil
		}
		if cur, ok = m[k]; !ok {
			return nil
		}
	}
	return cur
}

// deref returns n, or what its $ref names.
func deref(t *testing.T, doc node, n any) node {
	t.Helper()
	m, ok := n.(node)
	if !ok {
		t.Fatalf("openapi: %v is not a mapping", n)
	}
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		if m, ok = resolve(doc, ref).(node); !ok {
			t.Fatalf("openapi: $ref %q does not resolve to a mapping", ref)
		}
	}
	t.Fatalf("openapi: $ref loop at %v", n)
	return nil
}

func strs(t *testing.T, what string, v any) []string {
	t.Helper()
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("openapi: %s is not a list", what)
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			t.Fatalf("openapi: %s has a non-string item %v", what, e)
		}
		out = append(out, s)
	}
	return out
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type operation struct {
	path, method string
	op           node
}

func operations(t *testing.T, doc node) []operation {
	t.Helper()
	var out []operation
	paths := get(t, doc, "paths").(node)
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		item := paths[p].(node)
		for _, m := range httpMethods {
			if op, ok := item[m]; ok {
				out = append(out, operation{p, m, op.(node)})
			}
		}
	}
	return out
}

func TestOpenAPIDocument(t *testing.T) {
	doc := loadSpec(t)
	if v := get(t, doc, "openapi"); v != "3.1.0" {
		t.Errorf("openapi version is %v, want 3.1.0", v)
	}
	// Every $ref resolves.
	var walk func(path string, n any)
	walk = func(path string, n any) {
		switch n := n.(type) {
		case node:
			if ref, ok := n["$ref"].(string); ok && resolve(doc, ref) == nil {
				t.Errorf("%s: $ref %q does not resolve", path, ref)
			}
			for k, v := range n {
				walk(path+"/"+k, v)
			}
		case []any:
			for i, v := range n {
				walk(path+"/"+strconv.Itoa(i), v)
			}
		}
	}
	walk("#", doc)

	// Operation IDs are unique and path parameters are declared.
	ids := map[string]string{}
	paramRE := regexp.MustCompile(`\{([^}]+)\}`)
	for _, o := range operations(t, doc) {
		where := strings.ToUpper(o.method) + " " + o.path
		id, _ := o.op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", where)
		} else if prev, dup := ids[id]; dup {
			t.Errorf("%s and %s share operationId %q", where, prev, id)
		}
		ids[id] = where
		declared := map[string]bool{}
		for _, src := range []any{get(t, doc, "paths", o.path).(node)["parameters"], o.op["parameters"]} {
			if src == nil {
				continue
			}
			for _, p := range src.([]any) {
				p := deref(t, doc, p)
				if p["in"] == "path" {
					declared[p["name"].(string)] = true
					if p["required"] != true {
						t.Errorf("%s: path parameter %v is not required", where, p["name"])
					}
				}
			}
		}
		for _, m := range paramRE.FindAllStringSubmatch(o.path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter {%s} is not declared", where, m[1])
			}
			delete(declared, m[1])
		}
		for name := range declared {
			t.Errorf("%s: declares path parameter %q that is not in the path", where, name)
		}
	}
}

// TestOpenAPIErrorCodeRegistry checks the enum of Problem.code against api.Codes(), and
// the registry against the Code constants: each is registered once, with an HTTP error
// status, a title and an exit class, and an OCI-only entry has an OCI code.
func TestOpenAPIErrorCodeRegistry(t *testing.T) {
	doc := loadSpec(t)
	code := get(t, doc, "components", "schemas", "Problem", "properties", "code").(node)

	var want []string
	for _, ci := range api.Codes() {
		want = append(want, string(ci.Code))
	}
	if got := strs(t, "Problem.code enum", code["enum"]); !slices.Equal(got, want) {
		t.Errorf("Problem.code enum differs from api.Codes():\n spec: %v\n code: %v", got, want)
	}

	// The table in the description is generated from the registry; the test of
	// internal/tools/errtable compares it byte for byte.

	// Every Code constant of the package is registered, once.
	seen := map[api.Code]bool{}
	for _, ci := range api.Registry() {
		if seen[ci.Code] {
			t.Errorf("api.Registry() lists %q twice", ci.Code)
		}
		seen[ci.Code] = true
		if http.StatusText(ci.Status) == "" || ci.Status < 400 {
			t.Errorf("code %q has status %d, which is not an HTTP error status", ci.Code, ci.Status)
		}
		if ci.Title == "" {
			t.Errorf("code %q has no title", ci.Code)
		}
		if ci.Exit == api.ExitOK {
			t.Errorf("code %q has exit class %d (ok): a refusal must not look like success to scripts", ci.Code, ci.Exit)
		}
		if ci.OCIOnly && ci.OCI == "" {
			t.Errorf("code %q is OCI-only but has no OCI code", ci.Code)
		}
		if got, ok := api.Lookup(ci.Code); !ok || got != ci {
			t.Errorf("api.Lookup(%q) = %+v, %v; want %+v", ci.Code, got, ok, ci)
		}
	}
	for _, c := range codeConstants(t) {
		if !seen[api.Code(c)] {
			t.Errorf("api code constant %q is not in api.Registry()", c)
		}
	}
	if _, ok := api.Lookup("no_such_code"); ok {
		t.Error("api.Lookup found an unregistered code")
	}
}

// codeConstants returns the values of the package's constants of type Code.
func codeConstants(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, f := range parsePackage(t) {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
					continue
				}
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						out = append(out, s)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no Code constants in package api")
	}
	return out
}

func parsePackage(t *testing.T) []*ast.File {
	t.Helper()
	fset := token.NewFileSet()
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// TestOpenAPIOperationErrors checks each operation's x-error-codes against its responses:
// every listed code is registered and has a response with its status, every problem
// response has a listed code, problem responses are application/problem+json Problem
// documents, and the operations that can answer unauthorized are exactly those that need
// a bearer token.
func TestOpenAPIOperationErrors(t *testing.T) {
	doc := loadSpec(t)
	registry := map[string]int{}
	for _, ci := range api.Codes() {
		registry[string(ci.Code)] = ci.Status
	}
	for _, o := range operations(t, doc) {
		where := strings.ToUpper(o.method) + " " + o.path
		raw, ok := o.op["x-error-codes"]
		if !ok {
			t.Errorf("%s has no x-error-codes (use [] if it answers no problem documents)", where)
			continue
		}
		codes := strs(t, where+" x-error-codes", raw)
		wantStatus := map[string]bool{}
		seen := map[string]bool{}
		for _, c := range codes {
			st, ok := registry[c]
			if !ok {
				t.Errorf("%s lists unregistered error code %q", where, c)
				continue
			}
			if seen[c] {
				t.Errorf("%s lists %q twice", where, c)
			}
			seen[c] = true
			wantStatus[strconv.Itoa(st)] = true
		}
		responses := get(t, o.op, "responses").(node)
		gotStatus := map[string]bool{}
		for status, r := range responses {
			r := deref(t, doc, r)
			if r["description"] == nil {
				t.Errorf("%s response %s has no description", where, status)
			}
			content, _ := r["content"].(node)
			if o.method == "head" {
				if content != nil {
					t.Errorf("%s response %s has content: HEAD answers have no body", where, status)
				}
				if status >= "400" {
					gotStatus[status] = true
				}
				continue
			}
			pj, isProblem := content[api.MediaProblem]
			if !isProblem {
				if status >= "400" && wantStatus[status] {
					t.Errorf("%s response %s is not %s, but a listed code has that status", where, status, api.MediaProblem)
				}
				continue
			}
			gotStatus[status] = true
			if len(content) != 1 {
				t.Errorf("%s response %s offers other content types beside %s", where, status, api.MediaProblem)
			}
			if ref := get(t, pj, "schema").(node)["$ref"]; ref != "#/components/schemas/Problem" {
				t.Errorf("%s response %s: problem schema is %v, want the Problem schema", where, status, ref)
			}
		}
		for st := range wantStatus {
			if !gotStatus[st] {
				var which []string
				for _, c := range codes {
					if strconv.Itoa(registry[c]) == st {
						which = append(which, c)
					}
				}
				t.Errorf("%s lists %v but documents no %s problem response", where, which, st)
			}
		}
		for st := range gotStatus {
			if !wantStatus[st] {
				t.Errorf("%s documents a %s problem response but lists no code with status %s", where, st, st)
			}
		}

		bearer := false
		if sec, ok := o.op["security"].([]any); ok {
			for _, req := range sec {
				if _, ok := req.(node)["bearer"]; ok {
					bearer = true
				}
			}
		}
		if bearer != seen[string(api.CodeUnauthorized)] {
			t.Errorf("%s: needs a bearer token = %v, but lists unauthorized = %v", where, bearer, seen[string(api.CodeUnauthorized)])
		}
	}
	if get(t, doc, "components", "securitySchemes", "bearer").(node)["scheme"] != "bearer" {
		t.Error("securitySchemes.bearer is not an HTTP bearer scheme")
	}
}

// wireTypes maps each schema of components.schemas to the Go type it describes.
var wireTypes = map[string]reflect.Type{
	"Problem":                reflect.TypeFor[api.Problem](),
	"Key":                    reflect.TypeFor[api.Key](),
	"CreateProjectRequest":   reflect.TypeFor[api.CreateProjectRequest](),
	"Maintainer":             reflect.TypeFor[api.Maintainer](),
	"Project":                reflect.TypeFor[api.Project](),
	"ProjectList":            reflect.TypeFor[api.ProjectList](),
	"File":                   reflect.TypeFor[api.File](),
	"Release":                reflect.TypeFor[api.Release](),
	"ReleaseList":            reflect.TypeFor[api.ReleaseList](),
	"SubmitResult":           reflect.TypeFor[api.SubmitResult](),
	"Proposal":               reflect.TypeFor[api.Proposal](),
	"ProposalList":           reflect.TypeFor[api.ProposalList](),
	"CoSignRequest":          reflect.TypeFor[api.CoSignRequest](),
	"MaintainerChange":       reflect.TypeFor[api.MaintainerChange](),
	"MaintainerChangeResult": reflect.TypeFor[api.MaintainerChangeResult](),
	"BlobResult":             reflect.TypeFor[api.BlobResult](),
	"LogEntry":               reflect.TypeFor[api.LogEntry](),
	"LogPage":                reflect.TypeFor[api.LogPage](),
	"Health":                 reflect.TypeFor[api.Health](),
	"ClaimProject":           reflect.TypeFor[api.ClaimProject](),
	"ClaimNode":              reflect.TypeFor[api.ClaimNode](),
	"ClaimedUpload":          reflect.TypeFor[api.ClaimedUpload](),
	"ClaimQueue":             reflect.TypeFor[api.ClaimQueue](),
	"ClaimResult":            reflect.TypeFor[api.ClaimResult](),
	"TopLevelUpdate":         reflect.TypeFor[api.TopLevelUpdate](),
	"TopLevelResult":         reflect.TypeFor[api.TopLevelResult](),
	"RoleExpiry":             reflect.TypeFor[api.RoleExpiry](),
	"RepositoryStatus":       reflect.TypeFor[api.RepositoryStatus](),
	"TransparencyLogInfo":    reflect.TypeFor[api.TransparencyLogInfo](),
	"TransparencyLogPage":    reflect.TypeFor[api.TransparencyLogPage](),
	"TransparencyLogEntry":   reflect.TypeFor[api.TransparencyLogEntry](),
	"MerkleProof":            reflect.TypeFor[api.MerkleProof](),
	"DSSEEnvelope":           reflect.TypeFor[api.DSSEEnvelope](),
	"DSSESignature":          reflect.TypeFor[api.DSSESignature](),
	"RekorEntry":             reflect.TypeFor[api.RekorEntry](),
	"InclusionProof":         reflect.TypeFor[api.InclusionProof](),
	"SearchResult":           reflect.TypeFor[api.SearchResult](),
	"SearchProject":          reflect.TypeFor[api.SearchProject](),
	"SearchFile":             reflect.TypeFor[api.SearchFile](),
	"SignerIdentity":         reflect.TypeFor[api.SignerIdentity](),
	"Attestation":            reflect.TypeFor[api.Attestation](),
	"AttestationList":        reflect.TypeFor[api.AttestationList](),
	"IdentityCount":          reflect.TypeFor[api.IdentityCount](),
	"PredicateTypeCount":     reflect.TypeFor[api.PredicateTypeCount](),
	"AttestationSummary":     reflect.TypeFor[api.AttestationSummary](),
}

// Wire structs of package api that are not REST documents, so openapi.yaml has no schema
// for them.
var notREST = map[string]string{
	"OCIErrors":    "the OCI registry's (/v2/) error document, in the distribution spec's format",
	"OCIErrorItem": "one error of the OCI registry's error document",
}

// Schemas that describe no Go struct of package api.
var otherSchemas = map[string]string{
	"ProjectName":    "a constrained string",
	"TUFMetadata":    "signed TUF metadata, passed through as exact bytes",
	"SigstoreBundle": "a Sigstore bundle (protobuf-specs JSON), passed through as exact bytes",
}

// TestOpenAPISchemasMatchGoTypes checks every schema against its Go struct: the property
// names are the JSON names (json:"-" fields left out), required lists exactly the fields
// without omitempty, and each property has the JSON type its Go field encodes to, with
// $refs to the schemas of named api structs.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := loadSpec(t)
	schemas := get(t, doc, "components", "schemas").(node)
	for name := range schemas {
		if _, ok := wireTypes[name]; !ok && otherSchemas[name] == "" {
			t.Errorf("schema %s matches no Go type: add it to wireTypes (or otherSchemas)", name)
		}
	}
	for name, typ := range wireTypes {
		s, ok := schemas[name].(node)
		if !ok {
			t.Errorf("schema %s (for %s) is missing", name, typ)
			continue
		}
		checkStruct(t, doc, name, s, typ)
	}

	// Every wire struct of package api (one with json tags) has a schema.
	for _, f := range parsePackage(t) {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || !ts.Name.IsExported() {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, fld := range st.Fields.List {
				if fld.Tag != nil && strings.Contains(fld.Tag.Value, `json:"`) {
					if _, ok := wireTypes[ts.Name.Name]; !ok && notREST[ts.Name.Name] == "" {
						t.Errorf("api.%s is a wire type (it has json tags) but has no schema in openapi.yaml", ts.Name.Name)
					}
					return true
				}
			}
			return true
		})
	}
}

type jsonField struct {
	name      string
	omitempty bool
	typ       reflect.Type
}

func jsonFields(t *testing.T, typ reflect.Type) []jsonField {
	t.Helper()
	var out []jsonField
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		if f.Anonymous {
			t.Errorf("%s embeds %s: flattening embedded structs is not supported by this test", typ, f.Type)
			continue
		}
		tag, hasTag := f.Tag.Lookup("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		if !hasTag {
			t.Errorf("%s.%s has no json tag: give it one (or json:\"-\")", typ, f.Name)
		}
		out = append(out, jsonField{name: name, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty"), typ: f.Type})
	}
	return out
}

func checkStruct(t *testing.T, doc node, where string, s node, typ reflect.Type) {
	t.Helper()
	if s["type"] != "object" {
		t.Errorf("%s: type is %v, want object (for %s)", where, s["type"], typ)
	}
	props, _ := s["properties"].(node)
	fields := jsonFields(t, typ)
	var goNames, required []string
	for _, f := range fields {
		goNames = append(goNames, f.name)
		if !f.omitempty {
			required = append(required, f.name)
		}
	}
	specNames := slices.Sorted(maps.Keys(props))
	if slices.Sort(goNames); !slices.Equal(specNames, goNames) {
		t.Errorf("%s: properties %v, but %s has JSON fields %v", where, specNames, typ, goNames)
	}
	specRequired := strs(t, where+".required", s["required"])
	slices.Sort(specRequired)
	if slices.Sort(required); !slices.Equal(specRequired, required) {
		t.Errorf("%s: required %v, but the fields of %s without omitempty are %v", where, specRequired, typ, required)
	}
	for _, f := range fields {
		if p, ok := props[f.name].(node); ok {
			checkType(t, doc, where+"."+f.name, p, f.typ)
		}
	}
}

var (
	timeType  = reflect.TypeFor[time.Time]()
	bytesType = reflect.TypeFor[[]byte]()
	apiPkg    = reflect.TypeFor[api.Problem]().PkgPath()
)

// checkType checks that schema s describes what encoding/json makes of a value of typ.
func checkType(t *testing.T, doc node, where string, s node, typ reflect.Type) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.Kind() == reflect.Struct && typ.Name() != "" && typ.PkgPath() == apiPkg {
		if want := "#/components/schemas/" + typ.Name(); s["$ref"] != want {
			t.Errorf("%s: want $ref %q for %s, have %v", where, want, typ, s)
		}
		return
	}
	ref, _ := s["$ref"].(string)
	s = deref(t, doc, s)
	want := func(key, val string) {
		t.Helper()
		if s[key] != val {
			t.Errorf("%s: %s is %v, want %q (Go type %s)", where, key, s[key], val, typ)
		}
	}
	switch {
	case typ == timeType:
		want("type", "string")
		want("format", "date-time")
	case typ == bytesType:
		want("type", "string")
		want("contentEncoding", "base64")
	case typ.Kind() == reflect.String:
		want("type", "string")
	case typ.Kind() == reflect.Bool:
		want("type", "boolean")
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want("type", "integer")
		if typ.Kind() == reflect.Int64 {
			want("format", "int64")
		}
	case typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array:
		want("type", "array")
		if items, ok := s["items"].(node); ok {
			checkType(t, doc, where+"[]", items, typ.Elem())
		} else {
			t.Errorf("%s: array has no items schema", where)
		}
	case typ.Kind() == reflect.Map:
		want("type", "object")
		if ap, ok := s["additionalProperties"].(node); ok {
			checkType(t, doc, where+"{}", ap, typ.Elem())
		} else {
			t.Errorf("%s: map has no additionalProperties schema", where)
		}
	case typ.Kind() == reflect.Struct:
		if ref != "" {
			t.Errorf("%s: refers to %s for an unnamed struct", where, ref)
		}
		checkStruct(t, doc, where, s, typ)
	default:
		t.Errorf("%s: Go type %s is not handled by this test", where, typ)
	}
}

// TestOpenAPIProblemExamples checks that example problem documents are what
// api.ProblemFor would produce for their code.
func TestOpenAPIProblemExamples(t *testing.T) {
	doc := loadSpec(t)
	for name, r := range get(t, doc, "components", "responses").(node) {
		c, _ := r.(node)["content"].(node)
		pj, _ := c[api.MediaProblem].(node)
		ex, ok := pj["example"].(node)
		if !ok {
			continue
		}
		code, _ := ex["code"].(string)
		p := api.ProblemFor(api.Errorf(api.Code(code), "%v", ex["detail"]))
		got := fmt.Sprint(ex["type"], "|", ex["title"], "|", ex["status"])
		if want := fmt.Sprint(p.Type, "|", p.Title, "|", p.Status); got != want {
			t.Errorf("example of response %s: type|title|status is %s, want %s", name, got, want)
		}
	}
}
