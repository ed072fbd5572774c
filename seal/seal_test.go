package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/daodian/daodian"
)

func newKey(t *testing.T) *Key {
	t.Helper()
	k, err := NewKey(bytes.Repeat([]byte{7}, KeyLen))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := newKey(t)
	const plain = "0123456789abcdef0123456789abcdef"
	a, b := k.Seal(plain, "ad"), k.Seal(plain, "ad")
	if !IsSealed(a) || a == b {
		t.Fatalf("Seal: %q, %q; want two different sealed values", a, b)
	}
	if strings.Contains(a, plain) {
		t.Fatal("the sealed value shows the plain text")
	}
	for _, s := range []string{a, b} {
		if got, err := k.Open(s, "ad"); err != nil || got != plain {
			t.Fatalf("Open: %q, %v", got, err)
		}
	}
	other, err := NewKey(bytes.Repeat([]byte{8}, KeyLen))
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(a)
	tampered[len(tampered)-3] ^= 1
	for _, c := range []struct {
		name, stored, ad string
		k                *Key
	}{
		{"another ad", a, "other", k},
		{"another key", a, "ad", other},
		{"altered", string(tampered), "ad", k},
		{"truncated", a[:len(Prefix)+10], "ad", k},
		{"not base64", Prefix + "!!!", "ad", k},
	} {
		if got, err := c.k.Open(c.stored, c.ad); !errors.Is(err, ErrOpen) || got != "" {
			t.Errorf("%s: %q, %v; want ErrOpen", c.name, got, err)
		}
	}
	if _, err := k.Open(plain, "ad"); err == nil || strings.Contains(err.Error(), plain) {
		t.Errorf("Open of a plain value: %v", err)
	}
	if _, err := NewKey(make([]byte, 16)); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

// TestSealApp: an app's secrets are bound to the app and to their column, so
// a sealed value moved elsewhere does not open; "" stays "" (none).
func TestSealApp(t *testing.T) {
	k := newKey(t)
	a := &daodian.App{Key: "app-a", Secret: "current", PreviousSecret: "old"}
	secret, previous := k.SealApp(a)
	if !IsSealed(secret) || !IsSealed(previous) {
		t.Fatalf("SealApp: %q %q", secret, previous)
	}
	got := &daodian.App{Key: "app-a", Secret: secret, PreviousSecret: previous}
	if err := k.OpenApp(got); err != nil || got.Secret != "current" || got.PreviousSecret != "old" {
		t.Fatalf("OpenApp: %+v %v", got, err)
	}
	for _, c := range []struct {
		name string
		app  daodian.App
	}{
		{"secret copied to another app", daodian.App{Key: "app-b", Secret: secret}},
		{"previous secret moved into the secret column", daodian.App{Key: "app-a", Secret: previous}},
		{"secret moved into the previous column", daodian.App{Key: "app-a", PreviousSecret: secret}},
	} {
		err := k.OpenApp(&c.app)
		if !errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), c.app.Key) || c.app.Secret != "" || c.app.PreviousSecret != "" {
			t.Errorf("%s: %v, left %+v", c.name, err, c.app)
		}
	}
	bare := &daodian.App{Key: "bare"}
	if s, p := k.SealApp(bare); s != "" || p != "" {
		t.Fatalf("SealApp of no secrets: %q %q", s, p)
	}
	if err := k.OpenApp(bare); err != nil {
		t.Fatal(err)
	}
	// SealPlain seals what a database written before sealing holds, and keeps
	// what is sealed already.
	legacy := &daodian.App{Key: "app-a", Secret: "plain", PreviousSecret: previous}
	s2, p2 := k.SealPlain(legacy)
	if p2 != previous || !IsSealed(s2) {
		t.Fatalf("SealPlain: %q %q", s2, p2)
	}
	legacy.Secret, legacy.PreviousSecret = s2, p2
	if err := k.OpenApp(legacy); err != nil || legacy.Secret != "plain" || legacy.PreviousSecret != "old" {
		t.Fatalf("after SealPlain: %+v %v", legacy, err)
	}
}

// TestSealWebhook: a webhook's secret is bound to the webhook, and to being a
// webhook's: an app's sealed secret does not open as a webhook's, nor the
// other way round, nor one webhook's as another's.
func TestSealWebhook(t *testing.T) {
	k := newKey(t)
	w := &daodian.Webhook{ID: "2100000000000000001", Secret: "whsec_abc"}
	stored := k.SealWebhook(w)
	if !IsSealed(stored) || strings.Contains(stored, "whsec_abc") {
		t.Fatalf("SealWebhook: %q", stored)
	}
	got := &daodian.Webhook{ID: w.ID, Secret: stored}
	if err := k.OpenWebhook(got); err != nil || got.Secret != "whsec_abc" {
		t.Fatalf("OpenWebhook: %+v %v", got, err)
	}
	appSecret, _ := k.SealApp(&daodian.App{Key: w.ID, Secret: "whsec_abc"})
	for _, c := range []struct {
		name string
		w    daodian.Webhook
	}{
		{"copied to another webhook", daodian.Webhook{ID: "2100000000000000002", Secret: stored}},
		{"an app's secret of the same key", daodian.Webhook{ID: w.ID, Secret: appSecret}},
		{"plain", daodian.Webhook{ID: w.ID, Secret: "whsec_abc"}},
	} {
		err := k.OpenWebhook(&c.w)
		if err == nil || !strings.Contains(err.Error(), c.w.ID) || strings.Contains(err.Error(), "whsec_abc") || c.w.Secret != "" {
			t.Errorf("%s: %v, left %+v", c.name, err, c.w)
		}
	}
	if err := k.OpenApp(&daodian.App{Key: w.ID, Secret: stored}); !errors.Is(err, ErrOpen) {
		t.Errorf("a webhook's sealed secret opened as an app's: %v", err)
	}
}

