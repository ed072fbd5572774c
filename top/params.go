package top

import (
	"bytes"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultMaxBodyBytes is the body limit of SPEC §3.1, used when ParseRequest is given
// a non-positive limit.
const DefaultMaxBodyBytes = 1 << 20

// MaxParams bounds the parameters (and multipart parts) of one request. A TOP call has
// a few dozen at most; the bound keeps a body full of "a&a&a…" from costing a large
// sort and a large allocation before the request is even authenticated.
const MaxParams = 1000

// maxNameInMessage bounds how much of a caller-chosen name is echoed in an error.
const maxNameInMessage = 64

type kv struct {
	name, value string
}

// Params is an immutable set of request parameters, one value per name. The zero value
// and a nil *Params are empty sets.
type Params struct {
	// kvs is sorted by name in byte order with unique names: lookups are a binary
	// search and signing walks it without sorting again.
	kvs []kv
}

// NewParams returns the parameters of m, copied.
func NewParams(m map[string]string) *Params {
	kvs := make([]kv, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, kv{k, v})
	}
	sortKVs(kvs)
	return &Params{kvs: kvs}
}

// Get returns the value of name, or "" when absent.
func (p *Params) Get(name string) string {
	if i, ok := p.find(name); ok {
		return p.kvs[i].value
	}
	return ""
}

// Has reports whether name is present, even with an empty value.
func (p *Params) Has(name string) bool {
	_, ok := p.find(name)
	return ok
}

// Len returns the number of parameters.
func (p *Params) Len() int {
	if p == nil {
		return 0
	}
	return len(p.kvs)
}

// Each calls fn for every parameter, in byte order of name.
func (p *Params) Each(fn func(name, value string)) {
	if p == nil || fn == nil {
		return
	}
	for _, kv := range p.kvs {
		fn(kv.name, kv.value)
	}
}

func (p *Params) find(name string) (int, bool) {
	if p == nil {
		return 0, false
	}
	// Hand-written rather than sort.Search so the lookup does not allocate a closure.
	lo, hi := 0, len(p.kvs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if p.kvs[mid].name < name {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < len(p.kvs) && p.kvs[lo].name == name
}

func sortKVs(kvs []kv) {
	slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.name, b.name) })
}

// scratchPool recycles the buffer a request's urlencoded body is read into and in which
// escaped names and values are decoded. Each parameter then costs at most one
// allocation, for its decoded string, and unescaped ones none: they point into the
// query or into the one string copied from the body.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledScratch keeps one large request from pinning a large buffer in the pool.
const maxPooledScratch = 64 << 10

func putScratch(bp *[]byte) {
	if cap(*bp) <= maxPooledScratch {
		*bp = (*bp)[:0]
		scratchPool.Put(bp)
	}
}

