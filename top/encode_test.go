package top

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// smallBody has one field of every kind, small enough to spell its output out.
type smallBody struct{}

func (smallBody) EncodeTOP(e *Encoder) {
	e.String("s", "a<\"&'\n")
	e.Int("n", 7)
	e.Bool("ok", false)
	e.Object("o", func(e *Encoder) { e.String("x", "y") })
	e.List("l", "item", 2, func(i int, e *Encoder) { e.Int("i", int64(i)) })
}

func TestAppendSuccessExact(t *testing.T) {
	cases := []struct {
		f        Format
		simplify bool
		want     string
	}{
		{JSON, false, `{"m_x_response":{"s":"a<\"&'\n","n":7,"ok":false,"o":{"x":"y"},"l":{"item":[{"i":0},{"i":1}]},"request_id":"rid"}}`},
		{JSON, true, `{"s":"a<\"&'\n","n":7,"ok":false,"o":{"x":"y"},"l":[{"i":0},{"i":1}],"request_id":"rid"}`},
		{XML, false, `<?xml version="1.0" encoding="utf-8" ?><m_x_response><s>a&lt;&#34;&amp;&#39;&#xA;</s><n>7</n><ok>false</ok><o><x>y</x></o><l><item><i>0</i></item><item><i>1</i></item></l><request_id>rid</request_id></m_x_response>`},
		{XML, true, `<?xml version="1.0" encoding="utf-8" ?><m_x_response><s>a&lt;&#34;&amp;&#39;&#xA;</s><n>7</n><ok>false</ok><o><x>y</x></o><l><item><i>0</i></item><item><i>1</i></item></l><request_id>rid</request_id></m_x_response>`},
	}
	for _, c := range cases {
		got := string(AppendSuccess([]byte("prefix"), c.f, c.simplify, "taobao.m.x", smallBody{}, "rid"))
		if got != "prefix"+c.want {
			t.Errorf("%v simplify=%v:\n got %s\nwant %s", c.f, c.simplify, got, c.want)
		}
	}
}

// ticketInfo and consultBody mimic a consult answer: the shape the gateway renders.
type ticketInfo struct {
	ID, Name string
	Quantity int64
}

type consultBody struct {
	Success bool
	Msg     string
	Tickets []ticketInfo
	At      time.Time
}

func (b *consultBody) EncodeTOP(e *Encoder) {
	e.Object("result", func(e *Encoder) {
		e.Bool("success", b.Success)
		e.String("error_msg", b.Msg)
		e.Object("value", func(e *Encoder) {
			e.List("ticket_info_list", "ticket_info", len(b.Tickets), func(i int, e *Encoder) {
				t := &b.Tickets[i]
				e.String("ticket_id", t.ID)
				e.String("ticket_name", t.Name)
				e.Int("quantity", t.Quantity)
			})
			e.Time("gmt_biz", b.At)
			e.Int("min", -1<<63)
		})
	})
}

const nasty = "<tag attr=\"v\"> & 'x' \\ \t\r\n \x00\x01\x1f\x7f 中文 \u2028\u2029 \ufffe \xff\xc3( 🎫 ]]> &amp;"

// sanitized is what nasty becomes after a round trip: the characters XML cannot carry,
// and invalid UTF-8, come back as U+FFFD.
func sanitized(s string, xmlChars bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := decodeRune(s[i:])
		i += size
		if r == 0xFFFD && size == 1 || xmlChars && !(r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000) {
			r = 0xFFFD
		}
		b.WriteRune(r)
	}
	return b.String()
}

func testConsult() *consultBody {
	return &consultBody{
		Success: true,
		Msg:     nasty,
		Tickets: []ticketInfo{{"2208191159703216457", nasty, 1}, {"2208191159703216458", "次卡", 10}},
		At:      time.Date(2022, 8, 11, 3, 11, 11, 0, time.UTC),
	}
}

