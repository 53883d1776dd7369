// Package canonjson reads a JSON document once into a light tree and writes canonical JSON
// from it, byte for byte as securesystemslib's cjson.EncodeCanonical (the encoder go-tuf
// signs and verifies with) writes the same document.
//
// cjson gets there by marshalling its input, decoding it into interface{} and encoding that
// again: three passes through reflection and a map per object. For a project role of fifty
// targets that was most of the server's CPU per upload (BENCHMARKS.md, run 10). This package
// parses the bytes once, keeps every object's members sorted by key, and writes the
// canonical form in one linear pass.
//
// The canonical form (OLPC canonical JSON as cjson writes it): no whitespace; object keys
// sorted by their UTF-8 bytes; strings with only `\` and `"` escaped and every other
// character, control characters included, written as itself; integers written as they
// appear in the document (they must fit in an int64); true, false and null as they are.
//
// Where cjson would quietly pick one reading, Parse refuses the document instead: a key
// that appears twice in an object (cjson keeps the last), invalid UTF-8 and escaped lone
// surrogates (cjson writes U+FFFD). strictjson refuses all of these before a document
// reaches this package; the refusals here keep the package's own promise (its output is
// the canonical form of the only reading the document has) without relying on that.
package canonjson

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/cairn-dev/cairn/internal/strictjson"
)

// MaxDepth bounds the nesting of arrays and objects, as strictjson.MaxDepth does.
const MaxDepth = 64

// Kind is the type of a JSON value.
type Kind uint8

// The kinds of JSON values.
const (
	Null Kind = iota
	False
	True
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case False, True:
		return "a boolean"
	case Number:
		return "a number"
	case String:
		return "a string"
	case Array:
		return "an array"
	case Object:
		return "an object"
	}
	return "an unknown value"
}

// Value is one JSON value of a parsed document. Its byte slices alias the document.
type Value struct {
	Kind Kind
	// Raw is the value as written in the document, from its first byte to its last.
	Raw []byte
	// Str is a String's decoded text (it aliases Raw when nothing was escaped), or a
	// Number's token.
	Str []byte
	// Elems are an Array's elements.
	Elems []Value
	// Members are an Object's members, sorted by key (bytewise); keys are unique.
	Members []Member
}

// Member is one key and value of an object.
type Member struct {
	Key   []byte
	Value Value
}

// Get returns the value of key in an object, or nil if the object has no such member (or
// v is not an object). Keys match exactly, as JavaScript's JSON.parse matches them.
func (v *Value) Get(key string) *Value {
	i, ok := slices.BinarySearchFunc(v.Members, key, func(m Member, k string) int { return bytes.Compare(m.Key, []byte(k)) })
	if !ok {
		return nil
	}
	return &v.Members[i].Value
}

// Error says where and why a document was refused.
type Error struct {
	Offset int // byte offset in the document
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (byte %d)", e.Reason, e.Offset) }

// Parse reads data, one JSON value with optional whitespace around it. It refuses what is
// not RFC 8259 JSON, and valid JSON without one reading (see the package comment).
func Parse(data []byte) (Value, error) {
	p := parser{data: data}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return Value{}, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return Value{}, p.errorf("data after the JSON value")
	}
	return v, nil
}

// Canonical returns the canonical form of the JSON document data: what
// cjson.EncodeCanonical(json.RawMessage(data)) returns, for every document Parse accepts.
func Canonical(data []byte) ([]byte, error) {
	v, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return AppendCanonical(make([]byte, 0, len(data)), &v)
}

// AppendCanonical appends the canonical form of v to b. A number that is not an integer
// within int64 is an error, as it is for cjson.
func AppendCanonical(b []byte, v *Value) ([]byte, error) {
	switch v.Kind {
	case Null:
		return append(b, "null"...), nil
	case False:
		return append(b, "false"...), nil
	case True:
		return append(b, "true"...), nil
	case Number:
		if _, err := strconv.ParseInt(string(v.Str), 10, 64); err != nil {
			return nil, fmt.Errorf("canonical JSON has only integers within int64, not %s", v.Str)
		}
		return append(b, v.Str...), nil
	case String:
		return AppendString(b, v.Str), nil
	case Array:
		b = append(b, '[')
		for i := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = AppendCanonical(b, &v.Elems[i]); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case Object:
		b = append(b, '{')
		for i := range v.Members {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, v.Members[i].Key)
			b = append(b, ':')
			var err error
			if b, err = AppendCanonical(b, &v.Members[i].Value); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return nil, fmt.Errorf("canonical JSON: unknown value kind %d", v.Kind)
}

// AppendString appends s as a canonical JSON string: quoted, with `\` and `"` escaped and
// every other byte as it is.
func AppendString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', c)
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

type parser struct {
	data []byte
	pos  int
	// members and elems are stacks of the members and elements of the objects and arrays
	// being read (innermost last); each is copied out at its exact size when it ends.
	members []Member
	elems   []Value
}

func (p *parser) errorf(format string, args ...any) *Error {
	return &Error{Offset: p.pos, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (Value, error) {
	if p.pos >= len(p.data) {
		return Value{}, p.errorf("unexpected end of the document")
	}
	start := p.pos
	switch c := p.data[p.pos]; {
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return Value{}, p.errorf("nested more than %d levels deep", MaxDepth)
		}
		if c == '{' {
			return p.object(depth + 1)
		}
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: String, Raw: p.data[start:p.pos], Str: s}, nil
	case c == '-' || ('0' <= c && c <= '9'):
		if err := p.number(); err != nil {
			return Value{}, err
		}
		return Value{Kind: Number, Raw: p.data[start:p.pos], Str: p.data[start:p.pos]}, nil
	case bytes.HasPrefix(p.data[p.pos:], []byte("true")):
		p.pos += 4
		return Value{Kind: True, Raw: p.data[start:p.pos]}, nil
	case bytes.HasPrefix(p.data[p.pos:], []byte("false")):
		p.pos += 5
		return Value{Kind: False, Raw: p.data[start:p.pos]}, nil
	case bytes.HasPrefix(p.data[p.pos:], []byte("null")):
		p.pos += 4
		return Value{Kind: Null, Raw: p.data[start:p.pos]}, nil
	default:
		return Value{}, p.errorf("invalid character %q where a value was expected", rune(c))
	}
}

func (p *parser) array(depth int) (Value, error) {
	start := p.pos
	p.pos++ // [
	v := Value{Kind: Array}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		v.Raw = p.data[start:p.pos]
		return v, nil
	}
	base := len(p.elems)
	for {
		p.skipSpace()
		e, err := p.value(depth)
		if err != nil {
			return Value{}, err
		}
		p.elems = append(p.elems, e)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return Value{}, p.errorf("unexpected end of the document inside an array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			v.Raw = p.data[start:p.pos]
			v.Elems = slices.Clone(p.elems[base:])
			clear(p.elems[base:]) // no stale references into the document
			p.elems = p.elems[:base]
			return v, nil
		default:
			return Value{}, p.errorf("invalid character %q after an array element", rune(p.data[p.pos]))
		}
	}
}

