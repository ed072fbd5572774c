package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/pgtest"
	"github.com/daodian/daodian/internal/testio"
)

// tokenCLI runs `daodian admin token …` on one store.
type tokenCLI struct {
	env   map[string]string
	store []string // --db and, for PostgreSQL, --secret-key-file
}

func (c *tokenCLI) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, c.env, append(append([]string{"admin", "token"}, args...), c.store...)...)
}

// created is the --json of admin token create.
type created struct {
	TokenID    string `json:"token_id"`
	Token      string `json:"token"`
	Name       string `json:"name"`
	MerchantID string `json:"merchant_id"`
}

func (c *tokenCLI) create(t *testing.T, args ...string) created {
	t.Helper()
	code, out, errs := c.run(t, append([]string{"create", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("admin token create %v: %d %s", args, code, errs)
	}
	var got created
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("admin token create --json: %v in %s", err, out)
	}
	return got
}

func (c *tokenCLI) list(t *testing.T) []tokenJSON {
	t.Helper()
	code, out, errs := c.run(t, "list", "--json")
	if code != 0 {
		t.Fatalf("admin token list: %d %s", code, errs)
	}
	var got []tokenJSON
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("admin token list --json: %v in %s", err, out)
	}
	return got
}

var gmt8Time = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)

// testTokenCommands: create (scoped to an existing merchant or to all), list
// (never the token nor its hash), revoke (idempotent), and their errors. It
// returns the tokens it created.
func testTokenCommands(t *testing.T, c *tokenCLI) []string {
	all := c.create(t, "--name", "ops")
	scoped := c.create(t, "--name", "m1 back office", "--merchant", "m1")
	for _, tok := range []created{all, scoped} {
		if !daodian.WellFormedAdminToken(tok.Token) || len(tok.TokenID) != 19 {
			t.Errorf("created %+v: want a dd_… token and a 19-digit id", tok)
		}
	}
	if all.MerchantID != "" || scoped.MerchantID != "m1" || scoped.Name != "m1 back office" {
		t.Errorf("created %+v and %+v", all, scoped)
	}

	// Without --json: the token, once, and what to do with it.
	code, out, errs := c.run(t, "create", "--name", "text")
	m := regexp.MustCompile(`(?m)^token    (dd_\S+)$`).FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "scope    all merchants") || !strings.Contains(out, "only time the token is shown") {
		t.Fatalf("admin token create: %d %q %s", code, out, errs)
	}
	secrets := []string{all.Token, scoped.Token, m[1], daodian.HashAdminToken(all.Token), daodian.HashAdminToken(m[1])}

	// Refusals change nothing.
	before := c.list(t)
	for _, r := range []struct {
		args []string
		exit int
		want string
	}{
		{[]string{"create", "--name", "x", "--merchant", "no-such-merchant"}, 1, `--merchant "no-such-merchant" names no merchant`},
		{[]string{"create", "--merchant", "m1"}, 2, "--name is required"},
		{[]string{"create", "--name", "bad\x01name"}, 1, "--name contains a control character"},
		{[]string{"revoke"}, 2, "--id is required"},
		{[]string{"revoke", "--id", "2100000000000999999"}, 1, `no admin token has the id "2100000000000999999"`},
		{[]string{"revoke", "--id", "abc"}, 1, "--id must be decimal digits"},
		{[]string{"frob"}, 2, `unknown subcommand "frob"; one of: create, list, revoke`},
	} {
		code, out, errs := c.run(t, r.args...)
		if code != r.exit || !strings.Contains(errs, r.want) || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("admin token %v: exit %d, %q %q; want exit %d and one line with %q", r.args, code, out, errs, r.exit, r.want)
		}
	}
	if after := c.list(t); len(after) != len(before) {
		t.Errorf("refused commands changed the tokens: %+v", after)
	}
	if code, _, errs := cli(t, c.env, "admin"); code != 2 || !strings.Contains(errs, "missing subcommand; one of: token") {
		t.Errorf("daodian admin: %d %s", code, errs)
	}

	// list: every token, its scope, never a token or a hash.
	listed := c.list(t)
	if len(listed) != 3 || listed[0].TokenID != all.TokenID || listed[1].TokenID != scoped.TokenID ||
		listed[1].MerchantID != "m1" || listed[0].MerchantID != "" || listed[2].Name != "text" {
		t.Fatalf("admin token list --json: %+v", listed)
	}
	for _, j := range listed {
		if !gmt8Time.MatchString(j.CreatedAt) || j.RevokedAt != "" {
			t.Errorf("listed %+v: want created_at in GMT+8 and no revoked_at", j)
		}
	}
	code, text, _ := c.run(t, "list")
	if code != 0 || !strings.Contains(text, "TOKEN_ID") || !strings.Contains(text, "merchant m1") || !strings.Contains(text, "all merchants") {
		t.Errorf("admin token list: %d\n%s", code, text)
	}
	_, listJSON, _ := c.run(t, "list", "--json")
	for _, s := range secrets {
		if strings.Contains(text+listJSON, s) {
			t.Errorf("admin token list shows %q", s)
		}
	}

	// revoke, twice: the first revocation's time stands.
	code, out, errs = c.run(t, "revoke", "--id", scoped.TokenID)
	if code != 0 || !strings.Contains(out, "revoked") || !strings.Contains(out, "within 2s") {
		t.Fatalf("admin token revoke: %d %q %s", code, out, errs)
	}
	first := c.list(t)[1].RevokedAt
	if !gmt8Time.MatchString(first) {
		t.Fatalf("revoked_at %q", first)
	}
	time.Sleep(1100 * time.Millisecond) // a second revocation would show a later second
	if code, _, errs := c.run(t, "revoke", "--id", scoped.TokenID); code != 0 {
		t.Fatalf("admin token revoke, again: %d %s", code, errs)
	}
	if again := c.list(t); again[1].RevokedAt != first || again[0].RevokedAt != "" {
		t.Errorf("after revoking twice: %+v, want revoked_at %q kept, the other token untouched", again, first)
	}
	return []string{all.Token, scoped.Token, m[1]}
}

func TestAdminTokenCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokens.db")
	if code, _, errs := cli(t, nil, "shop", "add", "--merchant", "m1", "--shop-id", "s1", "--db", db); code != 0 {
		t.Fatal(errs)
	}
	tokens := testTokenCommands(t, &tokenCLI{store: []string{"--db", db}})
	// The database files hold hashes, never a token.
	testio.WantNotInFiles(t, tokens, db, db+"-wal")
}

func TestAdminTokenCommandsPostgres(t *testing.T) {
	db := pgtest.FreshDatabase(t)
	keyEnv := map[string]string{"DAODIAN_SECRET_KEY_FILE": filepath.Join(t.TempDir(), "secret.key")}
	if code, _, errs := cli(t, keyEnv, "shop", "add", "--merchant", "m1", "--shop-id", "s1", "--db", db); code != 0 {
		t.Fatal(errs)
	}
	testTokenCommands(t, &tokenCLI{env: keyEnv, store: []string{"--db", db}})
}

// TestServeAdminAPI: serve mounts the admin API on its listener and says so; a
// token made by the CLI works at once, and stops working within 2 s of its
// revocation by the CLI, while the server runs.
func TestServeAdminAPI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	seed(t, db)
	c := &tokenCLI{store: []string{"--db", db}}
	p := startServeInProcess(t, "--db", db)
	if !strings.Contains(p.stderr.String(), "admin API on "+p.base+"/admin/v1/: no valid admin token yet") {
		t.Errorf("serve says:\n%s", p.stderr)
	}
	tok := c.create(t, "--name", "ops", "--merchant", "m1")
	get := func(path string) int {
		t.Helper()
		r, err := http.NewRequest(http.MethodGet, p.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultTransport.RoundTrip(r) // no redirect followed
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("/admin/v1/records"); s != 200 {
		t.Fatalf("records with a new token: %d", s)
	}
	if s := get("/admin/v1/records?merchant=m2"); s != 403 {
		t.Fatalf("records of another merchant: %d", s)
	}
	if code, _, errs := c.run(t, "revoke", "--id", tok.TokenID); code != 0 {
		t.Fatal(errs)
	}
	revoked := time.Now()
	for get("/admin/v1/records") != 401 {
		if time.Since(revoked) > 2*time.Second+500*time.Millisecond {
			t.Fatal("a revoked token still works after 2 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The gateway is still on the same listener, and the API's own root
	// answers as the API.
	if s := get("/healthz"); s != 200 {
		t.Errorf("/healthz: %d", s)
	}
	if s := get("/admin/v1"); s != 401 {
		t.Errorf("/admin/v1 with a revoked token: %d, want 401", s)
	}
	// The request lines name the token's id, never the token.
	logs := p.stdout.String()
	if strings.Contains(logs, tok.Token) || !strings.Contains(logs, `"token_id":"`+tok.TokenID+`"`) {
		t.Errorf("serve's log:\n%s", logs)
	}
	testio.WantNotInFiles(t, []string{tok.Token}, db, db+"-wal")
}
