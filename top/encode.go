package top

import (
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Format is the response format chosen by the format parameter.
type Format int

// Response formats (SPEC §3.4). XML is the platform default.
const (
	// XML is format=xml, and the format of a request that names none.
	XML Format = iota
	// JSON is format=json; with simplify=true, simplified JSON.
	JSON
)

// ParseFormat maps the format parameter to a Format: "" (absent) is XML; anything but
// "xml" or "json" is refused, which the gateway reports as code 23.
func ParseFormat(s string) (Format, bool) {
	switch s {
	case "", "xml":
		return XML, true
	case "json":
		return JSON, true
	}
	return XML, false
}

// String returns the format parameter value of f.
func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "xml"
}

// ContentType returns the HTTP Content-Type of a response in f.
func (f Format) ContentType() string {
	if f == JSON {
		return "application/json; charset=utf-8"
	}
	return "text/xml; charset=utf-8"
}

// xmlHeader starts every XML response, byte for byte as the platform sends it.
const xmlHeader = `<?xml version="1.0" encoding="utf-8" ?>`

// WrapperName returns the name of the success wrapper of method: a leading "taobao."
// dropped, dots turned into underscores, "_response" appended.
func WrapperName(method string) string {
	method = strings.TrimPrefix(method, "taobao.")
	var b strings.Builder
	b.Grow(len(method) + len("_response"))
	for i := 0; i < len(method); i++ {
		c := method[i]
		if c == '.' {
			c = '_'
		}
		b.WriteByte(c)
	}
	b.WriteString("_response")
	return b.String()
}

// AppendWrapperName appends WrapperName(method) to buf without allocating a string.
func AppendWrapperName(buf []byte, method string) []byte {
	method = strings.TrimPrefix(method, "taobao.")
	start := len(buf)
	buf = append(buf, method...)
	for i := start; i < len(buf); i++ {
		if buf[i] == '.' {
			buf[i] = '_'
		}
	}
	return append(buf, "_response"...)
}

// Body is a success response body. It writes its fields through the Encoder, so one
// method serves XML, JSON and simplified JSON without reflection.
type Body interface {
	EncodeTOP(e *Encoder)
}

// Encoder writes the fields of a response in the format of the response being built.
// A Body receives one from AppendSuccess and must not keep it after EncodeTOP returns:
// encoders are pooled.
//
// Field and element names are expected to be the snake_case constants of the method's
// contract. They are JSON-escaped in JSON; in XML, where names cannot be escaped, any
// byte outside [A-Za-z0-9_.-] becomes '_' so that the document stays well-formed.
type Encoder struct {
	buf      []byte
	format   Format
	simplify bool
	// first is true until the first member of the JSON object being written, which
	// alone is not preceded by a comma.
	first bool
}

var encoderPool = sync.Pool{New: func() any { return new(Encoder) }}

// String writes a string field.
func (e *Encoder) String(name, v string) {
	if e.format == JSON {
		e.key(name)
		e.buf = appendJSONString(e.buf, v)
		return
	}
	e.open(name)
	e.buf = appendXMLText(e.buf, v)
	e.close(name)
}

// Int writes an integer field: a JSON number, XML decimal text.
func (e *Encoder) Int(name string, v int64) {
	if e.format == JSON {
		e.key(name)
		e.buf = strconv.AppendInt(e.buf, v, 10)
		return
	}
	e.open(name)
	e.buf = strconv.AppendInt(e.buf, v, 10)
	e.close(name)
}

// Bool writes a boolean field: true or false in both formats.
func (e *Encoder) Bool(name string, v bool) {
	if e.format == JSON {
		e.key(name)
		e.buf = strconv.AppendBool(e.buf, v)
		return
	}
	e.open(name)
	e.buf = strconv.AppendBool(e.buf, v)
	e.close(name)
}