// ParseRequest returns the parameters of a TOP call: the URL query merged with, for
// POST, an application/x-www-form-urlencoded or multipart/form-data body. Every
// fault is code 41: a POST body of another Content-Type, or none, or with a
// Content-Encoding other than identity (refused unread, naming what is not
// supported), a name given more than once anywhere, a
// name or value that is not UTF-8 after decoding, malformed percent-encoding, an empty
// name (which url.ParseQuery would accept, but which no client means to send), a body
// over maxBodyBytes (DefaultMaxBodyBytes when not positive), more than MaxParams
// parameters, or a body that cannot be read. Multipart file parts are skipped: they
// are neither parameters nor signed.
//
// Unlike url.ParseQuery and http.Request.ParseForm, a repeated name is refused rather
// than resolved, because the signature would otherwise cover a value other than the
// one the method uses. Like url.ParseQuery, a ';' separator is refused as ambiguous.
func ParseRequest(r *http.Request, maxBodyBytes int64) (*Params, *Error) {
	if r == nil {
		return nil, ErrInvalidArguments("no request")
	}
	if maxBodyBytes <= 0 {
		maxBodyBytes = DefaultMaxBodyBytes
	}
	// The readers look one byte past the limit; keep that byte representable.
	maxBodyBytes = min(maxBodyBytes, math.MaxInt64-1)
	var query string
	if r.URL != nil {
		query = r.URL.RawQuery
	}

	kind := bodyNone
	var ctype string
	// Content-Length 0 is a POST without a body, whatever its headers say; -1
	// (chunked) may have one.
	if r.Method == http.MethodPost && r.Body != nil && r.ContentLength != 0 {
		ctype = r.Header.Get("Content-Type")
		kind = classifyBody(ctype)
		if err := checkBodyHeaders(r.Header, ctype, kind); err != nil {
			return nil, err
		}
		if r.ContentLength > maxBodyBytes {
			return nil, errBodyTooLarge(maxBodyBytes)
		}
	}

	scratch := scratchPool.Get().(*[]byte)
	defer putScratch(scratch)

	var kvs []kv
	var err *Error
	switch kind {
	case bodyURLEncoded:
		var body string
		if body, err = readBody(scratch, r.Body, maxBodyBytes); err != nil {
			return nil, err
		}
		kvs = make([]kv, 0, min(strings.Count(query, "&")+strings.Count(body, "&")+2, MaxParams))
		if kvs, err = parseURLEncoded(kvs, query, "query", scratch); err != nil {
			return nil, err
		}
		if kvs, err = parseURLEncoded(kvs, body, "body", scratch); err != nil {
			return nil, err
		}
	case bodyMultipart:
		kvs = make([]kv, 0, min(strings.Count(query, "&")+9, MaxParams))
		if kvs, err = parseURLEncoded(kvs, query, "query", scratch); err != nil {
			return nil, err
		}
		if kvs, err = parseMultipart(kvs, r.Body, ctype, maxBodyBytes); err != nil {
			return nil, err
		}
	default:
		kvs = make([]kv, 0, min(strings.Count(query, "&")+1, MaxParams))
		if kvs, err = parseURLEncoded(kvs, query, "query", scratch); err != nil {
			return nil, err
		}
	}
	sortKVs(kvs)
	for i := 1; i < len(kvs); i++ {
		if kvs[i].name == kvs[i-1].name {
			return nil, ErrInvalidArguments("parameter " + quoteName(kvs[i].name) + " is given more than once")
		}
	}
	return &Params{kvs: kvs}, nil
}

type bodyKind int

const (
	bodyNone bodyKind = iota
	bodyURLEncoded
	bodyMultipart
)

// checkBodyHeaders refuses a POST body the gateway cannot read as parameters, so
// that the caller learns what is wrong with it rather than that its parameters
// are missing: a body of another media type (a JSON body would otherwise be
// answered "Missing Method"), or a compressed one (a gzip body would be parsed as
// urlencoded bytes).
func checkBodyHeaders(h http.Header, ctype string, kind bodyKind) *Error {
	for _, enc := range h.Values("Content-Encoding") {
		for e := range strings.SplitSeq(enc, ",") {
			if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "identity") {
				return ErrInvalidArguments("Content-Encoding " + quoteName(e) + " is not supported: send the body unencoded (identity)")
			}
		}
	}
	if kind != bodyNone {
		return nil
	}
	const accepted = "application/x-www-form-urlencoded or multipart/form-data"
	mt, _, _ := strings.Cut(ctype, ";")
	if mt = strings.TrimSpace(mt); mt == "" {
		return ErrInvalidArguments("a request body needs a Content-Type: " + accepted)
	}
	return ErrInvalidArguments("Content-Type " + quoteName(mt) + " is not supported: send " + accepted)
}

// classifyBody looks only at the media type; parameters such as charset are ignored
// because every name and value is checked to be UTF-8 anyway. It avoids
// mime.ParseMediaType on the urlencoded hot path since that allocates a map.
func classifyBody(ctype string) bodyKind {
	mt := ctype
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
		return bodyURLEncoded
	case strings.EqualFold(mt, "multipart/form-data"):
		return bodyMultipart
	}
	return bodyNone
}

// readBody reads at most max bytes of body into *scratch and returns them as a string,
// refusing a longer body without reading more than max+1 bytes of it.
func readBody(scratch *[]byte, body io.Reader, max int64) (string, *Error) {
	buf := (*scratch)[:0]
	// The buffer grows (doubling) only as bytes arrive, never to the declared
	// Content-Length up front: a client that declares a megabyte and sends ten
	// bytes, on each of many connections, must not make the server hold a
	// megabyte per connection before it is even authenticated.
	lr := io.LimitedReader{R: body, N: max + 1}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(max+1-int64(len(buf)), int64(cap(buf))+512)))
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			*scratch = buf
			return "", errBodyTooLarge(max)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			*scratch = buf
			return "", readError(err, max)
		}
	}
	*scratch = buf
	return string(buf), nil
}

