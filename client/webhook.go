package client

import (
	"time"

	"github.com/daodian/daodian/webhooksig"
)

// Webhook deliveries (SPEC §9). daodian POSTs each event to a webhook's URL
// with the event as a JSON body and the headers X-Daodian-Event-Id,
// X-Daodian-Event-Type and X-Daodian-Signature. A receiver must check the
// signature before trusting a delivery (anyone can POST to a URL), and must
// dedupe on event_id: delivery is at least once.

// The errors of VerifyWebhook.
var (
	// ErrWebhookMalformed is a missing or malformed X-Daodian-Signature.
	ErrWebhookMalformed = webhooksig.ErrMalformed
	// ErrWebhookTimestamp is a signature whose timestamp is further from now
	// than the tolerance: a stale delivery, perhaps a replayed one, or a
	// clock off by that much.
	ErrWebhookTimestamp = webhooksig.ErrTimestamp
	// ErrWebhookSignature is a signature that does not match the body under
	// the secret: the delivery is not from daodian, or was altered.
	ErrWebhookSignature = webhooksig.ErrMismatch
)

// VerifyWebhook checks a delivery: header is the X-Daodian-Signature value,
// body the exact bytes received (before any JSON decoding), secret the
// webhook's (whsec_…, shown by `daodian webhook add`). The signature must match
// and its timestamp be within tolerance of now (tolerance ≤ 0: 5 minutes).
// Signatures are compared in constant time.
func VerifyWebhook(secret string, header string, body []byte, tolerance time.Duration, now time.Time) error {
	return webhooksig.Verify(secret, header, body, tolerance, now)
}
