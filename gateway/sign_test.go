package gateway_test

import (
	"testing"

	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/internal/spectest"
)

// TestEmptyValuedParametersSignedEitherWay (SPEC §3.3): the official Node and
// Python SDKs send empty-valued parameters and sign them as name+""; the
// gateway accepts that signature as well as the specified one (empties
// dropped), in the query or in the body, and nothing else.
func TestEmptyValuedParametersSignedEitherWay(t *testing.T) {
	e := stdEnv(t, envOpts{})
	for _, m := range []string{"md5", "hmac", "hmac-sha256"} {
		p := e.pubParams(alsc.MethodTimeGet, testKey)
		p["sign_method"] = m
		p["partner_id"] = ""
		p["session"] = ""
		kept := spectest.SignEmptiesKept(p, testSecret, m)
		dropped := spectest.Sign(p, testSecret, m)
		if kept == dropped {
			t.Fatal("the two forms coincide; the test proves nothing")
		}
		for _, sign := range []string{dropped, kept} {
			q := with(p, testSecret)
			q["sign"] = sign
			e.expectOK(e.get(q))
			e.expectOK(e.post(nil, q))
		}
		// The kept form of other parameters, or under another secret, is not.
		q := with(p, testSecret)
		q["sign"] = spectest.SignEmptiesKept(with(p, testSecret, "session", "x"), testSecret, m)
		e.expectError(e.get(q), want{code: 25})
		q["sign"] = spectest.SignEmptiesKept(p, "other", m)
		e.expectError(e.get(q), want{code: 25})
	}
}