// Time writes a time field as a TimeLayout string in CST, the platform's only time
// representation, without allocating the intermediate string.
func (e *Encoder) Time(name string, t time.Time) {
	if e.format == JSON {
		e.key(name)
		e.buf = append(e.buf, '"')
		e.buf = AppendTime(e.buf, t)
		e.buf = append(e.buf, '"')
		return
	}
	e.open(name)
	e.buf = AppendTime(e.buf, t)
	e.close(name)
}

// Object writes a nested object (an element in XML) whose fields fn writes. A nil fn
// writes an empty object.
func (e *Encoder) Object(name string, fn func(e *Encoder)) {
	if e.format == JSON {
		e.key(name)
		e.object(fn)
		return
	}
	e.open(name)
	if fn != nil {
		fn(e)
	}
	e.close(name)
}

// List writes n objects, the i-th written by fn(i, e). In XML and JSON the list is
// an object holding the items under elem, mirroring the platform:
// <name><elem>…</elem>…</name> and "name":{"elem":[{…},…]}. Simplified JSON writes a
// plain array: "name":[{…},…].
func (e *Encoder) List(name, elem string, n int, fn func(i int, e *Encoder)) {
	if e.format == JSON {
		e.key(name)
		if !e.simplify {
			e.buf = append(e.buf, '{')
			e.first = true
			e.key(elem)
		}
		e.buf = append(e.buf, '[')
		for i := 0; i < n; i++ {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = append(e.buf, '{')
			e.first = true
			if fn != nil {
				fn(i, e)
			}
			e.buf = append(e.buf, '}')
		}
		e.buf = append(e.buf, ']')
		if !e.simplify {
			e.buf = append(e.buf, '}')
		}
		e.first = false
		return
	}
	e.open(name)
	for i := 0; i < n; i++ {
		e.open(elem)
		if fn != nil {
			fn(i, e)
		}
		e.close(elem)
	}
	e.close(name)
}

// key starts a JSON member.
func (e *Encoder) key(name string) {
	if !e.first {
		e.buf = append(e.buf, ',')
	}
	e.first = false
	e.buf = appendJSONString(e.buf, name)
	e.buf = append(e.buf, ':')
}

// object writes a JSON object whose members fn writes.
func (e *Encoder) object(fn func(e *Encoder)) {
	e.buf = append(e.buf, '{')
	e.first = true
	if fn != nil {
		fn(e)
	}
	e.buf = append(e.buf, '}')
	e.first = false
}

func (e *Encoder) open(name string) {
	e.buf = append(e.buf, '<')
	e.buf = appendXMLName(e.buf, name)
	e.buf = append(e.buf, '>')
}

func (e *Encoder) close(name string) {
	e.buf = append(e.buf, '<', '/')
	e.buf = appendXMLName(e.buf, name)
	e.buf = append(e.buf, '>')
}

// AppendSuccess appends the complete success response of method to buf: body's fields
// followed by request_id, inside the method's wrapper, except that simplified JSON has
// no wrapper. simplify has no effect on XML. A nil body writes only request_id.
func AppendSuccess(buf []byte, f Format, simplify bool, method string, body Body, requestID string) []byte {
	e := encoderPool.Get().(*Encoder)
	e.buf, e.format, e.simplify, e.first = buf, f, simplify && f == JSON, true

	var scratch [128]byte
	wrapper := AppendWrapperName(scratch[:0], method)
	if f == JSON {
		e.buf = append(e.buf, '{')
		if !e.simplify {
			e.buf = appendJSONString(e.buf, wrapper)
			e.buf = append(e.buf, ':', '{')
		}
	} else {
		e.format = XML
		e.buf = append(e.buf, xmlHeader...)
		e.buf = append(e.buf, '<')
		e.buf = appendXMLName(e.buf, wrapper)
		e.buf = append(e.buf, '>')
	}
	if body != nil {
		body.EncodeTOP(e)
	}
	e.String("request_id", requestID)
	if f == JSON {
		e.buf = append(e.buf, '}')
		if !e.simplify {
			e.buf = append(e.buf, '}')
		}
	} else {
		e.buf = append(e.buf, '<', '/')
		e.buf = appendXMLName(e.buf, wrapper)
		e.buf = append(e.buf, '>')
	}

	out := e.buf
	e.buf = nil // the pool must not keep the caller's buffer alive
	encoderPool.Put(e)
	return out
}

