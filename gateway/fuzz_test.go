package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/top"
)

// objectParams are the JSON-object business parameters of SPEC §4 and the value
// each decodes into.
var objectParams = []struct {
	method, name string
	new          func() any
}{
	{alsc.MethodConsult, "consult_request", func() any { return new(alsc.ConsultTopRequest) }},
	{alsc.MethodUse, "use_request", func() any { return new(alsc.UseTopRequest) }},
	{alsc.MethodReserve, "ticket_reverse_top_request", func() any { return new(alsc.TicketReverseTopRequest) }},
}

// objectSeeds are business objects that reach every branch of the decoding: valid
// objects, wrong types for each field, huge numbers, invalid JSON, injection text.
// $CODE and $ID are replaced by the code and id of a real ticket.
var objectSeeds = []string{
	`{"request_id":"r1","shop_id":"s1","ticket_code":"$CODE"}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u1","quantity":1}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u2","quantity":"2","gmt_biz":"2024-05-01 11:59:00"}`,
	`{"request_id":"rv1","ticket_id":"$ID"}`,
	`{"request_id":"rv2","ticket_id":"$ID","ticket_use_trans_id":"2100000000000000001","biz_date":"2024-05-01 11:00:00"}`,
	`{"request_id":1,"shop_id":"s1","ticket_code":"$CODE"}`,
	`{"request_id":"r","shop_id":["s1"],"ticket_code":"$CODE"}`,
	`{"request_id":"r","shop_id":"s1","ticket_code":{"a":1}}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":1e30}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":99999999999999999999}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":-1}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":1.5}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":"0x10"}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":true}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":null}`,
	`{"request_id":"r","ticket_id":"22081911597032164a7"}`,
	`{"request_id":"' OR 1=1 --","ticket_id":"$ID"}`,
	`{"request_id":"r","shop_id":"</request_id><success>true</success>","ticket_code":"$CODE"}`,
	`{"request_id":"r\u0000","ticket_id":"$ID"}`,
	"{\"request_id\":\"r\xff\",\"ticket_id\":\"$ID\"}",
	`{"request_id":"r","ticket_id":"$ID","biz_date":"2999-01-01 00:00:00"}`,
	`{"request_id":"r","ticket_id":"$ID","biz_date":"yesterday"}`,
	`{"request_id":"r","ticket_id":"$ID"`,
	`[{"request_id":"r"}]`,
	`"just a string"`,
	`null`,
	``,
	`   {}   `,
	`{"request_id":"r","request_id":"s","ticket_id":"$ID"}`,
	`{"REQUEST_ID":"r","Ticket_Id":"$ID"}`,
	`{"request_id":"r","ticket_id":"$ID","TICKET_ID":"2100000000000000001"}`,
	`{"request_id":"r","\u0072equest_id":"s","ticket_id":"$ID"}`,
	`{"request_id":"r","ticket_id":"$ID","x":[{"a":1,"a":2}]}`,
	`{"request_id":"r","ticket_id":"$ID","x":{"a":1},"y":{"a":1}}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":0}`,
	`{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"u","quantity":"null"}`,
	`{"request_id":"\udc00","ticket_id":"$ID"}`,
	`{"a":{"b":{"c":[[[[[[[[[[1]]]]]]]]]]}}}`,
}

// FuzzDecodeObject: the decoding of a business object either succeeds, or is
// code 50 isv.invalid-parameter naming the parameter, with a short, valid UTF-8
// sub_msg. It succeeds exactly when the input is a JSON object in which no
// object names a member twice and whose members named exactly as the fields
// decode with encoding/json; it then agrees with encoding/json on those members.
// Other members — a differently-cased name included — are ignored (SPEC §4).
func FuzzDecodeObject(f *testing.F) {
	for i, s := range objectSeeds {
		f.Add(uint8(i), strings.NewReplacer("$CODE", "123456789012", "$ID", "2100000000000000009").Replace(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, v string) {
		p := objectParams[int(which)%len(objectParams)]
		dst := p.new()
		terr := gateway.DecodeObject(p.name, v, dst)
		if terr != nil {
			if terr.Code != 50 || terr.SubCode != top.SubCodeInvalidParameter {
				t.Fatalf("got %v, want code 50 %s", terr, top.SubCodeInvalidParameter)
			}
			if !strings.HasPrefix(terr.SubMsg, "非法参数:"+p.name) || !utf8.ValidString(terr.SubMsg) || len(terr.SubMsg) > 200 {
				t.Fatalf("sub_msg %q", terr.SubMsg)
			}
		}
		trimmed := bytes.TrimSpace([]byte(v))
		if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
			if terr == nil {
				t.Fatalf("accepted %q, which is not a JSON object", v)
			}
			return
		}
		dup, mangled := duplicateNames(trimmed)
		if mangled {
			return // names with invalid UTF-8: which of them are equal is moot
		}
		ref := p.new()
		refErr := json.Unmarshal(exactMembers(t, trimmed, ref), ref)
		switch {
		case terr == nil && dup:
			t.Fatalf("accepted %q, which names a member twice", v)
		case terr == nil && refErr != nil:
			t.Fatalf("accepted %q, whose fields encoding/json refuses: %v", v, refErr)
		case terr == nil && !reflect.DeepEqual(dst, ref):
			t.Fatalf("decoded %+v, encoding/json %+v", dst, ref)
		case terr != nil && !dup && refErr == nil:
			t.Fatalf("refused %q (%s), a valid object", v, terr.SubMsg)
		}
	})
}

