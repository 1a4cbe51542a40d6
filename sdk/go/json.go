package pdk

// A small JSON codec without reflection. encoding/json would double the
// size of every plugin (and the time the host needs to compile it), so
// the kit parses into plain Go values and encodes the values plugins
// hand back. Plugins are free to import encoding/json themselves.

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of parsed JSON, so hostile input cannot
// exhaust the stack.
const maxDepth = 256

// Object is a JSON object whose members keep their order when encoded.
// Build one with Obj.
type Object []Field

// Field is one member of an Object.
type Field struct {
	Key   string
	Value any
}

// Obj makes an Object from alternating keys and values, like log/slog:
//
//	pdk.Obj("value", 200, "velocity", 100) // {"value":200,"velocity":100}
//
// It panics if a key is not a string or a value is missing: that is a
// mistake in the plugin's code, not in its input.
func Obj(keyValues ...any) Object {
	if len(keyValues)%2 != 0 {
		panic("pdk.Obj: keys and values must come in pairs")
	}
	obj := make(Object, 0, len(keyValues)/2)
	for i := 0; i < len(keyValues); i += 2 {
		key, ok := keyValues[i].(string)
		if !ok {
			panic("pdk.Obj: a key is not a string")
		}
		obj = append(obj, Field{key, keyValues[i+1]})
	}
	return obj
}

// Get returns the value of the first member named key.
func (o Object) Get(key string) (any, bool) {
	for _, f := range o {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// RawJSON is JSON text that is encoded as it is.
type RawJSON []byte

// Marshaler is implemented by values that encode themselves (the same
// method as encoding/json's Marshaler, so types made for it work here).
type Marshaler interface {
	MarshalJSON() ([]byte, error)
}

// Parse parses JSON text into nil, bool, float64, string, []any and
// map[string]any values (as encoding/json does into an any).
func Parse(data []byte) (any, error) {
	p := parser{data: data}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, p.fail("unexpected text after the JSON value")
	}
	return v, nil
}

// SyntaxError reports where JSON text is malformed.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "invalid JSON at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

type parser struct {
	data []byte
	pos  int
}

func (p *parser) fail(msg string) error { return &SyntaxError{p.pos, msg} }

func (p *parser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) literal(word string, v any) (any, error) {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return nil, p.fail("invalid literal")
	}
	p.pos += len(word)
	return v, nil
}

func (p *parser) value(depth int) (any, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.string()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.fail("unexpected character " + strconv.QuoteRune(rune(c)))
	}
}

func (p *parser) object(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.fail("nested too deeply")
	}
	p.pos++ // {
	obj := map[string]any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail("expected a member name")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail("expected ':'")
		}
		p.pos++
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		obj[key] = v
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return obj, nil
		default:
			return nil, p.fail("expected ',' or '}'")
		}
	}
}

func (p *parser) array(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.fail("nested too deeply")
	}
	p.pos++ // [
	list := []any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return list, nil
	}
	for {
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return list, nil
		default:
			return nil, p.fail("expected ',' or ']'")
		}
	}
}

func (p *parser) number() (any, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.data[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(p.data) && p.data[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.fail("invalid number")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.fail("invalid number")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.fail("invalid number")
		}
	}
	f, err := strconv.ParseFloat(string(p.data[start:p.pos]), 64)
	if err != nil { // out of range
		p.pos = start
		return nil, p.fail("number out of range")
	}
	return f, nil
}

