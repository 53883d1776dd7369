// Package strictjson refuses JSON documents that two mainstream parsers could read
// differently.
//
// Cairn stores and serves the exact bytes of documents that several independent parsers
// read: Go's encoding/json (the server, go-tuf, the cairn CLI), JavaScript's JSON.parse
// (tuf-js, browsers) and others. Where RFC 8259 leaves behaviour open, those parsers
// disagree, and a document that means one thing to the server and another to a client
// defeats every check the server made. Go matches object keys to struct fields
// case-insensitively (Unicode simple folding) and keeps the last duplicate; JSON.parse is
// case-sensitive; lone surrogates and invalid UTF-8 are replaced by Go and kept by
// JavaScript; integers beyond 2^53 are exact in Go and rounded in JavaScript; canonical JSON
// sorts keys by UTF-8 bytes in Go and by UTF-16 code units in JavaScript.
//
// Check accepts a document only if it has one reading: it is valid RFC 8259 JSON, one value,
// and
//   - no object has two keys that are equal or equal under case folding;
//   - no key differs only in case from a field name the caller's Go types know (so Go's
//     struct decoding can only ever match a key exactly);
//   - every string is valid UTF-8, with no escaped lone or out-of-order surrogates;
//   - every number is an integer without fraction or exponent, within ±(2^53−1), and not -0
//     (canonical JSON has no other numbers, and JavaScript reads these exactly);
//   - the keys of an object sort the same way by UTF-8 bytes and by UTF-16 code units;
//   - no key is "__proto__" (JavaScript objects treat it specially);
//   - nesting is at most MaxDepth deep.
//
// The package has no dependencies in Cairn; callers map *Error to their wire error code.
package strictjson

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of arrays and objects. TUF metadata nests about 8 deep.
const MaxDepth = 64

// MaxSafeInteger is the largest integer JavaScript represents exactly (2^53 − 1).
const MaxSafeInteger = 1<<53 - 1

// Error says where and why a document was refused.
type Error struct {
	Offset int    // byte offset of the offending token
	Path   string // JSON path of the offending value, e.g. $.signed.targets["a/1/b"]
	Reason string
	// Syntax is set when the document is not valid JSON at all (every parser refuses it);
	// otherwise it is valid JSON that parsers could read differently.
	Syntax bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (at %s, byte %d)", e.Reason, e.Path, e.Offset)
}

// Fields is a set of known object field names. A document key that differs from one of
// them only in case is refused.
type Fields struct {
	exact  map[string]bool
	folded map[string]string // fold(name) → name
}

// FieldNames returns the set of the given names.
func FieldNames(names ...string) Fields {
	f := Fields{exact: map[string]bool{}, folded: map[string]string{}}
	for _, n := range names {
		f.add(n)
	}
	return f
}

func (f Fields) add(n string) {
	f.exact[n] = true
	f.folded[fold(n)] = n
}

// With returns a copy of f with names added.
func (f Fields) With(names ...string) Fields {
	g := FieldNames(names...)
	for n := range f.exact {
		g.add(n)
	}
	return g
}

// FieldsOf collects the JSON field names of the struct types reachable from the types of
// vs (through fields, pointers, slices, arrays and map values), as encoding/json names
// them: the json tag's name, or the Go field name. These are exactly the names Go's decoder
// matches case-insensitively.
func FieldsOf(vs ...any) Fields {
	f := FieldNames()
	seen := map[reflect.Type]bool{}
	for _, v := range vs {
		collect(reflect.TypeOf(v), f, seen)
	}
	return f
}

func collect(t reflect.Type, f Fields, seen map[reflect.Type]bool) {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		t = t.Elem()
	}
	if t == nil || seen[t] {
		return
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Map:
		collect(t.Elem(), f, seen)
	case reflect.Struct:
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if sf.Anonymous && name == "" {
				collect(sf.Type, f, seen)
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			f.add(name)
			collect(sf.Type, f, seen)
		}
	}
}

// Option relaxes a rule of Check.
type Option func(*parser)

// AnyNumbers accepts every RFC 8259 number, for documents only Go reads as numbers (such
// as a configuration file) where fractions are meaningful.
func AnyNumbers() Option { return func(p *parser) { p.anyNumbers = true } }

// Check refuses data unless it has one reading for every parser (see the package comment).
// Keys that differ only in case from a name in known are refused wherever they appear.
func Check(data []byte, known Fields, opts ...Option) error {
	p := parser{data: data, known: known}
	for _, o := range opts {
		o(&p)
	}
	p.skipSpace()
	if err := p.value(0); err != nil {
		return err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return p.syntaxf("data after the JSON value")
	}
	return nil
}