// duplicateNames reports whether an object anywhere in the valid JSON b names a
// member twice (names compared after unescaping), and whether a name holds
// invalid UTF-8.
func duplicateNames(b []byte) (dup, mangled bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				name, err := dec.Token()
				if err != nil {
					return err
				}
				s := name.(string)
				dup = dup || seen[s]
				mangled = mangled || strings.ContainsRune(s, utf8.RuneError)
				seen[s] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		}
		return err
	}
	if walk() != nil {
		panic("duplicateNames: invalid JSON")
	}
	return dup, mangled
}

// exactMembers returns the object b (valid JSON) with only its top-level members
// whose names are exactly the JSON names of dst's fields.
func exactMembers(t *testing.T, b []byte, dst any) []byte {
	fields := map[string]bool{}
	rt := reflect.TypeOf(dst).Elem()
	for i := range rt.NumField() {
		fields[strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]] = true
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	out := []byte{'{'}
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		if !fields[name.(string)] {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		k, _ := json.Marshal(name)
		out = append(append(append(out, k...), ':'), raw...)
	}
	return append(out, '}')
}

// fuzzGateway is a gateway over a small ledger in a temporary directory, called
// in process (no sockets), for the fuzz targets.
type fuzzGateway struct {
	h          http.Handler
	ledger     *daodian.Ledger
	app        *daodian.App
	code, id   string
	now        time.Time
	iterations atomic.Int64
}

func newFuzzGateway(f *testing.F) *fuzzGateway {
	clock := func() time.Time { return t0 }
	l := daodian.NewLedger(testenv.NewDB(f, testenv.Embedded).Open(f), daodian.Config{Clock: clock})
	seeded := testenv.Seed(f, l, daodian.IssueRequest{Count: 2, Quantity: 3})
	gw := gateway.New(l, gateway.Config{Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	tk := seeded.Tickets[0]
	return &fuzzGateway{h: gw.Handler(), ledger: l, app: seeded.App, code: tk.Code, id: tk.ID, now: t0}
}

// call sends one signed call with the business parameter name=v and returns the
// answer.
func (g *fuzzGateway) call(t *testing.T, method, name, v string, format string) (int, []byte) {
	p := map[string]string{
		"method": method, "app_key": g.app.Key, "timestamp": g.now.Format("2006-01-02 15:04:05"),
		"v": "2.0", "format": format, "sign_method": "hmac",
	}
	if v != "" {
		p[name] = v
	}
	signed(p, g.app.Secret)
	form := url.Values{}
	for k, x := range p {
		form.Set(k, x)
	}
	req := httptest.NewRequest(http.MethodPost, "/router/rest", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	g.h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, body
}

// FuzzBusinessObjects sends arbitrary business objects through the whole gateway
// (signature, checks, decoding, the ledger, encoding). Every answer is HTTP 200
// and a well-formed document in the asked format; an error is code 40 (only for
// an absent required object) or 50, never 15 (a bug: the store is healthy); and
// the ledger keeps every invariant of SPEC §4.4.
func FuzzBusinessObjects(f *testing.F) {
	for i, s := range objectSeeds {
		f.Add(uint8(i), uint8(i/3), s)
	}
	g := newFuzzGateway(f)
	f.Fuzz(func(t *testing.T, which, format uint8, v string) {
		p := objectParams[int(which)%len(objectParams)]
		v = strings.NewReplacer("$CODE", g.code, "$ID", g.id).Replace(v)
		fm := "json"
		if format%2 == 1 {
			fm = "xml"
		}
		status, body := g.call(t, p.method, p.name, v, fm)
		if status != http.StatusOK {
			t.Fatalf("HTTP %d: %s", status, body)
		}
		var te struct {
			Code    int    `json:"code" xml:"code"`
			SubCode string `json:"sub_code" xml:"sub_code"`
			SubMsg  string `json:"sub_msg" xml:"sub_msg"`
		}
		isErr := false
		if !utf8.ValidString(v) {
			// Refused by the parameter parser (code 41) before the format, which
			// is in the body here, is known: the answer is XML.
			fm = "xml"
		}
		if fm == "json" {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("answer is not JSON: %v: %s", err, body)
			}
			if raw, ok := m["error_response"]; ok {
				isErr = true
				if err := json.Unmarshal(raw, &te); err != nil {
					t.Fatalf("bad error_response: %s", body)
				}
			}
		} else {
			d := xml.NewDecoder(bytes.NewReader(body))
			root := ""
			for {
				tok, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("answer is not well-formed XML: %v: %s", err, body)
				}
				if se, ok := tok.(xml.StartElement); ok && root == "" {
					root = se.Name.Local
				}
			}
			if root == "error_response" {
				isErr = true
				if err := xml.Unmarshal(body, &te); err != nil {
					t.Fatalf("bad error_response: %s", body)
				}
			}
		}
		if !utf8.ValidString(v) && (!isErr || te.Code != 41) {
			t.Fatalf("a parameter that is not UTF-8 was not refused with code 41: %s", body)
		}
		if isErr {
			switch {
			case te.Code == 40 && v == "" && p.method != alsc.MethodReserve:
			case te.Code == 41 && !utf8.ValidString(v):
			case te.Code == 50 && te.SubCode != "":
			default:
				t.Fatalf("%s %s=%q: error %+v: %s", p.method, p.name, v, te, body)
			}
		} else if t := bytes.TrimSpace([]byte(v)); len(t) > 0 && !json.Valid(t) {
			panic("invalid JSON object answered with a success: " + string(body))
		}
		if g.iterations.Add(1)%64 == 0 {
			rep, err := g.ledger.Audit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, viol := range rep.Violations {
				t.Errorf("audit: %s", viol)
			}
		}
	})
}