// parseURLEncoded appends the name=value pairs of s to kvs, decoding in *scratch. from
// says where they came from, so that the caller can find the fault in their request.
func parseURLEncoded(kvs []kv, s, from string, scratch *[]byte) ([]kv, *Error) {
	for s != "" {
		var seg string
		seg, s, _ = strings.Cut(s, "&")
		if seg == "" {
			continue
		}
		if strings.IndexByte(seg, ';') >= 0 {
			return nil, ErrInvalidArguments("the " + from + " contains an unescaped ';'")
		}
		rawName, rawValue, _ := strings.Cut(seg, "=")
		name, res := queryUnescape(rawName, scratch)
		switch {
		case res == unescapeBadEscape:
			return nil, ErrInvalidArguments("malformed percent-encoding in a parameter name of the " + from)
		case res == unescapeNotUTF8:
			return nil, ErrInvalidArguments("a parameter name of the " + from + " is not UTF-8")
		case name == "":
			return nil, ErrInvalidArguments("a parameter of the " + from + " has an empty name")
		}
		value, res := queryUnescape(rawValue, scratch)
		switch res {
		case unescapeBadEscape:
			return nil, ErrInvalidArguments("malformed percent-encoding in parameter " + quoteName(name))
		case unescapeNotUTF8:
			return nil, ErrInvalidArguments("parameter " + quoteName(name) + " is not UTF-8")
		}
		if len(kvs) >= MaxParams {
			return nil, errTooManyParams()
		}
		kvs = append(kvs, kv{name, value})
	}
	return kvs, nil
}

type unescapeResult int

const (
	unescapeOK unescapeResult = iota
	unescapeBadEscape
	unescapeNotUTF8
)

// queryUnescape decodes s as url.QueryUnescape does ('+' is a space, "%XX" a byte, a
// '%' not followed by two hex digits an error) and checks that the result is UTF-8.
// It exists because url.QueryUnescape decodes byte by byte through a strings.Builder,
// which made it most of the cost of parsing a request whose business object arrives
// as percent-encoded JSON; this copies unescaped runs whole, in *scratch.
func queryUnescape(s string, scratch *[]byte) (string, unescapeResult) {
	i := 0
	for i < len(s) && s[i] != '%' && s[i] != '+' {
		i++
	}
	if i == len(s) {
		if !utf8.ValidString(s) {
			return "", unescapeNotUTF8
		}
		return s, unescapeOK
	}
	// The decoded form is never longer than s, so size once and write by index.
	buf := slices.Grow((*scratch)[:0], len(s))[:len(s)]
	*scratch = buf
	w := copy(buf, s[:i])
	// Byte at a time: in percent-encoded JSON the unescaped runs are too short for
	// copy's call overhead to pay off.
	for i < len(s) {
		c := s[i]
		switch c {
		case '%':
			if i+2 >= len(s) {
				return "", unescapeBadEscape
			}
			hi, lo := hexValue[s[i+1]], hexValue[s[i+2]]
			if hi|lo > 0x0f {
				return "", unescapeBadEscape
			}
			c = hi<<4 | lo
			i += 3
		case '+':
			c = ' '
			i++
		default:
			i++
		}
		buf[w] = c
		w++
	}
	if !utf8.Valid(buf[:w]) {
		return "", unescapeNotUTF8
	}
	return string(buf[:w]), unescapeOK
}

// hexValue maps a hex digit to its value and every other byte to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()

