package testio

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// WantPrivate fails the test unless every path exists with mode 0600 (SPEC
// §5.4: the files that may hold secrets are their owner's only).
func WantPrivate(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

// WantNotInFiles fails the test if any of the secrets appears, in plain text,
// in any of the files that exist among paths.
func WantNotInFiles(t testing.TB, secrets []string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the secret %s in plain text", filepath.Base(p), s)
			}
		}
	}
}
