package webhooksig

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSignVector: the signature is hex(hmac_sha256(secret, "<t>.<body>")),
// computed here independently (Python's hmac module).
func TestSignVector(t *testing.T) {
	got := Sign("whsec_test", time.Unix(1700000000, 999), []byte(`{"event_id":"1"}`))
	want := "t=1700000000,v1=fe60a799db49b94ac6d1666f9e0bcd5c1d47a0c4d40a642fbbe3f4b9dd74cb66"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	const secret = "whsec_0123456789abcdef"
	now := time.Unix(1700000000, 0)
	body := []byte(`{"event_id":"42","type":"ticket.used"}`)
	good := Sign(secret, now, body)
	other := Sign("whsec_other", now, body)
	v1 := func(h string) string { return h[strings.Index(h, "v1="):] }
	for _, c := range []struct {
		name      string
		secret    string
		header    string
		body      []byte
		tolerance time.Duration
		now       time.Time
		want      error
	}{
		{"valid", secret, good, body, 0, now, nil},
		{"valid, spaces after commas", secret, strings.ReplaceAll(good, ",", ", "), body, 0, now, nil},
		{"valid at the tolerance's edge (late)", secret, good, body, time.Minute, now.Add(time.Minute), nil},
		{"valid at the tolerance's edge (early clock)", secret, good, body, time.Minute, now.Add(-time.Minute), nil},
		{"valid, a second v1 (another secret) beside it", secret, good + "," + v1(other), body, 0, now, nil},
		{"valid, an unknown scheme beside v1", secret, good + ",v0=abc", body, 0, now, nil},
		{"default tolerance is 5 minutes", secret, good, body, 0, now.Add(5*time.Minute + time.Second), ErrTimestamp},
		{"too old", secret, good, body, time.Minute, now.Add(61 * time.Second), ErrTimestamp},
		{"from the future", secret, good, body, time.Minute, now.Add(-61 * time.Second), ErrTimestamp},
		{"body altered", secret, good, []byte(`{"event_id":"43","type":"ticket.used"}`), 0, now, ErrMismatch},
		{"body with a byte appended", secret, good, append(append([]byte{}, body...), ' '), 0, now, ErrMismatch},
		{"wrong secret", "whsec_other", good, body, 0, now, ErrMismatch},
		{"timestamp altered", secret, strings.Replace(good, "t=1700000000", "t=1700000001", 1), body, 0, now, ErrMismatch},
		{"empty header", secret, "", body, 0, now, ErrMalformed},
		{"no timestamp", secret, v1(good), body, 0, now, ErrMalformed},
		{"no signature", secret, "t=1700000000", body, 0, now, ErrMalformed},
		{"two timestamps", secret, "t=1700000000," + good, body, 0, now, ErrMalformed},
		{"timestamp not a number", secret, strings.Replace(good, "t=1700000000", "t=17e8", 1), body, 0, now, ErrMalformed},
		{"timestamp with a sign", secret, strings.Replace(good, "t=1700000000", "t=+1700000000", 1), body, 0, now, ErrMalformed},
		{"signature not hex", secret, "t=1700000000,v1=zz", body, 0, now, ErrMalformed},
		{"signature too short", secret, good[:len(good)-2], body, 0, now, ErrMalformed},
		{"a part without =", secret, good + ",junk", body, 0, now, ErrMalformed},
		{"header too long", secret, good + strings.Repeat(",x=y", 300), body, 0, now, ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.secret, c.header, c.body, c.tolerance, c.now)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}