func TestAppendSuccessJSONParses(t *testing.T) {
	body := testConsult()
	type ticket struct {
		TicketID   string `json:"ticket_id"`
		TicketName string `json:"ticket_name"`
		Quantity   int64  `json:"quantity"`
	}
	type result struct {
		Result struct {
			Success  bool   `json:"success"`
			ErrorMsg string `json:"error_msg"`
			Value    struct {
				List json.RawMessage `json:"ticket_info_list"`
				At   string          `json:"gmt_biz"`
				Min  int64           `json:"min"`
			} `json:"value"`
		} `json:"result"`
		RequestID string `json:"request_id"`
	}
	check := func(r *result, list []ticket) {
		t.Helper()
		if !r.Result.Success || r.Result.ErrorMsg != sanitized(nasty, false) || r.RequestID != "rid\"" ||
			r.Result.Value.At != "2022-08-11 11:11:11" || r.Result.Value.Min != -1<<63 {
			t.Errorf("decoded %+v", r)
		}
		if len(list) != 2 || list[0].TicketName != sanitized(nasty, false) || list[1].Quantity != 10 || list[1].TicketID != "2208191159703216458" {
			t.Errorf("decoded list %+v", list)
		}
	}

	out := AppendSuccess(nil, JSON, false, "alibaba.alsc.daodian.ticket.consult", body, "rid\"")
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	var wrapped map[string]result
	if err := json.Unmarshal(out, &wrapped); err != nil {
		t.Fatal(err)
	}
	r, ok := wrapped["alibaba_alsc_daodian_ticket_consult_response"]
	if !ok || len(wrapped) != 1 {
		t.Fatalf("wrapper missing: %s", out)
	}
	var list struct {
		TicketInfo []ticket `json:"ticket_info"`
	}
	if err := json.Unmarshal(r.Result.Value.List, &list); err != nil {
		t.Fatal(err)
	}
	check(&r, list.TicketInfo)

	out = AppendSuccess(nil, JSON, true, "alibaba.alsc.daodian.ticket.consult", body, "rid\"")
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	var flat result
	if err := json.Unmarshal(out, &flat); err != nil {
		t.Fatal(err)
	}
	var plain []ticket
	if err := json.Unmarshal(flat.Result.Value.List, &plain); err != nil {
		t.Fatalf("simplified list is not an array: %v", err)
	}
	check(&flat, plain)
}

func TestAppendSuccessXMLParses(t *testing.T) {
	out := AppendSuccess(nil, XML, false, "alibaba.alsc.daodian.ticket.consult", testConsult(), "rid\"")
	if !bytes.HasPrefix(out, []byte(`<?xml version="1.0" encoding="utf-8" ?><alibaba_alsc_daodian_ticket_consult_response>`)) {
		t.Fatalf("XML starts %s", out)
	}
	wellFormed(t, out)
	var r struct {
		XMLName xml.Name `xml:"alibaba_alsc_daodian_ticket_consult_response"`
		Result  struct {
			Success  bool   `xml:"success"`
			ErrorMsg string `xml:"error_msg"`
			Value    struct {
				Tickets []struct {
					TicketID   string `xml:"ticket_id"`
					TicketName string `xml:"ticket_name"`
					Quantity   int64  `xml:"quantity"`
				} `xml:"ticket_info_list>ticket_info"`
				At  string `xml:"gmt_biz"`
				Min int64  `xml:"min"`
			} `xml:"value"`
		} `xml:"result"`
		RequestID string `xml:"request_id"`
	}
	if err := xml.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	want := sanitized(nasty, true)
	if !r.Result.Success || r.Result.ErrorMsg != want || r.RequestID != "rid\"" || r.Result.Value.At != "2022-08-11 11:11:11" ||
		r.Result.Value.Min != -1<<63 || len(r.Result.Value.Tickets) != 2 || r.Result.Value.Tickets[0].TicketName != want ||
		r.Result.Value.Tickets[1].Quantity != 10 {
		t.Fatalf("decoded %+v", r)
	}
}

// wellFormed fails unless doc is one well-formed XML document.
func wellFormed(t testing.TB, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("malformed XML %q: %v", doc, err)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 || roots != 1 {
		t.Fatalf("XML %q has %d roots", doc, roots)
	}
}

