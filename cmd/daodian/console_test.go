package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
)

// getStatus answers the status and body of a GET, no redirect followed,
// with the admin token when given.
func getStatus(t *testing.T, url, token string) (int, string) {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// freeAddr returns an address on the loopback nobody listens on (now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeConsole: serve answers the console beside the admin API, says
// where; --admin-addr moves both to a listener of their own (the gateway's
// stays public and has neither); --no-console leaves the API alone.
func TestServeConsole(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	app, tk := seed(t, db)
	c := &tokenCLI{store: []string{"--db", db}}
	tok := c.create(t, "--name", "ops")

	p := startServeInProcess(t, "--db", db)
	if !strings.Contains(p.stderr.String(), "console on "+p.base+"/console/") {
		t.Errorf("serve says:\n%s", p.stderr)
	}
	if s, body := getStatus(t, p.base+"/console/login", ""); s != 200 || !strings.Contains(body, `name="token"`) {
		t.Errorf("/console/login: %d", s)
	}
	if s, _ := getStatus(t, p.base+"/console", ""); s != http.StatusMovedPermanently {
		t.Errorf("/console: %d", s)
	}
	// The request log: a call through the gateway is listed, without sign.
	if _, err := client.New(p.url, app.Key, app.Secret).Call(t.Context(), alsc.MethodConsult,
		map[string]string{"consult_request": `{"request_id":"c1","shop_id":"s1","ticket_code":"` + tk.Code + `"}`}); err != nil {
		t.Fatal(err)
	}
	s, body := getStatus(t, p.base+"/admin/v1/requests?merchant=m1", tok.Token)
	var l struct {
		Log      bool `json:"request_log"`
		Requests []struct {
			Params map[string]string `json:"params"`
		} `json:"requests"`
	}
	if err := json.Unmarshal([]byte(body), &l); s != 200 || err != nil || !l.Log || len(l.Requests) != 1 || l.Requests[0].Params["sign"] != "" ||
		!strings.Contains(l.Requests[0].Params["consult_request"], tk.Code) {
		t.Errorf("requests: %d %s", s, body)
	}

	admin := freeAddr(t)
	q := startServeInProcess(t, "--db", filepath.Join(t.TempDir(), "e.db"), "--admin-addr", admin, "--no-request-log")
	if !strings.Contains(q.stderr.String(), "console on http://"+admin+"/console/") || !strings.Contains(q.stderr.String(), "admin API on http://"+admin+"/admin/v1/") {
		t.Errorf("serve --admin-addr says:\n%s", q.stderr)
	}
	for _, c := range []struct {
		url  string
		want int
	}{
		{q.base + "/console/login", 404},
		{q.base + "/admin/v1/records", 404},
		{q.base + "/healthz", 200},
		{"http://" + admin + "/console/login", 200},
		{"http://" + admin + "/admin/v1/records", 401},
		{"http://" + admin + "/router/rest", 404},
	} {
		if s, _ := getStatus(t, c.url, ""); s != c.want {
			t.Errorf("GET %s: %d, want %d", c.url, s, c.want)
		}
	}

	r := startServeInProcess(t, "--db", filepath.Join(t.TempDir(), "f.db"), "--no-console")
	if strings.Contains(r.stderr.String(), "console on") {
		t.Errorf("serve --no-console says:\n%s", r.stderr)
	}
	if s, _ := getStatus(t, r.base+"/console/login", ""); s != 404 {
		t.Errorf("--no-console: /console/login %d", s)
	}
	if s, _ := getStatus(t, r.base+"/admin/v1/records", ""); s != 401 {
		t.Errorf("--no-console: /admin/v1/records %d", s)
	}
}

// TestServeNoRequestLog: with --no-request-log the API says the server keeps
// no log, and lists nothing.
func TestServeNoRequestLog(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	app, _ := seed(t, db)
	tok := (&tokenCLI{store: []string{"--db", db}}).create(t, "--name", "ops")
	p := startServeInProcess(t, "--db", db, "--no-request-log")
	if _, err := client.New(p.url, app.Key, app.Secret).Call(t.Context(), alsc.MethodTimeGet, nil); err != nil {
		t.Fatal(err)
	}
	s, body := getStatus(t, p.base+"/admin/v1/requests", tok.Token)
	if s != 200 || !regexp.MustCompile(`"request_log":false,"apps":\[\],"requests":\[\]`).MatchString(body) {
		t.Errorf("requests: %d %s", s, body)
	}
}
