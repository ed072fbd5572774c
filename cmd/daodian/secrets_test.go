//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/seal"
	"github.com/daodian/daodian/top"
)

var demoCreds = regexp.MustCompile(`app_key\s+(\S+)\n\s*app_secret\s+(\S+)`)

// TestServeDemoOnFreshDirectory is the README's first command, `daodian serve
// --demo`, in an empty directory under the usual umask 022: it creates the key
// file silently, every file it writes is its owner's only, the secret is in no
// file, and the demo credentials work.
func TestServeDemoOnFreshDirectory(t *testing.T) {
	testio.Umask(t, 0o022)
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chdir(wd) })

	p := startServeInProcess(t, "--demo")
	m := demoCreds.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no demo credentials in:\n%s", p.stderr)
	}
	if strings.Contains(strings.ToLower(p.stderr.String()), "key file") {
		t.Errorf("the demo talks about the key file:\n%s", p.stderr)
	}
	res, err := client.New(p.url, m[1], m[2]).TimeGet(context.Background())
	if err != nil || res.Time == "" {
		t.Fatalf("a call with the demo credentials: %v", err)
	}
	db := filepath.Join(dir, "daodian.db")
	testio.WantPrivate(t, db, db+"-wal", db+"-shm", db+".key", db+".lock")
	testio.WantNotInFiles(t, []string{m[2]}, db, db+"-wal", db+"-shm")
	if _, err := seal.LoadFile(db + ".key"); err != nil {
		t.Fatalf("the created key file: %v", err)
	}
}

// TestBackupPrivate: a backup is its owner's only whatever the umask, and the
// app secrets are sealed in it.
func TestBackupPrivate(t *testing.T) {
	testio.Umask(t, 0o022)
	dir := t.TempDir()
	db := filepath.Join(dir, "d.db")
	app, _ := seed(t, db)
	backup := filepath.Join(dir, "backup.db")
	code, out, errs := cli(t, nil, "backup", "--db", db, "--to", backup)
	if code != 0 || !strings.Contains(out, "the key is not in it") {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	testio.WantPrivate(t, backup)
	testio.WantNotInFiles(t, []string{app.Secret}, backup)
	if _, err := os.Stat(backup + "-journal"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a journal left beside the backup: %v", err)
	}
}

// TestPostgresNeedsSecretKeyFile: every command that opens a PostgreSQL store
// refuses to start without a key file, with one line saying so (and never the
// URL's password). No server is needed: the check comes first.
func TestPostgresNeedsSecretKeyFile(t *testing.T) {
	const db = "postgres://daodian:hunter2secret@127.0.0.1:1/x"
	csvPath := writeFile(t, "t.csv", "merchant_id\nm1\n")
	for _, args := range [][]string{
		{"serve", "--db", db},
		{"app", "create", "--name", "pos", "--merchant", "m1", "--db", db},
		{"app", "rotate-secret", "--app-key", "k", "--db", db},
		{"shop", "add", "--merchant", "m1", "--shop-id", "s1", "--db", db},
		{"ticket", "issue", "--merchant", "m1", "--db", db},
		{"ticket", "import", csvPath, "--db", db},
		{"audit", "--db", db},
		{"fault", "list", "--db", db},
	} {
		code, out, errs := cli(t, nil, args...)
		if code != 1 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "--secret-key-file") ||
			!strings.Contains(errs, "DAODIAN_SECRET_KEY_FILE") || strings.Contains(errs, "hunter2secret") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args[:2], code, out, errs)
		}
	}
}

// TestWrongSecretKeyFile: a key file that is not the database's, a missing
// one, or one others can read is refused when the store opens, in one line
// that names the flag — never as an invalid signature on every call.
func TestWrongSecretKeyFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "d.db")
	if code, _, errs := cli(t, nil, "app", "create", "--name", "pos", "--merchant", "m1", "--db", db); code != 0 {
		t.Fatal(errs)
	}
	other := filepath.Join(dir, "other.key")
	if _, err := seal.CreateFile(other); err != nil {
		t.Fatal(err)
	}
	otherText, _ := os.ReadFile(other)
	open := filepath.Join(dir, "open.key")
	own, _ := os.ReadFile(db + ".key")
	if err := os.WriteFile(open, own, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.key")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"another key", []string{"audit", "--db", db, "--secret-key-file", other}, "does not hold the key"},
		{"another key, serve", []string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--secret-key-file", other}, "does not hold the key"},
		{"another key, rotate", []string{"app", "rotate-secret", "--app-key", "k", "--db", db, "--secret-key-file", other}, "does not hold the key"},
		{"missing key file", []string{"audit", "--db", db, "--secret-key-file", missing}, "no such secret key file"},
		{"key file others can read", []string{"audit", "--db", db, "--secret-key-file", open}, "chmod 600"},
	} {
		code, _, errs := cli(t, nil, c.args...)
		if code != 1 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) ||
			bytes.Contains([]byte(errs), bytes.TrimSpace(otherText)) || bytes.Contains([]byte(errs), bytes.TrimSpace(own)) {
			t.Errorf("%s: exit %d, stderr %q", c.name, code, errs)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a key file was created for a database with sealed secrets")
	}
	// The key file named in the environment is the one used.
	if code, _, errs := cli(t, map[string]string{"DAODIAN_SECRET_KEY_FILE": other}, "audit", "--db", db); code != 1 || !strings.Contains(errs, "does not hold the key") {
		t.Errorf("DAODIAN_SECRET_KEY_FILE: exit %d, %s", code, errs)
	}
	if code, _, errs := cli(t, map[string]string{"DAODIAN_SECRET_KEY_FILE": db + ".key"}, "audit", "--db", db); code != 0 {
		t.Errorf("DAODIAN_SECRET_KEY_FILE with the database's key: exit %d, %s", code, errs)
	}
}