func TestAppendError(t *testing.T) {
	err := ErrInvalidParameter("request_id 不能为空 <&>")
	cases := []struct {
		f    Format
		err  *Error
		want string
	}{
		{JSON, err, `{"error_response":{"code":50,"msg":"Remote service error","sub_code":"isv.invalid-parameter","sub_msg":"非法参数:request_id 不能为空 <&>","request_id":"r1"}}`},
		{XML, err, `<?xml version="1.0" encoding="utf-8" ?><error_response><code>50</code><msg>Remote service error</msg><sub_code>isv.invalid-parameter</sub_code><sub_msg>非法参数:request_id 不能为空 &lt;&amp;&gt;</sub_msg><request_id>r1</request_id></error_response>`},
		{JSON, ErrInvalidSignature(), `{"error_response":{"code":25,"msg":"Invalid Signature","request_id":"r1"}}`},
		{XML, ErrInvalidSignature(), `<?xml version="1.0" encoding="utf-8" ?><error_response><code>25</code><msg>Invalid Signature</msg><request_id>r1</request_id></error_response>`},
		{JSON, ErrInvalidArguments("x"), `{"error_response":{"code":41,"msg":"Invalid Arguments","sub_msg":"x","request_id":"r1"}}`},
		{JSON, nil, `{"error_response":{"code":15,"msg":"Remote service error","request_id":"r1"}}`},
		{Format(9), ErrMissingMethod(), `<?xml version="1.0" encoding="utf-8" ?><error_response><code>21</code><msg>Missing Method</msg><request_id>r1</request_id></error_response>`},
	}
	for _, c := range cases {
		got := string(AppendError([]byte(">"), c.f, c.err, "r1"))
		if got != ">"+c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
	var v struct {
		E struct {
			Code    int    `json:"code"`
			SubCode string `json:"sub_code"`
		} `json:"error_response"`
	}
	if e := json.Unmarshal(AppendError(nil, JSON, ErrAppCallLimited(time.Second), "\xff"), &v); e != nil || v.E.Code != 7 || v.E.SubCode != SubCodeAppCallLimited {
		t.Fatalf("decoded %+v, %v", v, e)
	}
	wellFormed(t, AppendError(nil, XML, ErrBusiness(nasty, nasty), nasty))
}

func TestEncoderEdges(t *testing.T) {
	empty := func(e *Encoder) {
		e.List("l", "item", 0, nil)
		e.List("neg", "item", -3, nil)
		e.Object("o", nil)
		e.List("nilfn", "item", 1, nil)
	}
	for _, c := range []struct {
		f        Format
		simplify bool
		want     string
	}{
		{JSON, false, `{"m_response":{"l":{"item":[]},"neg":{"item":[]},"o":{},"nilfn":{"item":[{}]},"request_id":""}}`},
		{JSON, true, `{"l":[],"neg":[],"o":{},"nilfn":[{}],"request_id":""}`},
		{XML, false, `<?xml version="1.0" encoding="utf-8" ?><m_response><l></l><neg></neg><o></o><nilfn><item></item></nilfn><request_id></request_id></m_response>`},
	} {
		if got := string(AppendSuccess(nil, c.f, c.simplify, "m", bodyFunc(empty), "")); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}

	// No body at all, and a format value that does not exist (treated as XML).
	if got := string(AppendSuccess(nil, JSON, false, "taobao.time.get", nil, "r")); got != `{"time_get_response":{"request_id":"r"}}` {
		t.Errorf("nil body: %s", got)
	}
	if got := string(AppendSuccess(nil, Format(-1), true, "taobao.time.get", nil, "r")); got != `<?xml version="1.0" encoding="utf-8" ?><time_get_response><request_id>r</request_id></time_get_response>` {
		t.Errorf("unknown format: %s", got)
	}

	// Names that are not XML names still give well-formed documents and valid JSON.
	weird := bodyFunc(func(e *Encoder) {
		e.String("", "v")
		e.String("1a", "v")
		e.String("a b<c>\"中", "v")
		e.Object("-x", func(e *Encoder) { e.Bool(".y", true) })
		e.List("l l", "e\x00", 1, func(int, *Encoder) {})
	})
	for _, method := range []string{"a b.c<d>", "", "taobao.", "9lives", "中.文", "\xff"} {
		out := AppendSuccess(nil, XML, false, method, weird, "r")
		wellFormed(t, out)
		for _, simplify := range []bool{false, true} {
			out = AppendSuccess(nil, JSON, simplify, method, weird, "r")
			if !json.Valid(out) {
				t.Errorf("invalid JSON for %q: %s", method, out)
			}
		}
	}
	if got := string(AppendSuccess(nil, XML, false, "a b.c", nil, "")); !strings.Contains(got, "<a_b_c_response>") {
		t.Errorf("sanitized wrapper: %s", got)
	}
}

type bodyFunc func(e *Encoder)

func (f bodyFunc) EncodeTOP(e *Encoder) { f(e) }

func TestWrapperName(t *testing.T) {
	for method, want := range map[string]string{
		"taobao.time.get":                          "time_get_response",
		"alibaba.alsc.daodian.ticket.reserve":      "alibaba_alsc_daodian_ticket_reserve_response",
		"alibaba.alsc.merchant.ext.ticketcode.use": "alibaba_alsc_merchant_ext_ticketcode_use_response",
		"taobao.taobao.x":                          "taobao_x_response",
		"xtaobao.y":                                "xtaobao_y_response",
		"":                                         "_response",
	} {
		if got := WrapperName(method); got != want {
			t.Errorf("WrapperName(%q) = %q; want %q", method, got, want)
		}
		if got := string(AppendWrapperName([]byte("p:"), method)); got != "p:"+want {
			t.Errorf("AppendWrapperName(%q) = %q", method, got)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for s, want := range map[string]Format{"": XML, "xml": XML, "json": JSON} {
		if f, ok := ParseFormat(s); !ok || f != want {
			t.Errorf("ParseFormat(%q) = %v, %v", s, f, ok)
		}
	}
	for _, s := range []string{"JSON", "Xml", "jsonp", " json", "yaml"} {
		if _, ok := ParseFormat(s); ok {
			t.Errorf("ParseFormat(%q) accepted", s)
		}
	}
	if XML.String() != "xml" || JSON.String() != "json" ||
		!strings.HasPrefix(JSON.ContentType(), "application/json") || !strings.HasPrefix(XML.ContentType(), "text/xml") {
		t.Error("Format String/ContentType")
	}
}

var escapeCases = []string{
	"", "plain", nasty, "\"\\/\b\f\n\r\t", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x1f\x7f",
	"\u2028\u2029\u2027\u202a", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\xef\xbf\xbe\xef\xbf\xbf",
	"\U0010ffff", "\ufffd", "a\xffb", "\xe4\xb8", "<script>&</script>",
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range escapeCases {
		checkJSONString(t, s)
	}
}

func TestAppendXMLTextMatchesEscapeText(t *testing.T) {
	for _, s := range escapeCases {
		checkXMLText(t, s)
	}
}

// checkJSONString holds appendJSONString to encoding/json with HTML escaping off, byte
// for byte, and checks the result decodes back to s (with invalid UTF-8 replaced).
func checkJSONString(t testing.TB, s string) {
	t.Helper()
	got := appendJSONString([]byte("x"), s)
	if got[0] != 'x' {
		t.Fatal("prefix clobbered")
	}
	got = got[1:]
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.TrimSuffix(want.String(), "\n") {
		t.Fatalf("appendJSONString(%q) = %s; encoding/json gives %s", s, got, want.Bytes())
	}
	if !json.Valid(got) {
		t.Fatalf("appendJSONString(%q) = %s is not valid JSON", s, got)
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil || back != sanitized(s, false) {
		t.Fatalf("round trip of %q = %q, %v", s, back, err)
	}
	if b := appendJSONString(nil, []byte(s)); !bytes.Equal(b, got) {
		t.Fatalf("[]byte and string encodings differ for %q", s)
	}
}

// checkXMLText holds appendXMLText to xml.EscapeText byte for byte, and checks the
// text survives a parse.
func checkXMLText(t testing.TB, s string) {
	t.Helper()
	got := appendXMLText([]byte("x"), s)[1:]
	var want bytes.Buffer
	if err := xml.EscapeText(&want, []byte(s)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("appendXMLText(%q) = %q; xml.EscapeText gives %q", s, got, want.Bytes())
	}
	doc := append(append([]byte("<a>"), got...), "</a>"...)
	var back string
	if err := xml.Unmarshal(doc, &back); err != nil || back != sanitized(s, true) {
		t.Fatalf("round trip of %q = %q, %v", s, back, err)
	}
}