// AppendError appends the complete error_response of err to buf. Simplified JSON has
// the same error shape as JSON. A nil err is reported as code 15, since a caller that
// has no error to report has failed unexpectedly.
func AppendError(buf []byte, f Format, err *Error, requestID string) []byte {
	if err == nil {
		err = ErrRemoteService()
	}
	e := Encoder{buf: buf, format: f, first: true}
	if f == JSON {
		e.buf = append(e.buf, `{"error_response":{`...)
	} else {
		e.format = XML
		e.buf = append(e.buf, xmlHeader+"<error_response>"...)
	}
	e.Int("code", int64(err.Code))
	e.String("msg", err.Msg)
	if err.SubCode != "" {
		e.String("sub_code", err.SubCode)
	}
	if err.SubMsg != "" {
		e.String("sub_msg", err.SubMsg)
	}
	e.String("request_id", requestID)
	if f == JSON {
		e.buf = append(e.buf, '}', '}')
	} else {
		e.buf = append(e.buf, "</error_response>"...)
	}
	return e.buf
}

const hexDigitsLower = "0123456789abcdef"

// jsonSafe marks the ASCII bytes a JSON string may hold unescaped.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendJSONString appends s as a JSON string. It produces exactly what encoding/json
// produces with HTML escaping off: short escapes where JSON has them, \u00XX for other
// control bytes, \ufffd for each byte of invalid UTF-8, and \u2028 / \u2029 escaped so
// the output is also safe as JavaScript.
func appendJSONString[S []byte | string](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigitsLower[b>>4], hexDigitsLower[b&0xF])
			}
			i++
			start = i
			continue
		}
		// Converting at most UTFMax bytes keeps the conversion on the stack for []byte.
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigitsLower[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// xmlSafe marks the ASCII bytes XML character data may hold unescaped.
var xmlSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		switch b {
		case '"', '\'', '&', '<', '>':
		default:
			t[b] = true
		}
	}
	return t
}()

// appendXMLText appends s as XML character data, byte for byte as xml.EscapeText
// writes it: markup characters, tab and line breaks as character references, and
// anything XML cannot carry (control bytes, invalid UTF-8, U+FFFE/U+FFFF) as U+FFFD,
// so that no input yields a malformed document.
func appendXMLText(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if xmlSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"':
				dst = append(dst, "&#34;"...)
			case '\'':
				dst = append(dst, "&#39;"...)
			case '&':
				dst = append(dst, "&amp;"...)
			case '<':
				dst = append(dst, "&lt;"...)
			case '>':
				dst = append(dst, "&gt;"...)
			case '\t':
				dst = append(dst, "&#x9;"...)
			case '\n':
				dst = append(dst, "&#xA;"...)
			case '\r':
				dst = append(dst, "&#xD;"...)
			default:
				dst = append(dst, "\uFFFD"...)
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !isXMLChar(r) {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// isXMLChar reports whether r is a non-ASCII character XML 1.0 allows.
func isXMLChar(r rune) bool {
	return r >= 0x80 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// appendXMLName appends name as an XML element name: bytes outside [A-Za-z0-9_.-]
// become '_', and a name that would not start with a letter or '_' gets a leading
// '_'. Names are the encoder's caller's constants, so this normally copies.
func appendXMLName[S []byte | string](dst []byte, name S) []byte {
	if len(name) == 0 || !isXMLNameStart(name[0]) {
		dst = append(dst, '_')
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isXMLNameStart(c) && !('0' <= c && c <= '9') && c != '-' && c != '.' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

func isXMLNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}