type parser struct {
	data       []byte
	pos        int
	known      Fields
	anyNumbers bool
	path       []pathElem // where the parser is, rendered on error only
	// keys holds the keys of the objects being read, innermost last: each object's keys
	// are the tail from where it started (objects nest, so this is a stack).
	keys []objKey
}

// pathElem is an object key or an array index on the path to the current value.
type pathElem struct {
	key   string
	index int
	isKey bool
}

// objKey is a key of an object being read, and its case fold.
type objKey struct {
	key, folded string
}

// smallObject is the number of keys up to which an object's keys are compared by a linear
// scan; larger objects (a role's targets) get a map.
const smallObject = 16

// syntaxf reports a document that is not valid JSON.
func (p *parser) syntaxf(format string, args ...any) *Error {
	e := p.errorf(format, args...)
	e.Syntax = true
	return e
}

// errorf reports valid JSON that parsers could read differently.
func (p *parser) errorf(format string, args ...any) *Error {
	var b strings.Builder
	b.WriteString("$")
	for _, e := range p.path {
		if e.isKey {
			b.WriteString(pathSegment(e.key))
		} else {
			b.WriteString("[" + strconv.Itoa(e.index) + "]")
		}
	}
	return &Error{Offset: p.pos, Path: b.String(), Reason: fmt.Sprintf(format, args...)}
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

func (p *parser) value(depth int) error {
	if p.pos >= len(p.data) {
		return p.syntaxf("unexpected end of the document")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		if depth >= MaxDepth {
			return p.syntaxf("nested more than %d levels deep", MaxDepth)
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= MaxDepth {
			return p.syntaxf("nested more than %d levels deep", MaxDepth)
		}
		return p.array(depth + 1)
	case c == '"':
		_, err := p.str(false)
		return err
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(string(p.data[p.pos:min(len(p.data), p.pos+len(lit))]), lit) {
				p.pos += len(lit)
				return nil
			}
		}
		return p.syntaxf("invalid character %q where a value was expected", rune(c))
	}
}

func (p *parser) array(depth int) error {
	p.pos++ // [
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return nil
	}
	for i := 0; ; i++ {
		p.path = append(p.path, pathElem{index: i})
		p.skipSpace()
		if err := p.value(depth); err != nil {
			return err
		}
		p.path = p.path[:len(p.path)-1]
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.syntaxf("unexpected end of the document inside an array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.syntaxf("invalid character %q after an array element", rune(p.data[p.pos]))
		}
	}
}

func (p *parser) object(depth int) error {
	start := p.pos
	p.pos++ // {
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return nil
	}
	base := len(p.keys)         // this object's keys are p.keys[base:]
	var index map[string]string // fold(key) → key, once the object is not small
	wide := false               // a key holds a character outside the Basic Multilingual Plane
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return p.syntaxf("expected a string key in an object")
		}
		keyAt := p.pos
		key, err := p.str(true)
		if err != nil {
			return err
		}
		p.path = append(p.path, pathElem{key: key, isKey: true})
		fk := fold(key)
		other, dup := "", false
		if index != nil {
			other, dup = index[fk]
		} else {
			for _, k := range p.keys[base:] {
				if k.folded == fk {
					other, dup = k.key, true
					break
				}
			}
		}
		if dup {
			p.pos = keyAt
			if other == key {
				return p.errorf("duplicate key %q: parsers disagree on which value counts; send each key once", key)
			}
			return p.errorf("keys %q and %q differ only in case: parsers disagree on which one counts; send one", other, key)
		}
		if name, ok := p.known.folded[fk]; ok && name != key {
			p.pos = keyAt
			return p.errorf("key %q differs from the field %q only in case: Go reads it as %q, JavaScript does not; spell it %q", key, name, name, name)
		}
		if key == "__proto__" {
			p.pos = keyAt
			return p.errorf("key \"__proto__\" is refused: JavaScript objects treat it specially")
		}
		p.keys = append(p.keys, objKey{key: key, folded: fk})
		switch n := len(p.keys) - base; {
		case index != nil:
			index[fk] = key
		case n > smallObject:
			index = make(map[string]string, 2*n)
			for _, k := range p.keys[base:] {
				index[k.folded] = k.key
			}
		}
		if !wide {
			for _, r := range key {
				if r > 0xFFFF {
					wide = true
					break
				}
			}
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return p.syntaxf("expected ':' after an object key")
		}
		p.pos++
		p.skipSpace()
		if err := p.value(depth); err != nil {
			return err
		}
		p.path = p.path[:len(p.path)-1]
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.syntaxf("unexpected end of the document inside an object")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] != '}' {
			return p.syntaxf("invalid character %q after an object member", rune(p.data[p.pos]))
		}
		p.pos++
		break
	}
	if wide {
		order := make([]string, 0, len(p.keys)-base)
		for _, k := range p.keys[base:] {
			order = append(order, k.key)
		}
		if !sameOrder(order) {
			p.pos = start
			return p.errorf("the object's keys sort differently by UTF-8 bytes and by UTF-16 code units, so Go and JavaScript canonical JSON differ: avoid mixing characters above U+FFFF with characters U+E000–U+FFFF in keys")
		}
	}
	p.keys = p.keys[:base]
	return nil
}

