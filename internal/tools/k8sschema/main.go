// Command k8sschema writes the standalone, strict JSON schemas that kubeconform validates
// the Helm chart's manifests against (deploy/helm/schemas, `make helm-schemas`), for the
// kinds named on the command line, in kubeconform's file layout:
// <out>/v<version>-standalone-strict/<kind>-<group>-<version>.json.
//
// The sources come through the Go module proxy (`go mod download`), at pinned versions:
// the Kubernetes API's OpenAPI v2 document (k8s.io/kubernetes, api/openapi-spec/
// swagger.json) and the Prometheus operator's CRDs (example/prometheus-operator-crd).
// Both are Apache-2.0. The conversion is the one yannh/kubernetes-json-schema publishes
// (openapi2jsonschema --expanded --strict): every $ref inlined, additionalProperties:
// false on every object that lists its properties, int-or-string as a string or an
// integer, a quantity as a string or a number, optional fields nullable. Descriptions are
// left out to keep the files small; apiVersion and kind are pinned with enums.
//
//	go run ./internal/tools/k8sschema -kubernetes v1.35.4 -prometheus-operator v0.85.0 \
//	    -out deploy/helm/schemas apps/v1/Deployment v1/Service monitoring.coreos.com/v1/PrometheusRule
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

func main() {
	k8s := flag.String("kubernetes", "", "k8s.io/kubernetes module version whose API schemas to use (v1.35.4)")
	promop := flag.String("prometheus-operator", "", "github.com/prometheus-operator/prometheus-operator module version whose CRDs to use (v0.85.0)")
	out := flag.String("out", "", "directory to write <version>-standalone-strict/ into")
	flag.Parse()
	if err := run(*k8s, *promop, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "k8sschema:", err)
		os.Exit(1)
	}
}

// gvk is one kind to write: apiVersion (group/version, or version for the core group) and kind.
type gvk struct{ group, version, kind string }

func (g gvk) apiVersion() string {
	if g.group == "" {
		return g.version
	}
	return g.group + "/" + g.version
}

// file is kubeconform's file name for the kind (registry.schemaPath).
func (g gvk) file() string {
	s := strings.ToLower(g.kind)
	if g.group == "" {
		return s + "-" + g.version + ".json"
	}
	return s + "-" + strings.ToLower(strings.Split(g.group, ".")[0]) + "-" + g.version + ".json"
}

func parseGVK(s string) (gvk, error) {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 2:
		return gvk{version: parts[0], kind: parts[1]}, nil
	case 3:
		return gvk{group: parts[0], version: parts[1], kind: parts[2]}, nil
	}
	return gvk{}, fmt.Errorf("kind %q: want group/version/Kind, or version/Kind for the core group", s)
}

func run(k8sVersion, promVersion, out string, kinds []string) error {
	if k8sVersion == "" || out == "" || len(kinds) == 0 {
		return errors.New("usage: k8sschema -kubernetes vX.Y.Z [-prometheus-operator vX.Y.Z] -out DIR group/version/Kind…")
	}
	k8sDir, err := moduleDir("k8s.io/kubernetes", k8sVersion)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(k8sDir, "api", "openapi-spec", "swagger.json"))
	if err != nil {
		return fmt.Errorf("reading the Kubernetes OpenAPI document: %w", err)
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("parsing swagger.json: %w", err)
	}
	// Every definition by the kinds it serves.
	byGVK := map[gvk]string{}
	for name, d := range doc.Definitions {
		l, _ := d["x-kubernetes-group-version-kind"].([]any)
		for _, x := range l {
			m, _ := x.(map[string]any)
			g := gvk{group: fmt.Sprint(m["group"]), version: fmt.Sprint(m["version"]), kind: fmt.Sprint(m["kind"])}
			byGVK[g] = name
		}
	}
	var crds map[gvk]map[string]any
	dir := filepath.Join(out, k8sVersion+"-standalone-strict")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, k := range kinds {
		g, err := parseGVK(k)
		if err != nil {
			return err
		}
		var schema map[string]any
		if name, ok := byGVK[g]; ok {
			s, err := expand(doc.Definitions, doc.Definitions[name], map[string]bool{name: true})
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			schema = s.(map[string]any)
			nullable(schema, true)
		} else {
			if crds == nil {
				if promVersion == "" {
					return fmt.Errorf("%s is not a Kubernetes API kind: give -prometheus-operator for its CRD", k)
				}
				if crds, err = loadCRDs(promVersion); err != nil {
					return err
				}
			}
			s, ok := crds[g]
			if !ok {
				return fmt.Errorf("%s: neither Kubernetes %s nor the Prometheus operator %s defines it", k, k8sVersion, promVersion)
			}
			schema = s
		}
		strict(schema)
		props, _ := schema["properties"].(map[string]any)
		if props == nil {
			return fmt.Errorf("%s: the schema has no properties", k)
		}
		props["apiVersion"] = map[string]any{"type": "string", "enum": []any{g.apiVersion()}}
		props["kind"] = map[string]any{"type": "string", "enum": []any{g.kind}}
		schema["$schema"] = "http://json-schema.org/schema#"
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(schema); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, g.file()), b.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Println(filepath.Join(dir, g.file()))
	}
	return nil
}

