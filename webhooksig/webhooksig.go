// Package webhooksig signs webhook deliveries and verifies their signatures
// (SPEC §9): the header
//
//	X-Daodian-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, "<t>.<body>")>
//
// The deliverer signs with Sign; a receiver verifies with Verify (or the SDK's
// client.VerifyWebhook): the MAC over the timestamp and the exact bytes of the
// body proves the delivery came from a holder of the webhook's secret, and the
// timestamp, checked against the receiver's clock, bounds how long a captured
// delivery can be replayed. It has no dependency beyond the standard library,
// so that a receiver can copy it.
package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderSignature = "X-Daodian-Signature"
	HeaderEventID   = "X-Daodian-Event-Id"
	HeaderEventType = "X-Daodian-Event-Type"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock when Verify is given no tolerance: long enough for clock
// skew and a retry's queueing, short enough that a captured delivery is soon
// useless.
const DefaultTolerance = 5 * time.Minute

// maxHeaderLen bounds the header Verify parses: one timestamp and a few
// signatures.
const maxHeaderLen = 1024

// Errors of Verify.
var (
	// ErrMalformed is a header that is missing, too long, or without exactly
	// one t= and at least one v1=.
	ErrMalformed = errors.New("webhooksig: malformed signature header")
	// ErrTimestamp is a timestamp further from now than the tolerance.
	ErrTimestamp = errors.New("webhooksig: signature timestamp outside the tolerance")
	// ErrMismatch is no v1 signature matching the body under the secret.
	ErrMismatch = errors.New("webhooksig: no signature matches the body")
)

// Sign returns the signature header's value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery: header (the X-Daodian-Signature value) must carry
// a v1 signature of body under secret, with a timestamp within tolerance of
// now (tolerance ≤ 0: DefaultTolerance). Signatures are compared in constant
// time; keys other than t and v1 are ignored, so that a later scheme can be
// sent beside v1.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if header == "" || len(header) > maxHeaderLen {
		return ErrMalformed
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformed
		}
		switch k {
		case "t":
			if ts != "" || v == "" {
				return ErrMalformed
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrMalformed
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrMalformed
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec < 0 || ts != strconv.FormatInt(sec, 10) {
		return ErrMalformed
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	want := mac(secret, ts, body)
	// Every signature is compared, so that the time taken says nothing of
	// which one matched.
	matched := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			matched = true
		}
	}
	if !matched {
		return ErrMismatch
	}
	return nil
}
