package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestConversion(t *testing.T) {
	defs := map[string]map[string]any{}
	if err := json.Unmarshal([]byte(`{
	  "q": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
	  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
	  "ios": {"type": "string", "format": "int-or-string", "description": "d"},
	  "Pod": {"description": "a pod", "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Pod"}],
	    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
	      "spec": {"$ref": "#/definitions/Spec"}}},
	  "Spec": {"required": ["containers"], "properties": {
	      "description": {"type": "string", "description": "a field named description stays"},
	      "port": {"$ref": "#/definitions/ios"},
	      "limits": {"type": "object", "additionalProperties": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"}},
	      "labels": {"type": "object", "additionalProperties": {"type": "string"}},
	      "containers": {"type": "array", "items": {"$ref": "#/definitions/Spec"}}}},
	  "Loop": {"properties": {"self": {"$ref": "#/definitions/Loop"}}}
	}`), &defs); err != nil {
		t.Fatal(err)
	}

	// Recursion is refused, with the definition named.
	if _, err := expand(defs, defs["Loop"], map[string]bool{"Loop": true}); err == nil || !strings.Contains(err.Error(), "Loop is recursive") {
		t.Errorf("recursive definition: %v", err)
	}
	// Spec refers to itself through containers: refused too.
	if _, err := expand(defs, defs["Pod"], map[string]bool{"Pod": true}); err == nil {
		t.Error("Pod expanded although Spec is recursive")
	}
	spec := defs["Spec"]["properties"].(map[string]any)
	delete(spec, "containers")
	defs["Spec"]["required"] = []any{"port"}

	got, err := expand(defs, defs["Pod"], map[string]bool{"Pod": true})
	if err != nil {
		t.Fatal(err)
	}
	s := got.(map[string]any)
	nullable(s, true)
	strict(s)
	b, _ := json.Marshal(s)
	var want map[string]any
	if err := json.Unmarshal([]byte(`{
	  "additionalProperties": false,
	  "properties": {
	    "apiVersion": {"type": ["string", "null"]}, "kind": {"type": ["string", "null"]},
	    "spec": {"additionalProperties": false, "required": ["port"], "properties": {
	      "description": {"type": ["string", "null"]},
	      "port": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
	      "limits": {"type": ["object", "null"], "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}]}},
	      "labels": {"type": ["object", "null"], "additionalProperties": {"type": ["string", "null"]}}}}}}`), &want); err != nil {
		t.Fatal(err)
	}
	var gotAny map[string]any
	_ = json.Unmarshal(b, &gotAny)
	if !reflect.DeepEqual(gotAny, want) {
		t.Errorf("converted:\n%s", b)
	}
}

func TestCRDConversion(t *testing.T) {
	var in map[string]any
	if err := json.Unmarshal([]byte(`{"type": "object", "description": "x", "properties": {
	  "spec": {"type": "object", "properties": {
	    "port": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true},
	    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {"type": "string"}}}}}}}`), &in); err != nil {
		t.Fatal(err)
	}
	got, err := crdSchema(in)
	if err != nil {
		t.Fatal(err)
	}
	s := got.(map[string]any)
	strict(s)
	spec := s["properties"].(map[string]any)["spec"].(map[string]any)
	if spec["additionalProperties"] != false || s["additionalProperties"] != false {
		t.Errorf("objects with properties are not closed: %v", s)
	}
	if _, ok := spec["properties"].(map[string]any)["free"].(map[string]any)["additionalProperties"]; ok {
		t.Error("x-kubernetes-preserve-unknown-fields object was closed")
	}
	if port := spec["properties"].(map[string]any)["port"]; !reflect.DeepEqual(port, map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}) {
		t.Errorf("int-or-string: %v", port)
	}
	if _, ok := s["description"]; ok {
		t.Error("description kept")
	}
}

func TestFileNames(t *testing.T) {
	for in, want := range map[string]string{
		"v1/ConfigMap": "configmap-v1.json", "apps/v1/Deployment": "deployment-apps-v1.json",
		"networking.k8s.io/v1/Ingress": "ingress-networking-v1.json", "monitoring.coreos.com/v1/PrometheusRule": "prometheusrule-monitoring-v1.json",
	} {
		g, err := parseGVK(in)
		if err != nil || g.file() != want {
			t.Errorf("%s: %q, %v; want %q", in, g.file(), err, want)
		}
	}
	if _, err := parseGVK("Deployment"); err == nil {
		t.Error("a bare kind was accepted")
	}
}