// sameOrder reports whether keys sort the same by bytes (Go) and by UTF-16 code units
// (JavaScript's Array.prototype.sort).
func sameOrder(keys []string) bool {
	byBytes := slices.Clone(keys)
	slices.Sort(byBytes)
	byUnits := slices.Clone(keys)
	slices.SortFunc(byUnits, func(a, b string) int {
		return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
	})
	return slices.Equal(byBytes, byUnits)
}

func pathSegment(key string) string {
	ident := key != ""
	for i, r := range key {
		if !(r == '_' || unicode.IsLetter(r) && r < 0x80 || i > 0 && '0' <= r && r <= '9') {
			ident = false
			break
		}
	}
	if ident {
		return "." + key
	}
	return "[" + strconv.Quote(key) + "]"
}

// str reads a string token and checks it. With keep it returns its value (object keys);
// otherwise it only checks it, without allocating.
func (p *parser) str(keep bool) (string, error) {
	p.pos++ // opening quote
	var b []byte
	start := p.pos
	escaped := false
	plain := p.pos // start of the run of bytes that need no unescaping
	for {
		if p.pos >= len(p.data) {
			return "", p.syntaxf("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			var s string
			switch {
			case !keep:
			case !escaped:
				s = string(p.data[start:p.pos])
			default:
				s = string(append(b, p.data[plain:p.pos]...))
			}
			p.pos++
			return s, nil
		case c < 0x20:
			return "", p.syntaxf("control character U+%04X inside a string: escape it", c)
		case c == '\\':
			escaped = true
			if keep {
				b = append(b, p.data[plain:p.pos]...)
			}
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			if keep {
				b = utf8.AppendRune(b, r)
			}
			plain = p.pos
		case c < utf8.RuneSelf:
			p.pos++
		default:
			r, n := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && n <= 1 {
				return "", p.errorf("invalid UTF-8 byte 0x%02x in a string: parsers replace it differently", c)
			}
			p.pos += n
		}
	}
}

// escape reads one escape sequence after a backslash, pairing surrogates.
func (p *parser) escape() (rune, error) {
	r, next, e := Unescape(p.data, p.pos)
	p.pos = next
	switch {
	case e == nil:
		return r, nil
	case e.Ambiguous:
		return 0, p.errorf("%s", e.Msg)
	default:
		return 0, p.syntaxf("%s", e.Msg)
	}
}

// EscapeError is why an escape sequence was refused. Ambiguous: it is valid JSON that
// parsers decode differently (a lone surrogate); otherwise it is not JSON.
type EscapeError struct {
	Msg       string
	Ambiguous bool
}

// Unescape decodes the escape sequence whose backslash is at data[pos], pairing UTF-16
// surrogates, and returns the rune and the position after the sequence; on an error, the
// position where reading stopped. It is the one decoder of JSON escapes: strictjson and
// canonjson both use it, so they cannot read a string differently.
func Unescape(data []byte, pos int) (rune, int, *EscapeError) {
	if pos+1 >= len(data) {
		return 0, pos, &EscapeError{Msg: "unterminated escape sequence"}
	}
	c := data[pos+1]
	pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), pos, nil
	case 'b':
		return '\b', pos, nil
	case 'f':
		return '\f', pos, nil
	case 'n':
		return '\n', pos, nil
	case 'r':
		return '\r', pos, nil
	case 't':
		return '\t', pos, nil
	case 'u':
		r, pos, e := hex4(data, pos)
		if e != nil {
			return 0, pos, e
		}
		switch {
		case utf16.IsSurrogate(r) && r >= 0xDC00:
			return 0, pos, &EscapeError{Msg: fmt.Sprintf("escaped lone low surrogate \\u%04X: parsers replace it differently", r), Ambiguous: true}
		case utf16.IsSurrogate(r):
			if pos+1 >= len(data) || data[pos] != '\\' || data[pos+1] != 'u' {
				return 0, pos, &EscapeError{Msg: fmt.Sprintf("escaped lone high surrogate \\u%04X: parsers replace it differently", r), Ambiguous: true}
			}
			lo, next, e := hex4(data, pos+2)
			if e != nil {
				return 0, next, e
			}
			if lo < 0xDC00 || lo > 0xDFFF {
				return 0, next, &EscapeError{Msg: fmt.Sprintf("escaped high surrogate \\u%04X is not followed by a low surrogate: parsers replace it differently", r), Ambiguous: true}
			}
			return utf16.DecodeRune(r, lo), next, nil
		}
		return r, pos, nil
	}
	return 0, pos, &EscapeError{Msg: fmt.Sprintf("invalid escape sequence \\%c", c)}
}

