package top

import (
	"bytes"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
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

// bodyBufPool recycles the buffer a urlencoded body is read into; the parameters
// then point into one string copied from it.
var bodyBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBodyBuf = 64 << 10

// ParseRequest returns the parameters of a TOP call: the URL query merged with, for
// POST, an application/x-www-form-urlencoded or multipart/form-data body (any other
// body is not read). Every fault is code 41: a name given more than once anywhere, a
// name or value that is not UTF-8, malformed percent-encoding, an empty name, a body
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
	if r.Method == http.MethodPost && r.Body != nil {
		ctype = r.Header.Get("Content-Type")
		kind = classifyBody(ctype)
		if kind != bodyNone && r.ContentLength > maxBodyBytes {
			return nil, errBodyTooLarge(maxBodyBytes)
		}
	}

	var kvs []kv
	var err *Error
	switch kind {
	case bodyURLEncoded:
		var body string
		if body, err = readBody(r.Body, maxBodyBytes, r.ContentLength); err != nil {
			return nil, err
		}
		kvs = make([]kv, 0, min(strings.Count(query, "&")+strings.Count(body, "&")+2, MaxParams))
		if kvs, err = parseURLEncoded(kvs, query, "query"); err != nil {
			return nil, err
		}
		if kvs, err = parseURLEncoded(kvs, body, "body"); err != nil {
			return nil, err
		}
	case bodyMultipart:
		kvs = make([]kv, 0, min(strings.Count(query, "&")+9, MaxParams))
		if kvs, err = parseURLEncoded(kvs, query, "query"); err != nil {
			return nil, err
		}
		if kvs, err = parseMultipart(kvs, r.Body, ctype, maxBodyBytes); err != nil {
			return nil, err
		}
	default:
		kvs = make([]kv, 0, min(strings.Count(query, "&")+1, MaxParams))
		if kvs, err = parseURLEncoded(kvs, query, "query"); err != nil {
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

// readBody reads at most max bytes of body, refusing anything longer without
// reading more than max+1 bytes of it.
func readBody(body io.Reader, max, contentLength int64) (string, *Error) {
	bp := bodyBufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if contentLength > 0 && int64(cap(buf)) < contentLength {
		// contentLength <= max here, so this is bounded by the caller's limit.
		buf = make([]byte, 0, contentLength+1)
	}
	lr := io.LimitedReader{R: body, N: max + 1}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max+1-int64(len(buf)), int64(cap(buf))+512))
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			putBodyBuf(bp, buf)
			return "", errBodyTooLarge(max)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			putBodyBuf(bp, buf)
			return "", readError(err, max)
		}
	}
	s := string(buf)
	putBodyBuf(bp, buf)
	return s, nil
}

func putBodyBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= maxPooledBodyBuf {
		*bp = buf[:0]
		bodyBufPool.Put(bp)
	}
}

// parseURLEncoded appends the name=value pairs of s to kvs. from says where they came
// from, so that the caller can find the fault in their request.
func parseURLEncoded(kvs []kv, s, from string) ([]kv, *Error) {
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
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, ErrInvalidArguments("malformed percent-encoding in a parameter name of the " + from)
		}
		if name == "" {
			return nil, ErrInvalidArguments("a parameter of the " + from + " has an empty name")
		}
		if !utf8.ValidString(name) {
			return nil, ErrInvalidArguments("a parameter name of the " + from + " is not UTF-8")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, ErrInvalidArguments("malformed percent-encoding in parameter " + quoteName(name))
		}
		if !utf8.ValidString(value) {
			return nil, ErrInvalidArguments("parameter " + quoteName(name) + " is not UTF-8")
		}
		if len(kvs) >= MaxParams {
			return nil, errTooManyParams()
		}
		kvs = append(kvs, kv{name, value})
	}
	return kvs, nil
}

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
			return kvs, nil
		}
		if err != nil {
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
	exceeded bool
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
	// The multipart reader does not distinguish a syntax error from a failed read of
	// the connection, and the caller cannot act differently on the two anyway.
	return ErrInvalidArguments("malformed or unreadable multipart/form-data body")
}

func readError(err error, max int64) *Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errBodyTooLarge(min(max, mbe.Limit))
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
