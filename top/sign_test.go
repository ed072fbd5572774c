package top

import (
	"errors"
	"strings"
	"testing"

	"github.com/daodian/daodian/internal/spectest"
)

func TestSignVectors(t *testing.T) {
	methods := map[string]bool{}
	for _, c := range spectest.SignVectors(t) {
		t.Run(c.Name, func(t *testing.T) {
			methods[c.SignMethod] = true
			p := NewParams(c.Params)
			got, err := Sign(p, c.Secret, c.SignMethod)
			if err != nil || got != c.Sign {
				t.Fatalf("Sign = %q, %v; want %q", got, err, c.Sign)
			}
			got, err = SignMap(c.Params, c.Secret, c.SignMethod)
			if err != nil || got != c.Sign {
				t.Fatalf("SignMap = %q, %v; want %q", got, err, c.Sign)
			}
			if !VerifySign(p, c.Secret, c.SignMethod, c.Sign) {
				t.Fatal("VerifySign rejects the vector's sign")
			}
			if !VerifySign(p, c.Secret, c.SignMethod, strings.ToLower(c.Sign)) {
				t.Fatal("VerifySign rejects the lower-case sign")
			}
			if ref := referenceSign(c.Params, c.Secret, c.SignMethod); ref != c.Sign {
				t.Fatalf("reference signer = %q; the vector is %q", ref, c.Sign)
			}

			// The sign parameter itself is never signed.
			withSign := clone(c.Params)
			withSign["sign"] = c.Sign
			if got, _ := Sign(NewParams(withSign), c.Secret, c.SignMethod); got != c.Sign {
				t.Fatalf("Sign with a sign parameter = %q; want %q", got, c.Sign)
			}
			if !VerifySign(NewParams(withSign), c.Secret, c.SignMethod, c.Sign) {
				t.Fatal("VerifySign fails when the sign parameter is present")
			}

			for i := range c.Sign {
				for _, repl := range []byte{'0', 'F', 'f', 'G', 'x'} {
					if strings.EqualFold(string(repl), c.Sign[i:i+1]) {
						continue
					}
					bad := c.Sign[:i] + string(repl) + c.Sign[i+1:]
					if VerifySign(p, c.Secret, c.SignMethod, bad) {
						t.Fatalf("VerifySign accepts %q (position %d changed)", bad, i)
					}
				}
			}
			for _, bad := range []string{"", c.Sign[1:], c.Sign + "0", " " + c.Sign} {
				if VerifySign(p, c.Secret, c.SignMethod, bad) {
					t.Fatalf("VerifySign accepts %q", bad)
				}
			}
			if VerifySign(p, c.Secret+"x", c.SignMethod, c.Sign) {
				t.Fatal("VerifySign accepts the sign under another secret")
			}
			changed := clone(c.Params)
			changed["v"] += "0"
			if VerifySign(NewParams(changed), c.Secret, c.SignMethod, c.Sign) {
				t.Fatal("VerifySign accepts the sign of other parameters")
			}
		})
	}
	for _, m := range []string{SignMD5, SignHMAC, SignHMACSHA256} {
		if !methods[m] {
			t.Errorf("no vector for sign method %q", m)
		}
	}
}

func TestSignUnknownMethod(t *testing.T) {
	p := NewParams(map[string]string{"a": "1"})
	for _, m := range []string{"", "MD5", "sha256", "hmac-sha1", "hmac_sha256"} {
		if s, err := Sign(p, "k", m); !errors.Is(err, ErrUnknownSignMethod) || s != "" {
			t.Errorf("Sign(%q) = %q, %v; want ErrUnknownSignMethod", m, s, err)
		}
		if _, err := SignMap(map[string]string{"a": "1"}, "k", m); err == nil {
			t.Errorf("SignMap(%q) succeeded", m)
		}
		if VerifySign(p, "k", m, "") {
			t.Errorf("VerifySign(%q) accepted an empty sign", m)
		}
	}
}

func TestSignNilAndEmpty(t *testing.T) {
	for _, m := range []string{SignMD5, SignHMAC, SignHMACSHA256} {
		a, err := Sign(nil, "k", m)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Sign(NewParams(nil), "k", m)
		if a != b || a != referenceSign(nil, "k", m) {
			t.Errorf("%s: nil params %q, empty params %q", m, a, b)
		}
		if !VerifySign(nil, "k", m, a) {
			t.Errorf("%s: VerifySign(nil) rejects its own sign", m)
		}
	}
}

func TestSignLongSecretAndValues(t *testing.T) {
	// A secret longer than the hash block exercises HMAC's key hashing, and a value
	// larger than the pooled buffer limit exercises the unpooled path.
	secret := strings.Repeat("s", 200)
	m := map[string]string{"big": strings.Repeat("v", maxPooledSignBuf+1), "a": "1"}
	for _, method := range []string{SignMD5, SignHMAC, SignHMACSHA256} {
		got, err := SignMap(m, secret, method)
		if err != nil || got != referenceSign(m, secret, method) {
			t.Errorf("%s: got %q, %v", method, got, err)
		}
	}
}

// referenceSign is the straightforward reading of SPEC §3.3, kept apart from the
// optimised signer so that each checks the other.
func referenceSign(m map[string]string, secret, method string) string {
	return spectest.Sign(m, secret, method)
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
