// Package client is the Go SDK of the voucher service: signed calls over the TOP
// protocol, typed requests and responses (package alsc), a typed platform error,
// and a reversal helper that retries while the answer says retry=true.
//
// It speaks the platform's protocol exactly, so it works against the real gateway
// as well as against daodian.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/top"
)

// MaxResponseBytes bounds a response body the SDK will read.
const MaxResponseBytes = 8 << 20

// Client sends signed calls to one gateway as one app.
type Client struct {
	url        *url.URL // the gateway; nil if it did not parse (urlErr says why)
	urlErr     error
	endpoint   string // scheme://host/path: how errors name the gateway
	appKey     string
	secret     string
	signMethod string
	format     top.Format
	simplify   bool
	session    string
	http       *http.Client
	clock      func() time.Time
	timestamp  func(time.Time) string
}

// Option configures a Client.
type Option func(*Client)

// WithSignMethod selects md5, hmac or hmac-sha256 (default hmac-sha256).
func WithSignMethod(m string) Option { return func(c *Client) { c.signMethod = m } }

// WithFormat selects the response format and, for JSON, simplify=true.
func WithFormat(f top.Format, simplify bool) Option {
	return func(c *Client) { c.format, c.simplify = f, simplify }
}

// WithHTTPClient replaces the HTTP client (default: 10 s timeout, keep-alive).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithSession sets the `session` public parameter.
func WithSession(s string) Option { return func(c *Client) { c.session = s } }

// WithClock replaces the time source used for `timestamp`.
func WithClock(f func() time.Time) Option { return func(c *Client) { c.clock = f } }

// WithEpochMillis sends `timestamp` as Unix epoch milliseconds instead of GMT+8 text.
func WithEpochMillis() Option {
	return func(c *Client) {
		c.timestamp = func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	}
}

// New returns a client of the gateway at url (e.g. http://127.0.0.1:8080/router/rest;
// a URL without a path gets /router/rest). A URL that does not parse makes every
// call fail with an error saying so.
func New(gatewayURL, appKey, secret string, opts ...Option) *Client {
	c := &Client{
		appKey: appKey, secret: secret,
		signMethod: top.SignHMACSHA256, format: top.JSON,
		http:      &http.Client{Timeout: 10 * time.Second},
		clock:     time.Now,
		timestamp: top.FormatTime,
	}
	for _, o := range opts {
		o(c)
	}
	u, err := url.Parse(gatewayURL)
	if err != nil {
		// Not the whole *url.Error: its URL may carry a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		c.urlErr = fmt.Errorf("invalid gateway URL: %w", err)
		return c
	}
	if u.Path == "" || u.Path == "/" {
		u.Path, u.RawPath = "/router/rest", ""
	}
	c.url = u
	c.endpoint = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
	return c
}