func (p *parser) string() (string, error) {
	p.pos++ // "
	start := p.pos
	// The common case: no escapes.
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := string(p.data[start:p.pos])
			p.pos++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.fail("control character in string")
		}
		p.pos++
	}
	buf := append([]byte(nil), p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", p.fail("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		p.pos++ // backslash
		if p.pos >= len(p.data) {
			break
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.fail("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair: \uD83D\uDE00. A lone half becomes U+FFFD.
				save := p.pos
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					p.pos += 2
					if low, ok := p.hex4(); ok {
						if pair := utf16.DecodeRune(r, low); pair != utf8.RuneError {
							buf = utf8.AppendRune(buf, pair)
							continue
						}
					}
				}
				p.pos = save
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.fail("invalid escape")
		}
	}
	return "", p.fail("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if len(p.data)-p.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r*16 + rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r*16 + rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r*16 + rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

// Marshal encodes v as compact JSON. It knows nil, bool, the integer and
// float types, string, Object, RawJSON, Marshaler, error (its message),
// []any, []string, []int, []float64, map[string]any and map[string]string
// (keys sorted), and a pointer to any of these (*int, *string, *Object,
// ...): a nil pointer is null, any other the value it points to, as
// encoding/json does for optional fields. Anything else, structs included, is an
// *UnsupportedTypeError: build an Object with Obj, or give the type a
// MarshalJSON method. ([]byte is refused too: write string(b) for text.)
func Marshal(v any) ([]byte, error) {
	return appendJSON(nil, v, 0)
}

// JSON returns v as compact JSON text, for messages; a value Marshal
// cannot encode is shown as <T>.
func JSON(v any) string {
	b, err := Marshal(v)
	if err != nil {
		return "<" + typeName(v) + ">"
	}
	return string(b)
}

// UnsupportedTypeError is the error Marshal returns for a value it cannot encode.
type UnsupportedTypeError struct{ Type string }

func (e *UnsupportedTypeError) Error() string {
	return "pdk: cannot encode a " + e.Type + " as JSON (use pdk.Obj, a map[string]any, " +
		"or give the type a MarshalJSON method)"
}

func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("pdk: value nested too deeply to encode")
	}
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case string:
		return appendString(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case float32:
		return appendFloat(b, float64(v), 32)
	case float64:
		return appendFloat(b, v, 64)
	case RawJSON:
		if len(v) == 0 {
			return append(b, "null"...), nil
		}
		if _, err := Parse(v); err != nil {
			return nil, errors.New("pdk: RawJSON is not valid JSON: " + err.Error())
		}
		return append(b, v...), nil
	case Object:
		b = append(b, '{')
		for i, f := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.Key)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, f.Value, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, v[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case map[string]string:
		generic := make(map[string]any, len(v))
		for k, s := range v {
			generic[k] = s
		}
		return appendJSON(b, generic, depth)
	case []any:
		b = append(b, '[')
		for i, item := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, item, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case []string:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']'), nil
	case []int:
		b = append(b, '[')
		for i, n := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		return append(b, ']'), nil
	case []float64:
		b = append(b, '[')
		for i, f := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendFloat(b, f, 64); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case *bool:
		return appendPointer(b, v, depth)
	case *string:
		return appendPointer(b, v, depth)
	case *int:
		return appendPointer(b, v, depth)
	case *int8:
		return appendPointer(b, v, depth)
	case *int16:
		return appendPointer(b, v, depth)
	case *int32:
		return appendPointer(b, v, depth)
	case *int64:
		return appendPointer(b, v, depth)
	case *uint:
		return appendPointer(b, v, depth)
	case *uint8:
		return appendPointer(b, v, depth)
	case *uint16:
		return appendPointer(b, v, depth)
	case *uint32:
		return appendPointer(b, v, depth)
	case *uint64:
		return appendPointer(b, v, depth)
	case *float32:
		return appendPointer(b, v, depth)
	case *float64:
		return appendPointer(b, v, depth)
	case *Object:
		return appendPointer(b, v, depth)
	case *RawJSON:
		return appendPointer(b, v, depth)
	case *map[string]any:
		return appendPointer(b, v, depth)
	case *map[string]string:
		return appendPointer(b, v, depth)
	case *[]any:
		return appendPointer(b, v, depth)
	case *[]string:
		return appendPointer(b, v, depth)
	case *[]int:
		return appendPointer(b, v, depth)
	case *[]float64:
		return appendPointer(b, v, depth)
	case *any:
		return appendPointer(b, v, depth)
	case Marshaler:
		text, err := v.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return appendJSON(b, RawJSON(text), depth)
	case error:
		return appendString(b, v.Error()), nil
	default:
		return nil, &UnsupportedTypeError{typeName(v)}
	}
}

// appendPointer encodes what p points to, or null for a nil pointer.
func appendPointer[T any](b []byte, p *T, depth int) ([]byte, error) {
	if p == nil {
		return append(b, "null"...), nil
	}
	return appendJSON(b, *p, depth+1)
}

func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("pdk: cannot encode " + strconv.FormatFloat(f, 'g', -1, 64) + " as JSON")
	}
	// As JavaScript (and encoding/json) write numbers: no exponent for
	// ordinary magnitudes, so 200.0 is 200.
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, bits), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a quoted JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// AsInt returns v as an int64 when it is a whole number (as Parse gives
// numbers, float64) within ±2^53, or an integer type.
func AsInt(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case int:
		return int64(n), true
	case int64:
		return n, true
	case int32:
		return int64(n), true
	}
	return 0, false
}

// AsString returns v as a string when it is one.
func AsString(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}
