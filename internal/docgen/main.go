// Command docgen writes docs/api.md: it runs a real `daodian serve --demo` on a
// fresh database, sends the example requests, and fills the template
// api.md.tmpl with each request (as curl) and the answer the server sent
// (indented). It lives under internal/ so that `go build ./...` and `go vet
// ./...` (CI) keep it compiling.
//
//	go build -o /tmp/daodian ./cmd/daodian && go run ./internal/docgen /tmp/daodian > docs/api.md
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/top"
)

// example is one request and its answer.
type example struct {
	curl, body, lang string
}

type gen struct {
	url, key, secret string
	examples         map[string]example
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: go run ./internal/docgen DAODIAN_BINARY > docs/api.md")
	}
	tmpl, err := os.ReadFile(filepath.Join("internal", "docgen", "api.md.tmpl"))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "docgen-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "demo.db")
	cmd := exec.Command(os.Args[1], "serve", "--demo", "--db", db, "--addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer cmd.Process.Kill()
	var banner strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		banner.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "serving on") {
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	s := banner.String()
	find := func(re string) []string {
		m := regexp.MustCompile(re).FindStringSubmatch(s)
		if m == nil {
			log.Fatalf("no %s in the demo banner:\n%s", re, s)
		}
		return m
	}
	g := &gen{url: find(`serving on (\S+)`)[1], key: find(`app_key\s+(\S+)`)[1], secret: find(`app_secret\s+(\S+)`)[1], examples: map[string]example{}}
	group := find(`ticket_id (\d+) code (\d+); ticket_id (\d+) code (\d+)`)
	card := find(`5-times card: ticket_id (\d+) code (\d+)`)
	g.run(group[1], group[2], card[1], card[2])
	g.runAdmin(os.Args[1], db, card[1], card[2])

	out := regexp.MustCompile(`\{\{(.+?)\|(curl|body)\}\}`).ReplaceAllStringFunc(string(tmpl), func(m string) string {
		p := regexp.MustCompile(`\{\{(.+?)\|(curl|body)\}\}`).FindStringSubmatch(m)
		ex, ok := g.examples[p[1]]
		if !ok {
			log.Fatalf("the template names an unknown example %q", p[1])
		}
		if p[2] == "curl" {
			return "```sh\n" + ex.curl + "\n```"
		}
		return "```" + ex.lang + "\n" + ex.body + "\n```"
	})
	fmt.Print(out)
}