func (p *parser) object(depth int) (Value, error) {
	start := p.pos
	p.pos++ // {
	v := Value{Kind: Object}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		v.Raw = p.data[start:p.pos]
		return v, nil
	}
	sorted := true
	base := len(p.members)
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return Value{}, p.errorf("expected a string key in an object")
		}
		key, err := p.str()
		if err != nil {
			return Value{}, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return Value{}, p.errorf("expected ':' after an object key")
		}
		p.pos++
		p.skipSpace()
		val, err := p.value(depth)
		if err != nil {
			return Value{}, err
		}
		if n := len(p.members); n > base && bytes.Compare(p.members[n-1].Key, key) >= 0 {
			sorted = false
		}
		p.members = append(p.members, Member{Key: key, Value: val})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return Value{}, p.errorf("unexpected end of the document inside an object")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] != '}' {
			return Value{}, p.errorf("invalid character %q after an object member", rune(p.data[p.pos]))
		}
		p.pos++
		break
	}
	v.Raw = p.data[start:p.pos]
	v.Members = slices.Clone(p.members[base:])
	clear(p.members[base:])
	p.members = p.members[:base]
	// Documents written canonically (as TUF clients write them) are already in order.
	if !sorted {
		slices.SortStableFunc(v.Members, func(a, b Member) int { return bytes.Compare(a.Key, b.Key) })
		for i := 1; i < len(v.Members); i++ {
			if bytes.Equal(v.Members[i-1].Key, v.Members[i].Key) {
				p.pos = start
				return Value{}, p.errorf("duplicate key %q in an object: parsers disagree on which value counts", v.Members[i].Key)
			}
		}
	}
	return v, nil
}

// str reads a string token and returns its decoded bytes, which alias the document when
// nothing is escaped.
func (p *parser) str() ([]byte, error) {
	p.pos++ // opening quote
	start := p.pos
	var b []byte // nil until the first escape
	plain := p.pos
	for {
		if p.pos >= len(p.data) {
			return nil, p.errorf("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			var s []byte
			if b == nil {
				s = p.data[start:p.pos]
			} else {
				s = append(b, p.data[plain:p.pos]...)
			}
			p.pos++
			return s, nil
		case c < 0x20:
			return nil, p.errorf("control character U+%04X inside a string: escape it", c)
		case c == '\\':
			if b == nil {
				b = make([]byte, 0, p.pos-start+16)
			}
			b = append(b, p.data[plain:p.pos]...)
			r, err := p.escape()
			if err != nil {
				return nil, err
			}
			b = utf8.AppendRune(b, r)
			plain = p.pos
		case c < utf8.RuneSelf:
			p.pos++
		default:
			r, n := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && n <= 1 {
				return nil, p.errorf("invalid UTF-8 byte 0x%02x in a string", c)
			}
			p.pos += n
		}
	}
}

// escape reads one escape sequence after a backslash, pairing surrogates, with strictjson's
// decoder: the two readers cannot decode a string differently.
func (p *parser) escape() (rune, error) {
	r, next, e := strictjson.Unescape(p.data, p.pos)
	p.pos = next
	if e != nil {
		return 0, p.errorf("%s", e.Msg)
	}
	return r, nil
}

// number reads a number token (RFC 8259 grammar).
func (p *parser) number() error {
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && '0' <= p.data[p.pos] && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.data[p.pos] == '-' {
		p.pos++
	}
	first := p.pos
	switch n := digits(); {
	case n == 0:
		return p.errorf("invalid number")
	case n > 1 && p.data[first] == '0':
		return p.errorf("invalid number: leading zero")
	}
	end, msg := strictjson.NumberTail(p.data, p.pos)
	p.pos = end
	if msg != "" {
		return p.errorf("%s", msg)
	}
	return nil
}

// ErrNotInteger is returned by Int for a number that is not an integer within int64.
var ErrNotInteger = errors.New("not an integer within int64")

// Int returns a Number's value as encoding/json decodes it into an int64 (the token must
// be an integer within int64: no fraction, no exponent).
func (v *Value) Int() (int64, error) {
	if v.Kind != Number {
		return 0, fmt.Errorf("%s is not a number", v.Kind)
	}
	n, err := strconv.ParseInt(string(v.Str), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %s: %w", v.Str, ErrNotInteger)
	}
	return n, nil
}
