package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type inner struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

type doc struct {
	Signed     map[string]any `json:"signed"`
	Signatures []inner        `json:"signatures"`
	Untagged   int
	Skipped    int `json:"-"`
	embedded
}

type embedded struct {
	Spec string `json:"spec_version,omitempty"`
}

func TestFieldsOf(t *testing.T) {
	f := FieldsOf(doc{})
	for _, n := range []string{"signed", "signatures", "keyid", "sig", "Untagged", "spec_version"} {
		if !f.exact[n] {
			t.Errorf("FieldsOf misses %q", n)
		}
	}
	for _, n := range []string{"Skipped", "embedded"} {
		if f.exact[n] {
			t.Errorf("FieldsOf has %q, which encoding/json never matches", n)
		}
	}
}

func TestCheck(t *testing.T) {
	known := FieldsOf(doc{}).With("yanked")
	tests := []struct {
		name   string
		in     string
		reason string // substring of the refusal; empty means accepted
		path   string
	}{
		{"plain", `{"signed":{"a":1,"b":[true,false,null,"x"]},"signatures":[]}`, "", ""},
		{"whitespace", " \t\n{ \"signed\" : { } }\r\n", "", ""},
		{"map keys of any case that name no field", `{"signed":{"Foo":1,"bar":2}}`, "", ""},
		{"escapes", `{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`, "", ""},
		{"utf8", `{"a":"héllo 😀 \u2028"}`, "", ""},
		{"max safe integer", `{"a":9007199254740991,"b":-9007199254740991,"c":0}`, "", ""},
		{"replacement character itself", "{\"a\":\"\xef\xbf\xbd\"}", "", ""},

		{"duplicate top-level key", `{"signed":{},"signed":{}}`, "duplicate key \"signed\"", "$.signed"},
		{"duplicate deep key", `{"signed":{"targets":{"x":{"length":1,"length":2}}}}`, "duplicate key \"length\"", `$.signed.targets.x.length`},
		{"case variant pair", `{"signatures":[],"signed":{},"Signed":{}}`, "differ only in case", "$.Signed"},
		{"case variant of a known field alone", `{"signatures":[],"Signed":{}}`, `differs from the field "signed" only in case`, "$.Signed"},
		{"long s folds to s", `{"ſigned":{}}`, `differs from the field "signed" only in case`, ""},
		{"kelvin sign folds to k", `{"signatures":[{"Keyid":"a"}],"x":{"\u212aeyid":1}}`, "only in case", ""},
		{"case variant deep inside custom", `{"signed":{"targets":{"p/1/f":{"custom":{"Yanked":true}}}}}`, `differs from the field "yanked"`, `$.signed.targets["p/1/f"].custom.Yanked`},
		{"untagged Go field name variant", `{"untagged":1}`, `differs from the field "Untagged"`, ""},
		{"invalid utf8", "{\"a\":\"\xff\"}", "invalid UTF-8", ""},
		{"utf8-encoded surrogate", "{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8", ""},
		{"overlong utf8", "{\"a\":\"\xc0\xaf\"}", "invalid UTF-8", ""},
		{"lone high surrogate", `{"a":"\ud800"}`, "lone high surrogate", ""},
		{"lone high surrogate before text", `{"a":"\ud800x"}`, "lone high surrogate", ""},
		{"lone low surrogate", `{"a":"\udc00"}`, "lone low surrogate", ""},
		{"reversed surrogates", `{"a":"\ude00\ud83d"}`, "lone low surrogate", ""},
		{"high then non-low", `{"a":"\ud83d\u0041"}`, "not followed by a low surrogate", ""},
		{"lone surrogate in a key", `{"\ud800":1}`, "lone high surrogate", ""},
		{"integer too large", `{"version":9007199254740993}`, "outside", "$.version"},
		{"integer too small", `{"version":-9007199254740992}`, "outside", ""},
		{"huge integer", `{"version":123456789012345678901234567890}`, "outside", ""},
		{"fraction", `{"version":1.0}`, "not an integer", ""},
		{"exponent", `{"version":1e2}`, "not an integer", ""},
		{"negative zero", `{"version":-0}`, "-0", ""},
		{"leading zero", `{"version":01}`, "leading zero", ""},
		{"proto key", `{"__proto__":{"x":1}}`, "__proto__", ""},
		{"utf16 order differs", `{"` + "\uff21" + `":1,"` + "\U0001F600" + `":2}`, "sort differently", ""},
		{"trailing data", `{"a":1} {"a":2}`, "data after the JSON value", ""},
		{"trailing comma", `{"a":1,}`, "expected a string key", ""},
		{"bom", "\xef\xbb\xbf{}", "invalid character", ""},
		{"raw control character", "{\"a\":\"x\ny\"}", "control character", ""},
		{"bad escape", `{"a":"\x41"}`, "invalid escape", ""},
		{"bad literal", `{"a":tru}`, "invalid character", ""},
		{"unterminated", `{"a":"x`, "unterminated string", ""},
		{"empty", ``, "unexpected end", ""},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "nested more than", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check([]byte(tt.in), known)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused a document with one reading: %v", err)
				}
				if !json.Valid([]byte(tt.in)) {
					t.Fatalf("accepted invalid JSON")
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepted %q; want a refusal containing %q", tt.in, tt.reason)
			}
			if !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", e.Reason, tt.reason)
			}
			if tt.path != "" && e.Path != tt.path {
				t.Errorf("path %q, want %q", e.Path, tt.path)
			}
		})
	}
}

