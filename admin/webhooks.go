package admin

import (
	"math"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/top"
)

// Webhook is a webhook as `daodian webhook list` shows it: never its secret,
// which is shown once, when the webhook is added.
type Webhook struct {
	WebhookID  string `json:"webhook_id"`
	MerchantID string `json:"merchant_id"`
	URL        string `json:"url"`
	// Types are the event types delivered; [] for every type.
	Types     []string `json:"types"`
	CreatedAt string   `json:"created_at"`
	// Cursor is the last event_id the webhook is done with (delivered or
	// failed); "" before its first.
	Cursor string `json:"cursor"`
	// Retrying is the event held back by failed attempts, if any.
	Retrying *Retrying `json:"retrying,omitempty"`
}

// Retrying is the state of an event whose attempts have failed so far.
type Retrying struct {
	EventID        string `json:"event_id"`
	Attempts       int    `json:"attempts"`
	FirstAttemptAt string `json:"first_attempt_at"`
	NextAttemptAt  string `json:"next_attempt_at"`
}

// WebhookOf renders a webhook.
func WebhookOf(w *daodian.Webhook) Webhook {
	out := Webhook{WebhookID: w.ID, MerchantID: w.MerchantID, URL: w.URL, Types: []string{}, CreatedAt: top.FormatTime(w.CreatedAt), Cursor: w.Cursor}
	for _, t := range w.Types {
		out.Types = append(out.Types, string(t))
	}
	if h := w.Head; h.EventID != "" && daodian.IDAfter(h.EventID, w.Cursor) {
		out.Retrying = &Retrying{EventID: h.EventID, Attempts: h.Attempts, FirstAttemptAt: top.FormatTime(h.FirstAt), NextAttemptAt: top.FormatTime(h.NextAt)}
	}
	return out
}

// DeliveryAttempt is one attempt of a delivery as `daodian webhook
// deliveries` shows it. At is yyyy-MM-dd HH:mm:ss in GMT+8.
type DeliveryAttempt struct {
	AttemptID  string  `json:"attempt_id"`
	EventID    string  `json:"event_id"`
	Type       string  `json:"type"`
	Attempt    int     `json:"attempt"`
	At         string  `json:"at"`
	Outcome    string  `json:"outcome"`
	HTTPStatus int     `json:"http_status"`
	LatencyMS  float64 `json:"latency_ms"`
	Error      string  `json:"error"`
	Redelivery bool    `json:"redelivery"`
}

// DeliveryAttemptOf renders an attempt.
func DeliveryAttemptOf(a *daodian.DeliveryAttempt) DeliveryAttempt {
	return DeliveryAttempt{
		AttemptID: a.ID, EventID: a.EventID, Type: string(a.EventType), Attempt: a.Attempt, At: top.FormatTime(a.At),
		Outcome: string(a.Outcome), HTTPStatus: a.HTTPStatus, LatencyMS: math.Round(float64(a.Latency.Microseconds())) / 1000,
		Error: a.Error, Redelivery: a.Redelivery,
	}
}