// moduleDir downloads a module through the Go module proxy and returns its directory.
func moduleDir(path, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", path+"@"+version)
	cmd.Dir = os.TempDir() // outside any module: nothing is added to a go.mod
	cmd.Env = append(os.Environ(), "GO111MODULE=on", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w: %s%s", path, version, err, stderr.String(), b)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", path, version, err)
	}
	if m.Error != "" || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", path, version, m.Error)
	}
	return m.Dir, nil
}

// expand returns the schema v with every $ref inlined and descriptions left out. seen holds
// the definitions on the path here: a recursive reference is an error (none of the kinds
// a chart renders has one).
func expand(defs map[string]map[string]any, v any, seen map[string]bool) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/definitions/")
			d, ok := defs[name]
			if !ok {
				return nil, fmt.Errorf("$ref %s: no such definition", ref)
			}
			if seen[name] {
				return nil, fmt.Errorf("$ref %s is recursive", ref)
			}
			seen[name] = true
			defer delete(seen, name)
			switch name {
			case "io.k8s.apimachinery.pkg.api.resource.Quantity":
				return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}, nil
			}
			return expand(defs, d, seen)
		}
		if x["format"] == "int-or-string" {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}, nil
		}
		out := map[string]any{}
		for k, val := range x {
			switch k {
			case "description", "x-kubernetes-group-version-kind":
				continue
			case "properties":
				props := map[string]any{}
				for p, s := range val.(map[string]any) {
					e, err := expand(defs, s, seen)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", p, err)
					}
					props[p] = e
				}
				out[k] = props
			case "items", "additionalProperties", "allOf", "anyOf", "oneOf", "not":
				e, err := expand(defs, val, seen)
				if err != nil {
					return nil, err
				}
				out[k] = e
			default:
				out[k] = val
			}
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, s := range x {
			e, err := expand(defs, s, seen)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	return v, nil
}

// nullable lets every optional field be null, as Kubernetes reads a null as unset (helm
// renders `annotations:` with nothing under it as null).
func nullable(s map[string]any, top bool) {
	if t, ok := s["type"].(string); ok && !top {
		s["type"] = []any{t, "null"}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				nullable(m, false)
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if m, ok := s[k].(map[string]any); ok {
			nullable(m, false)
		}
	}
}

// strict refuses unknown fields: additionalProperties: false on every object schema that
// lists its properties and does not say otherwise.
func strict(s map[string]any) {
	if _, ok := s["properties"]; ok {
		if _, set := s["additionalProperties"]; !set && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
	}
	walk := func(v any) {
		if m, ok := v.(map[string]any); ok {
			strict(m)
		}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(props[k])
		}
	}
	for _, k := range []string{"items", "additionalProperties", "not"} {
		walk(s[k])
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		l, _ := s[k].([]any)
		for _, v := range l {
			walk(v)
		}
	}
}

// loadCRDs reads the Prometheus operator's CRDs: the openAPIV3Schema of every served
// version, by kind.
func loadCRDs(version string) (map[gvk]map[string]any, error) {
	dir, err := moduleDir("github.com/prometheus-operator/prometheus-operator", version)
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "example", "prometheus-operator-crd", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s/example/prometheus-operator-crd", dir)
	}
	out := map[gvk]map[string]any{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd struct {
			Spec struct {
				Group string `yaml:"group"`
				Names struct {
					Kind string `yaml:"kind"`
				} `yaml:"names"`
				Versions []struct {
					Name   string `yaml:"name"`
					Served bool   `yaml:"served"`
					Schema struct {
						OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
					} `yaml:"schema"`
				} `yaml:"versions"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", f, err)
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			s, err := crdSchema(v.Schema.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out[gvk{group: crd.Spec.Group, version: v.Name, kind: crd.Spec.Names.Kind}] = s.(map[string]any)
		}
	}
	return out, nil
}

// crdSchema converts a structural CRD schema to JSON Schema: int-or-string fields accept
// both, descriptions are left out, and YAML's map types become JSON's.
func crdSchema(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if x["x-kubernetes-int-or-string"] == true {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}, nil
		}
		out := map[string]any{}
		for k, val := range x {
			if k == "description" {
				continue
			}
			if k == "properties" {
				props := map[string]any{}
				for p, s := range val.(map[string]any) {
					e, err := crdSchema(s)
					if err != nil {
						return nil, err
					}
					props[p] = e
				}
				out[k] = props
				continue
			}
			e, err := crdSchema(val)
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, s := range x {
			e, err := crdSchema(s)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	return v, nil
}