func TestAnyNumbers(t *testing.T) {
	for _, ok := range []string{`{"a":1.5}`, `{"a":-0}`, `{"a":1e400}`, `{"a":2.5E-3}`, `{"a":123456789012345678901234567890}`} {
		if err := Check([]byte(ok), Fields{}, AnyNumbers()); err != nil {
			t.Errorf("%s refused with AnyNumbers: %v", ok, err)
		}
	}
	for _, bad := range []string{`{"a":1.}`, `{"a":1e}`, `{"a":.5}`, `{"a":01.5}`, `{"a":1,"a":2}`} {
		if err := Check([]byte(bad), Fields{}, AnyNumbers()); err == nil {
			t.Errorf("%s accepted with AnyNumbers", bad)
		}
	}
}

func TestDepthLimitAccepted(t *testing.T) {
	in := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if err := Check([]byte(in), Fields{}); err != nil {
		t.Fatalf("nesting of exactly %d refused: %v", MaxDepth, err)
	}
}

// FuzzCheck holds Check to what it promises, with encoding/json as the reference: an
// accepted document is valid JSON, and no object in it repeats a key, even under case
// folding, as Go's decoder reads it.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"signed":{"a":[1,2,{"b":"c"}]},"signatures":[]}`, `{"a":"\ud83d\ude00"}`, `[1,-2,"x",null]`, `{"A":1,"a":2}`, `"\u00e9"`} {
		f.Add([]byte(s))
	}
	known := FieldNames("signed", "signatures")
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(data, known) != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		type frame struct {
			object bool
			keys   map[string]bool
			keyNow bool
		}
		var stack []*frame
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			var top *frame
			if len(stack) > 0 {
				top = stack[len(stack)-1]
			}
			if k, ok := tok.(string); ok && top != nil && top.object && top.keyNow {
				if top.keys[fold(k)] {
					t.Fatalf("accepted a repeated key %q in %q", k, data)
				}
				top.keys[fold(k)] = true
				top.keyNow = false
				continue
			}
			switch v := tok.(type) {
			case json.Delim:
				switch v {
				case '{':
					stack = append(stack, &frame{object: true, keys: map[string]bool{}, keyNow: true})
					continue
				case '[':
					stack = append(stack, &frame{})
					continue
				default:
					stack = stack[:len(stack)-1]
				}
			case json.Number:
				if _, err := v.Int64(); err != nil {
					t.Fatalf("accepted a non-integer %s", v)
				}
			}
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].keyNow = true
			}
		}
	})
}
