package spectest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// signJSON is the project's copy of the shared signature vectors
// (vectors/sign.json beside SPEC), so that tests run in a clean clone.
//
//go:embed testdata/sign.json
var signJSON []byte

// SignVector is one worked case of vectors/sign.json.
type SignVector struct {
	Name       string            `json:"name"`
	Secret     string            `json:"secret"`
	SignMethod string            `json:"sign_method"`
	Params     map[string]string `json:"params"`
	Sign       string            `json:"sign"`
}

// SignVectors returns the worked signature cases. Where the shared vectors
// are present beside the repository, the copy must not have drifted from them.
func SignVectors(tb testing.TB) []SignVector {
	tb.Helper()
	if _, self, _, ok := runtime.Caller(0); ok {
		shared := filepath.Join(filepath.Dir(self), "..", "..", "..", "shared", "vectors", "sign.json")
		b, err := os.ReadFile(shared)
		switch {
		case err == nil && !bytes.Equal(b, signJSON):
			tb.Fatalf("internal/spectest/testdata/sign.json differs from %s: copy the shared vectors again", shared)
		case err != nil && !errors.Is(err, os.ErrNotExist):
			tb.Fatalf("read %s: %v", shared, err)
		}
	}
	var f struct {
		Cases []SignVector `json:"cases"`
	}
	if err := json.Unmarshal(signJSON, &f); err != nil {
		tb.Fatalf("parse the signature vectors: %v", err)
	}
	if len(f.Cases) < 6 {
		tb.Fatalf("only %d signature vectors", len(f.Cases))
	}
	return f.Cases
}