// run sends every example request, in an order that makes each one meaningful.
func (g *gen) run(g0ID, g0Code, cardID, cardCode string) {
	const (
		consult = "alibaba.alsc.daodian.ticket.consult"
		use     = "alibaba.alsc.merchant.ext.ticketcode.use"
		reserve = "alibaba.alsc.daodian.ticket.reserve"
		refund  = "alibaba.alsc.merchant.ext.ticket.refund"
	)
	g.call("time.get json", "taobao.time.get", top.JSON, false, nil, nil)
	g.call("time.get xml", "taobao.time.get", top.XML, false, nil, nil)
	g.call("time.get json simplify", "taobao.time.get", top.JSON, true, nil, nil)

	cq := func(code string) map[string]string {
		return map[string]string{"consult_request": `{"request_id":"c-1","shop_id":"demo-shop","ticket_code":"` + code + `"}`}
	}
	g.call("consult json", consult, top.JSON, false, cq(g0Code), nil)
	g.call("consult xml", consult, top.XML, false, cq(g0Code), nil)
	g.call("consult json simplify", consult, top.JSON, true, cq(g0Code), nil)
	g.call("consult failure json", consult, top.JSON, false, cq("100000000000"), nil)

	uq := func(code string, q int, rid string) map[string]string {
		return map[string]string{"use_request": fmt.Sprintf(`{"ticket_code":"%s","shop_id":"demo-shop","quantity":%d,"ticket_request_id":"%s"}`, code, q, rid)}
	}
	g.call("use json group", use, top.JSON, false, uq(g0Code, 2, "u-1"), nil)
	g.call("use json replay", use, top.JSON, false, uq(g0Code, 2, "u-1"), nil)
	cardUse := g.call("use xml card", use, top.XML, false, uq(cardCode, 1, "u-2"), nil)
	g.call("use refusal json", use, top.JSON, false, uq(cardCode, 9, "u-3"), nil)
	g.call("use refusal xml", use, top.XML, false, uq("100000000000", 1, "u-4"), nil)
	cardTrans := regexp.MustCompile(`<ticket_trans_id>(\d+)</ticket_trans_id>`).FindStringSubmatch(cardUse)[1]

	rq := func(body string) map[string]string { return map[string]string{"ticket_reverse_top_request": body} }
	g.call("reserve json trans", reserve, top.JSON, false, rq(`{"request_id":"r-1","ticket_id":"`+cardID+`","ticket_use_trans_id":"`+cardTrans+`"}`), nil)
	g.call("reserve xml latest", reserve, top.XML, false, rq(`{"request_id":"r-2","ticket_id":"`+g0ID+`","biz_date":"`+top.FormatTime(time.Now())+`"}`), nil)
	g.call("reserve json notfound", reserve, top.JSON, false, rq(`{"request_id":"r-3","ticket_id":"2100000000000999999"}`), nil)
	g.call("reserve xml notfound", reserve, top.XML, false, rq(`{"request_id":"r-4","ticket_id":"2100000000000999999"}`), nil)
	g.call("reserve json conflict", reserve, top.JSON, false, rq(`{"request_id":"r-1","ticket_id":"`+g0ID+`"}`), nil)
	g.call("reserve json invalid", reserve, top.JSON, false, rq(`{"ticket_id":"`+g0ID+`"}`), nil)

	u5 := g.call("use json card2", use, top.JSON, false, uq(cardCode, 1, "u-5"), nil)
	t5 := regexp.MustCompile(`"ticket_trans_id":"(\d+)"`).FindStringSubmatch(u5)[1]
	fq := func(trans, rid string) map[string]string {
		return map[string]string{"trans_id": trans, "ticket_code": cardCode, "ticket_request_id": rid}
	}
	g.call("refund json", refund, top.JSON, false, fq(t5, "f-1"), nil)
	g.call("refund xml", refund, top.XML, false, fq(t5, "f-2"), nil)
	g.call("refund refusal json", refund, top.JSON, false, fq("2100000000000999999", "f-3"), nil)
	g.call("reserve json refunded", reserve, top.JSON, false, rq(`{"request_id":"r-5","ticket_id":"`+cardID+`","ticket_use_trans_id":"`+t5+`"}`), nil)

	wrongSign := func(p map[string]string) { p["sign"] = "0123456789ABCDEF0123456789ABCDEF" }
	g.call("error 25 json", "taobao.time.get", top.JSON, false, nil, wrongSign)
	g.call("error 25 xml", "taobao.time.get", top.XML, false, nil, wrongSign)
	g.call("error 40 json", consult, top.JSON, false, nil, nil)
	g.call("error 50 json", consult, top.JSON, false, map[string]string{"consult_request": `{"request_id":"c-2","shop_id":"demo-shop","ticket_code":12}`}, nil)
}

// call sends a signed request (altered by mut after signing, if set) and records
// it under name.
func (g *gen) call(name, method string, f top.Format, simplify bool, business map[string]string, mut func(map[string]string)) string {
	c := client.New(g.url, g.key, g.secret, client.WithFormat(f, simplify))
	p, err := c.Params(method, business)
	if err != nil {
		log.Fatal(err)
	}
	if mut != nil {
		mut(p)
	}
	form := url.Values{}
	names := make([]string, 0, len(p))
	for k, v := range p {
		form.Set(k, v)
		names = append(names, k)
	}
	b := readAll(http.PostForm(g.url, form))
	sort.Strings(names)
	var cb strings.Builder
	cb.WriteString("curl -s http://127.0.0.1:8080/router/rest")
	for _, k := range names {
		fmt.Fprintf(&cb, " \\\n  --data-urlencode '%s=%s'", k, p[k])
	}
	lang := "json"
	if f == top.XML {
		lang = "xml"
	}
	g.examples[name] = example{curl: cb.String(), body: indent(b, f), lang: lang}
	return string(b)
}

// readAll returns the body of an answer, ending the program on a failure.
func readAll(resp *http.Response, err error) []byte {
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

// indent lays out an answer for reading without changing its content.
func indent(b []byte, f top.Format) string {
	if f == top.JSON {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			log.Fatalf("answer is not JSON: %s", b)
		}
		return out.String()
	}
	i := bytes.Index(b, []byte("?>"))
	if i < 0 {
		log.Fatalf("answer has no XML declaration: %s", b)
	}
	d := xml.NewDecoder(bytes.NewReader(b[i+2:]))
	var out bytes.Buffer
	e := xml.NewEncoder(&out)
	e.Indent("", "  ")
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatalf("answer is not XML: %v: %s", err, b)
		}
		if cd, ok := tok.(xml.CharData); ok && len(bytes.TrimSpace(cd)) == 0 {
			continue
		}
		if err := e.EncodeToken(xml.CopyToken(tok)); err != nil {
			log.Fatal(err)
		}
	}
	if err := e.Flush(); err != nil {
		log.Fatal(err)
	}
	return string(b[:i+2]) + "\n" + out.String()
}
