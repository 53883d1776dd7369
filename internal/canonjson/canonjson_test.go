package canonjson

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/secure-systems-lab/go-securesystemslib/cjson"
)

// reference is what go-tuf signs and verifies: securesystemslib's canonical encoding of the
// plain reading of the document.
func reference(data []byte) ([]byte, error) { return cjson.EncodeCanonical(json.RawMessage(data)) }

// documents that have one reading, and their canonical form must equal the reference's.
var agreeing = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-1`, `9223372036854775807`, `-9223372036854775808`, `""`,
	`{"b":1,"a":2}`,
	` { "b" : [ 1 , 2 , { } , [ ] ] ,  "a" : "x" } `,
	`{"_type":"targets","Z":1,"a":{"c":null,"b":true,"a":false}}`,
	`{"s":"quote \" backslash \\ slash \/ controls \b\f\n\r\t \u0001 \u001f"}`,
	`{"s":"html <>& and \u003c\u003e\u0026, separators \u2028\u2029"}`,
	`{"unicode":"héllo wörld 😀 \u00e9 \ud83d\ude00 \uffff \u0000"}`,
	`{"é":1,"e":2,"😀":3,"z":4,"\u0000":5}`,
	`{"escaped key \"x\"":1,"escaped key":2}`,
	`{"nested":[[[[{"a":[{"b":[]}]}]]]]}`,
	`{"signed":{"targets":{"p/1/é.tgz":{"custom":{"yanked":true},"hashes":{"sha256":"ab"},"length":7}}}}`,
	"\n\t\r {\"a\":1}\n",
	`"just a string"`,
	`{"big":9007199254740993,"neg":-0}`,
}

func TestCanonicalMatchesCJSON(t *testing.T) {
	for _, doc := range agreeing {
		want, err := reference([]byte(doc))
		if err != nil {
			t.Fatalf("reference refuses %s: %v", doc, err)
		}
		got, err := Canonical([]byte(doc))
		if err != nil {
			t.Errorf("Canonical(%s): %v", doc, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Canonical(%s)\n got %q\nwant %q", doc, got, want)
		}
	}
}

// Documents cjson cannot encode are refused too, and documents cjson would read one way
// among several are refused, with the reason.
func TestCanonicalRefuses(t *testing.T) {
	tests := []struct{ doc, reason string }{
		{``, "unexpected end"},
		{`{`, "expected a string key"},
		{`{"a":1,}`, "expected a string key"},
		{`[1,]`, "where a value was expected"},
		{`{"a":1}x`, "data after the JSON value"},
		{`{"a" 1}`, "expected ':'"},
		{`nul`, "where a value was expected"},
		{`01`, "leading zero"},
		{`1.`, "no digits after the decimal point"},
		{`1e`, "no digits in the exponent"},
		{`-`, "invalid number"},
		{`1.5`, "only integers"},
		{`1e3`, "only integers"},
		{`9223372036854775808`, "only integers"},
		{"\"a\x01b\"", "control character"},
		{`"\x"`, "invalid escape"},
		{`"\u12"`, "truncated"},
		{`"\u12zz"`, "invalid \\u escape"},
		{`"\ud800"`, "lone high surrogate"},
		{`"\udc00"`, "lone low surrogate"},
		{`"\ud800\u0041"`, "not followed by a low surrogate"},
		{"\"\xff\"", "invalid UTF-8"},
		{"\"\xed\xa0\x80\"", "invalid UTF-8"},
		{`"abc`, "unterminated string"},
		{`{"a":1,"a":2}`, "duplicate key \"a\""},
		{`{"b":1,"a":2,"b":3}`, "duplicate key \"b\""},
		{`{"a":1,"\u0061":2}`, "duplicate key \"a\""},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "nested more than"},
	}
	for _, tc := range tests {
		_, err := Canonical([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("Canonical(%q) = %v, want an error with %q", tc.doc, err, tc.reason)
		}
	}
}

func TestGetAndInt(t *testing.T) {
	v, err := Parse([]byte(`{"version":12,"expires":"x","b":{"a":null},"f":1.5}`))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := v.Get("version").Int(); err != nil || n != 12 {
		t.Errorf("version = %d, %v", n, err)
	}
	if v.Get("Version") != nil || v.Get("missing") != nil {
		t.Error("Get matched a key that is not in the object (keys match exactly)")
	}
	if b := v.Get("b"); b == nil || b.Get("a") == nil || b.Get("a").Kind != Null {
		t.Errorf("b.a = %+v", b)
	}
	if _, err := v.Get("f").Int(); err == nil {
		t.Error("Int accepted 1.5")
	}
	if _, err := v.Get("expires").Int(); err == nil {
		t.Error("Int accepted a string")
	}
	if got := string(v.Get("b").Raw); got != `{"a":null}` {
		t.Errorf("Raw of b = %s", got)
	}
}

// FuzzCanonical holds Canonical to the reference on every document strictjson accepts (the
// only documents that reach it in Cairn), and to refusing whatever the reference refuses.
func FuzzCanonical(f *testing.F) {
	for _, d := range agreeing {
		f.Add([]byte(d))
	}
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`{"x":"\ud800"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Canonical(data)
		want, refErr := reference(data)
		if strictjson.Check(data, strictjson.FieldNames()) == nil {
			if refErr != nil {
				if err == nil {
					t.Fatalf("Canonical accepted %q, which the reference refuses: %v", data, refErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Canonical refused %q, which strictjson and the reference accept: %v", data, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Canonical(%q)\n got %q\nwant %q", data, got, want)
			}
			return
		}
		// Outside strictjson's set, whatever Canonical accepts must still match.
		if err == nil && (refErr != nil || !bytes.Equal(got, want)) {
			t.Fatalf("Canonical(%q) = %q, the reference gives %q, %v", data, got, want, refErr)
		}
	})
}

func BenchmarkCanonical(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"_type":"targets","expires":"2030-01-01T00:00:00Z","spec_version":"1.0.31","targets":{`)
	for i := range 50 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`"demo/0.` + strings.Repeat("1", i%5+1) + `/demo.tar.gz` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":{"hashes":{"sha256":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},"length":1234}`)
	}
	sb.WriteString(`},"version":51}`)
	doc := []byte(sb.String())
	b.Run("canonjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Canonical(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reference(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