// Error is a platform error_response, or a failure to get one.
type Error struct {
	Code      int    `json:"code" xml:"code"`
	Msg       string `json:"msg" xml:"msg"`
	SubCode   string `json:"sub_code,omitempty" xml:"sub_code,omitempty"`
	SubMsg    string `json:"sub_msg,omitempty" xml:"sub_msg,omitempty"`
	RequestID string `json:"request_id,omitempty" xml:"request_id,omitempty"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("top error %d: %s", e.Code, e.Msg)
	if e.SubCode != "" {
		s += " (" + e.SubCode
		if e.SubMsg != "" {
			s += ": " + e.SubMsg
		}
		s += ")"
	}
	if e.RequestID != "" {
		s += " request_id=" + e.RequestID
	}
	return s
}

// TransportError is a call whose answer never arrived or could not be read: the
// request may or may not have been applied.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return "no answer from gateway: " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// Params returns the complete signed parameter set of a call, as it would be sent.
func (c *Client) Params(method string, business map[string]string) (map[string]string, error) {
	p := make(map[string]string, len(business)+8)
	for k, v := range business {
		p[k] = v
	}
	p["method"] = method
	p["app_key"] = c.appKey
	p["timestamp"] = c.timestamp(c.clock())
	p["v"] = "2.0"
	p["sign_method"] = c.signMethod
	p["format"] = c.format.String()
	if c.simplify && c.format == top.JSON {
		p["simplify"] = "true"
	}
	if c.session != "" {
		p["session"] = c.session
	}
	sign, err := top.SignMap(p, c.secret, c.signMethod)
	if err != nil {
		return nil, err
	}
	p["sign"] = sign
	return p, nil
}

var publicParams = map[string]bool{
	"method": true, "app_key": true, "timestamp": true, "v": true, "sign_method": true,
	"sign": true, "format": true, "simplify": true, "session": true, "partner_id": true, "target_app_key": true,
}

// Call sends a call with raw business parameters and returns the raw answer body.
// As the official SDKs do, public parameters go in the query string and business
// parameters in a urlencoded POST body.
func (c *Client) Call(ctx context.Context, method string, business map[string]string) ([]byte, error) {
	p, err := c.Params(method, business)
	if err != nil {
		return nil, err
	}
	q, form := url.Values{}, url.Values{}
	for k, v := range p {
		if publicParams[k] {
			q.Set(k, v)
		} else {
			form.Set(k, v)
		}
	}
	if c.urlErr != nil {
		return nil, c.urlErr
	}
	u := *c.url
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, c.redact(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &TransportError{c.redact(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, &TransportError{err}
	}
	if len(body) > MaxResponseBytes {
		return nil, &TransportError{errors.New("response larger than the limit")}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &TransportError{fmt.Errorf("HTTP %s", resp.Status)}
	}
	return body, nil
}

// redact returns err with the URL of its *url.Error (every error of
// http.Client.Do is one) replaced by the endpoint. That URL is the signed request:
// its query holds app_key, timestamp and sign, a replayable call for as long as the
// timestamp is accepted, and its user part a password. The *url.Error stays, so
// callers keep errors.Is (context.DeadlineExceeded) and net.Error's Timeout.
func (c *Client) redact(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: c.endpoint, Err: ue.Err}
}

// Execute sends req and decodes the answer into resp (one of the alsc response
// types). A platform error is returned as *Error; no answer as *TransportError.
func (c *Client) Execute(ctx context.Context, req alsc.Request, resp any) error {
	business, err := req.APIParams()
	if err != nil {
		return err
	}
	body, err := c.Call(ctx, req.APIMethod(), business)
	if err != nil {
		return err
	}
	return Decode(body, c.format, c.simplify, req.APIMethod(), resp)
}

// Decode decodes an answer body of method into resp, or returns its
// error_response as *Error. An answer that is not a well-formed answer to method
// (truncated, an HTML page of a proxy, another method's wrapper) is a
// *TransportError: its outcome is unknown. The body's own format wins over f, so
// that an error_response written in the other format is still a platform error.
func Decode(body []byte, f top.Format, simplify bool, method string, resp any) error {
	switch b := bytes.TrimLeft(body, " \t\r\n"); {
	case len(b) > 0 && b[0] == '<':
		f = top.XML
	case len(b) > 0 && b[0] == '{' && f == top.XML:
		f, simplify = top.JSON, false
	}
	if f == top.XML {
		return decodeXML(body, method, resp)
	}
	var top1 map[string]json.RawMessage
	if err := json.Unmarshal(body, &top1); err != nil {
		return &TransportError{fmt.Errorf("undecodable answer: %w", err)}
	}
	if raw, ok := top1["error_response"]; ok {
		e := &Error{}
		if err := json.Unmarshal(raw, e); err != nil {
			return &TransportError{fmt.Errorf("undecodable error_response: %w", err)}
		}
		return e
	}
	if simplify {
		// No wrapper to recognise the answer by: every answer carries request_id
		// (SPEC §3.4), a proxy's JSON error page does not.
		if _, ok := top1["request_id"]; !ok {
			return &TransportError{errors.New("answer has no request_id")}
		}
		if err := json.Unmarshal(body, resp); err != nil {
			return &TransportError{fmt.Errorf("undecodable answer: %w", err)}
		}
		return nil
	}
	raw, ok := top1[top.WrapperName(method)]
	if !ok {
		return &TransportError{fmt.Errorf("answer has no %s", top.WrapperName(method))}
	}
	if err := json.Unmarshal(raw, resp); err != nil {
		return &TransportError{fmt.Errorf("undecodable answer: %w", err)}
	}
	return nil
}

func decodeXML(body []byte, method string, resp any) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return &TransportError{fmt.Errorf("undecodable answer: %w", err)}
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local == "error_response" {
			e := &Error{}
			if err := d.DecodeElement(e, &se); err != nil {
				return &TransportError{fmt.Errorf("undecodable error_response: %w", err)}
			}
			return e
		}
		if want := top.WrapperName(method); se.Name.Local != want {
			return &TransportError{fmt.Errorf("answer has no %s", want)}
		}
		if err := d.DecodeElement(resp, &se); err != nil {
			return &TransportError{fmt.Errorf("undecodable answer: %w", err)}
		}
		return nil
	}
}