func writeKeyFile(t *testing.T, dir string, content []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(p, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFile(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, KeyLen)
	text := base64.StdEncoding.EncodeToString(raw)
	want := newKeyFrom(t, raw).Seal("x", "ad")

	good := writeKeyFile(t, t.TempDir(), []byte(text+"\n"), 0o600)
	k, err := LoadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(want, "ad"); err != nil || got != "x" {
		t.Fatalf("the loaded key is not the file's: %q %v", got, err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	for _, c := range []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"not base64", "this is not a key, but a secret-looking text"},
		{"short key", base64.StdEncoding.EncodeToString(raw[:16])},
		{"hex", strings.Repeat("ab", KeyLen)},
		{"too long", text + strings.Repeat(" ", maxKeyFileBytes)},
	} {
		p := writeKeyFile(t, t.TempDir(), []byte(c.content), 0o600)
		_, err := LoadFile(p)
		if err == nil || !strings.Contains(err.Error(), "base64") {
			t.Errorf("%s: %v", c.name, err)
		} else if c.content != "" && strings.Contains(err.Error(), strings.TrimSpace(c.content)) {
			t.Errorf("%s: the error quotes the file: %v", c.name, err)
		}
	}
	if _, err := LoadFile(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o640, true}, // group read: a key handed over by a group
		{0o644, false}, {0o604, false}, {0o660, false}, {0o602, false},
	} {
		p := writeKeyFile(t, t.TempDir(), []byte(text), c.mode)
		_, err := LoadFile(p)
		if c.ok != (err == nil) {
			t.Errorf("mode %04o: %v", c.mode, err)
		}
		if err != nil && !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: the error does not say what to do: %v", c.mode, err)
		}
	}
}

func newKeyFrom(t *testing.T, raw []byte) *Key {
	t.Helper()
	k, err := NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCreateFileRace: processes starting at once on one key path all end up
// with the one key that was written, never a half-written file.
func TestCreateFileRace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret.key")
	keys := make([]*Key, 8)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = CreateFile(p) })
	}
	wg.Wait()
	sealed := ""
	for i, k := range keys {
		if errs[i] != nil {
			t.Fatalf("CreateFile %d: %v", i, errs[i])
		}
		if sealed == "" {
			sealed = k.Seal("v", "ad")
		} else if got, err := k.Open(sealed, "ad"); err != nil || got != "v" {
			t.Fatalf("CreateFile %d got another key", i)
		}
	}
	loaded, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loaded.Open(sealed, "ad"); err != nil || got != "v" {
		t.Fatal("the file holds another key than the one returned")
	}
	es, err := os.ReadDir(filepath.Dir(p))
	if err != nil || len(es) != 1 {
		t.Fatalf("temporary files left beside the key: %v %v", es, err)
	}
}

func TestSetup(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "db.key")

	// A new database: the key file is created, and a check handed back.
	k, check, err := Setup(p, "")
	if err != nil || check == "" {
		t.Fatalf("Setup of a new database: %v %q", err, check)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no key file created: %v", err)
	}
	// The database has the check now: the same file passes, with no new check.
	k2, again, err := Setup(p, check)
	if err != nil || again != "" {
		t.Fatalf("Setup with its own check: %v %q", err, again)
	}
	if got, err := k2.Open(k.Seal("v", "ad"), "ad"); err != nil || got != "v" {
		t.Fatal("Setup loaded another key")
	}
	// A missing key file is not created for a database with sealed secrets.
	missing := filepath.Join(dir, "missing.key")
	if _, _, err := Setup(missing, check); !errors.Is(err, ErrNoKeyFile) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Setup without the key file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Setup created a key for a sealed database: %v", err)
	}
	// Another key is refused.
	other := filepath.Join(dir, "other.key")
	if _, err := CreateFile(other); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Setup(other, check); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), other) {
		t.Fatalf("Setup with another key: %v", err)
	}
	// A database with no check yet takes any key file there is.
	if _, c, err := Setup(other, ""); err != nil || c == "" {
		t.Fatalf("Setup of a new database with an existing key: %v", err)
	}
}