// hex4 reads the four hex digits of a \u escape at data[pos].
func hex4(data []byte, pos int) (rune, int, *EscapeError) {
	if pos+4 > len(data) {
		return 0, pos, &EscapeError{Msg: "truncated \\u escape"}
	}
	var r rune
	for _, c := range data[pos : pos+4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, pos, &EscapeError{Msg: fmt.Sprintf("invalid \\u escape %q", data[pos:pos+4])}
		}
		r = r<<4 | rune(d)
	}
	return r, pos + 4, nil
}

// number reads a number token and refuses anything but a safe integer.
func (p *parser) number() error {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := p.pos
	for p.pos < len(p.data) && '0' <= p.data[p.pos] && p.data[p.pos] <= '9' {
		p.pos++
	}
	n := p.pos - digits
	switch {
	case n == 0:
		return p.syntaxf("invalid number")
	case n > 1 && p.data[digits] == '0':
		return p.syntaxf("invalid number %q: leading zero", p.data[start:p.pos])
	}
	if p.anyNumbers {
		return p.numberTail()
	}
	if p.pos < len(p.data) && (p.data[p.pos] == '.' || p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		end := p.pos + 1
		for end < len(p.data) && strings.IndexByte("0123456789+-eE.", p.data[end]) >= 0 {
			end++
		}
		p.pos = start
		return p.errorf("number %s is not an integer: only integers are accepted (canonical JSON has no fractions or exponents)", p.data[start:end])
	}
	tok := string(p.data[start:p.pos])
	if tok == "-0" {
		p.pos = start
		return p.errorf("number -0 is refused: Go and JavaScript canonical JSON write it differently")
	}
	v, err := strconv.ParseInt(tok, 10, 64)
	if err != nil || v > MaxSafeInteger || v < -MaxSafeInteger {
		p.pos = start
		return p.errorf("integer %s is outside ±(2^53−1): JavaScript cannot represent it exactly", tok)
	}
	return nil
}

// numberTail reads the optional fraction and exponent of a number (RFC 8259).
func (p *parser) numberTail() error {
	end, msg := NumberTail(p.data, p.pos)
	p.pos = end
	if msg != "" {
		return p.syntaxf("%s", msg)
	}
	return nil
}

// NumberTail reads the optional fraction and exponent (RFC 8259) of a number whose integer
// part ends at data[pos]; it returns where the number ends, or where reading stopped and
// why the number is invalid. strictjson and canonjson share it, as they share Unescape.
func NumberTail(data []byte, pos int) (int, string) {
	digits := func() int {
		n := 0
		for pos < len(data) && '0' <= data[pos] && data[pos] <= '9' {
			pos++
			n++
		}
		return n
	}
	if pos < len(data) && data[pos] == '.' {
		pos++
		if digits() == 0 {
			return pos, "invalid number: no digits after the decimal point"
		}
	}
	if pos < len(data) && (data[pos] == 'e' || data[pos] == 'E') {
		pos++
		if pos < len(data) && (data[pos] == '+' || data[pos] == '-') {
			pos++
		}
		if digits() == 0 {
			return pos, "invalid number: no digits in the exponent"
		}
	}
	return pos, ""
}

// fold maps s to a representative of its class under Unicode simple case folding (the
// folding strings.EqualFold uses, a superset of what encoding/json matches): each rune
// becomes the smallest rune of its folding orbit, except that an orbit holding an ASCII
// letter is represented by the lower-case letter. So an ASCII key folds to itself lowered,
// which for the usual lower-case keys is the key itself, with no allocation.
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		if 'A' <= m && m <= 'Z' {
			m += 'a' - 'A'
		}
		b.WriteRune(m)
	}
	return b.String()
}