// parseMultipart appends the form fields of a multipart/form-data body to kvs.
func parseMultipart(kvs []kv, body io.Reader, ctype string, max int64) ([]kv, *Error) {
	_, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return nil, ErrInvalidArguments("malformed Content-Type")
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, ErrInvalidArguments("multipart/form-data without a boundary")
	}
	lr := &capReader{r: body, left: max}
	mr := multipart.NewReader(lr, boundary)
	var value bytes.Buffer
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			// The multipart reader stops at the close delimiter. Read the epilogue
			// too, through the same cap, so that the limit holds for the whole body
			// and not only for the part the parser looked at.
			if _, err := io.Copy(io.Discard, lr); err != nil {
				return nil, multipartError(err, lr, max)
			}
			return kvs, nil
		}
		if err != nil {
			if parts == 0 && lr.read == 0 && lr.eof {
				// An empty body is no fields, not a malformed body: there is nothing
				// in it that could be misread.
				return kvs, nil
			}
			return nil, multipartError(err, lr, max)
		}
		if parts == MaxParams {
			return nil, errTooManyParams()
		}
		// Parsed here rather than through Part.FormName/FileName: a part counts as a
		// file when it has a filename parameter at all, even an empty one (what a
		// browser sends for an empty file input), and RFC 7578 makes a part without a
		// form-data disposition or name malformed rather than ignorable.
		disp, dparams, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil || disp != "form-data" {
			return nil, ErrInvalidArguments("a multipart part has no form-data Content-Disposition")
		}
		if _, isFile := dparams["filename"]; isFile {
			if _, err := io.Copy(io.Discard, p); err != nil {
				return nil, multipartError(err, lr, max)
			}
			continue
		}
		name := dparams["name"]
		if name == "" {
			return nil, ErrInvalidArguments("a multipart part has no name")
		}
		if !utf8.ValidString(name) {
			return nil, ErrInvalidArguments("a multipart part name is not UTF-8")
		}
		value.Reset()
		if _, err := value.ReadFrom(p); err != nil {
			return nil, multipartError(err, lr, max)
		}
		if !utf8.Valid(value.Bytes()) {
			return nil, ErrInvalidArguments("parameter " + quoteName(name) + " is not UTF-8")
		}
		if len(kvs) >= MaxParams {
			return nil, errTooManyParams()
		}
		kvs = append(kvs, kv{name, value.String()})
	}
}

// capReader passes through at most left bytes and then fails, remembering that it
// did, so that a multipart error caused by the limit is reported as the limit.
type capReader struct {
	r        io.Reader
	left     int64
	read     int64
	exceeded bool
	eof      bool
	err      error // the last failed read of r, other than EOF
}

var errCapExceeded = errors.New("top: body over the limit")

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errCapExceeded
	}
	// Read one byte beyond the limit so that a body of exactly the limit is accepted
	// and a longer one is detected without reading further.
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	c.read += int64(n)
	c.eof = err == io.EOF
	if err != nil && err != io.EOF {
		c.err = err
	}
	if c.left < 0 {
		c.exceeded = true
		return n, errCapExceeded
	}
	return n, err
}

func multipartError(err error, lr *capReader, max int64) *Error {
	if lr.exceeded {
		return errBodyTooLarge(max)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errBodyTooLarge(min(max, mbe.Limit))
	}
	if errors.Is(lr.err, os.ErrDeadlineExceeded) {
		return readError(lr.err, max)
	}
	// The multipart reader does not distinguish a syntax error from a failed read of
	// the connection, and the caller cannot act differently on the two anyway.
	return ErrInvalidArguments("malformed or unreadable multipart/form-data body")
}

func readError(err error, max int64) *Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errBodyTooLarge(min(max, mbe.Limit))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's read deadline (the gateway's body read timeout) passed.
		return ErrInvalidArguments("the request body did not arrive in time")
	}
	return ErrInvalidArguments("the request body could not be read")
}

func errBodyTooLarge(max int64) *Error {
	return ErrInvalidArguments("the request body is larger than " + strconv.FormatInt(max, 10) + " bytes")
}

func errTooManyParams() *Error {
	return ErrInvalidArguments("more than " + strconv.Itoa(MaxParams) + " parameters")
}

// quoteName renders a caller-chosen name for an error message: quoted so that spaces
// and control characters are visible, and cut short so that an error cannot echo a
// megabyte back.
func quoteName(name string) string {
	if len(name) > maxNameInMessage {
		cut := maxNameInMessage
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		return strconv.Quote(name[:cut]) + "…"
	}
	return strconv.Quote(name)
}