// TestAppRotateSecret: `daodian app rotate-secret` prints the new secret; the
// gateway accepts it within its app cache's time (appCacheTTL), and stops
// accepting the old one once the grace has passed.
func TestAppRotateSecret(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	app, _ := seed(t, db)
	p := startServeInProcess(t, "--db", db)
	ctx := context.Background()
	if _, err := client.New(p.url, app.Key, app.Secret).TimeGet(ctx); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	code, out, errs := cli(t, nil, "app", "rotate-secret", "--app-key", app.Key, "--grace", "1h", "--json", "--db", db)
	if code != 0 {
		t.Fatalf("rotate-secret: %d %s", code, errs)
	}
	var got struct {
		AppKey     string `json:"app_key"`
		AppSecret  string `json:"app_secret"`
		ValidUntil string `json:"previous_secret_valid_until"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.AppKey != app.Key || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got.AppSecret) || got.AppSecret == app.Secret {
		t.Fatalf("rotate-secret --json: %q %v", out, err)
	}
	until, err := top.ParseTimestamp(got.ValidUntil)
	if err != nil || until.Before(before.Add(time.Hour).Truncate(time.Second)) || until.After(time.Now().Add(time.Hour)) {
		t.Fatalf("previous_secret_valid_until %q (%v), want an hour from now", got.ValidUntil, err)
	}
	l := ledgerAt(t, db)
	stored := func() *daodian.App {
		t.Helper()
		var a *daodian.App
		if err := l.Store().View(ctx, func(tx daodian.ReadTx) error {
			var err error
			a, err = tx.App(ctx, app.Key)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := stored(); a.Secret != got.AppSecret || a.PreviousSecret != app.Secret || top.FormatTime(a.PreviousSecretUntil) != got.ValidUntil {
		t.Fatalf("stored after rotation: %+v", a)
	}
	// The new secret works on the running gateway within its app cache's time.
	waitFor(t, "the new secret to be accepted", func() bool {
		_, err := client.New(p.url, app.Key, got.AppSecret).TimeGet(ctx)
		return err == nil
	})

	// Grace 0: the secret just issued stops within the cache's time.
	code, out, errs = cli(t, nil, "app", "rotate-secret", "--app-key", app.Key, "--grace", "0s", "--db", db)
	third := regexp.MustCompile(`app_secret (\S+)`).FindStringSubmatch(out)
	if code != 0 || third == nil || !strings.Contains(out, "refuses the previous one, within 2s") {
		t.Fatalf("rotate-secret --grace 0: %d %q %s", code, out, errs)
	}
	if a := stored(); a.Secret != third[1] || a.PreviousSecret != "" || !a.PreviousSecretUntil.IsZero() {
		t.Fatalf("stored after a rotation without grace: %+v", a)
	}
	waitFor(t, "the replaced secret to be refused", func() bool {
		_, err := client.New(p.url, app.Key, got.AppSecret).TimeGet(ctx)
		var pe *client.Error
		return errors.As(err, &pe) && pe.Code == 25
	})
	if _, err := client.New(p.url, app.Key, third[1]).TimeGet(ctx); err != nil {
		t.Fatalf("the newest secret: %v", err)
	}

	// Refusals.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--app-key", "nope"}, 1, `no app has the key "nope"`},
		{[]string{"--app-key", app.Key, "--grace", "-1s"}, 2, "--grace must be between 0 and 720h"},
		{[]string{"--app-key", app.Key, "--grace", "721h"}, 2, "--grace must be between 0 and 720h"},
		{nil, 2, "--app-key is required"},
	} {
		code, out, errs := cli(t, nil, append([]string{"app", "rotate-secret", "--db", db}, c.args...)...)
		if code != c.code || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q %q", c.args, code, out, errs)
		}
	}
	if a := stored(); a.Secret != third[1] {
		t.Fatal("a refused rotation changed the secret")
	}
}

// waitFor polls cond for longer than the gateway's app cache keeps an app.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(appCacheTTL + 3*time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
