package daodian

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhooks (SPEC §9): endpoints that serve POSTs each event of a merchant to,
// signed with the webhook's secret. The events are the records (events.go);
// a webhook keeps its own cursor, the last event_id it has finished with
// (delivered, or given up on), and is delivered the next matching records in
// record_id order by the deliverer of package webhook. Its delivery state and
// the attempts live in tables of their own, written by the deliverer in
// batches, never by the ledger's operations.

// Bounds of webhooks.
const (
	// MaxWebhooks bounds the webhooks of a store: AddWebhook refuses more, and
	// a deliverer holds at most this many windows of events in memory.
	MaxWebhooks = 256
	// MaxWebhookURLLen bounds a webhook's URL.
	MaxWebhookURLLen = 2048
	// MaxRedeliveries bounds the redeliveries waiting in a store.
	MaxRedeliveries = 1000
	// DefaultAttemptsPage and MaxAttemptsPage are the default and the largest
	// number of delivery attempts one listing returns.
	DefaultAttemptsPage = 50
	MaxAttemptsPage     = 1000
	// MaxAttemptError bounds the error text kept with an attempt.
	MaxAttemptError = 256
	// webhookSecretBytes is the entropy of a webhook secret (256 bits).
	webhookSecretBytes = 32
)

// WebhookSecretPrefix starts every webhook secret, so that one is recognised
// for what it is wherever it is pasted (and told apart from an app secret).
const WebhookSecretPrefix = "whsec_"

// The delivery schedule of SPEC §9.
const (
	// DeliveryTimeout bounds one delivery attempt: connecting, sending the
	// event and receiving the answer's status and first bytes.
	DeliveryTimeout = 10 * time.Second
	// RetryFirstDelay is the wait before the first retry; each retry waits
	// twice as long as the one before, up to RetryMaxDelay.
	RetryFirstDelay = time.Second
	RetryMaxDelay   = time.Hour
	// RetryFor is how long an event is retried after its first attempt; the
	// attempt that fails past it marks the event failed.
	RetryFor = 24 * time.Hour
)

// RetryDelay is the wait before retry number n (1 for the first retry) with
// jitter in [0, 1): between half and all of min(RetryFirstDelay·2ⁿ⁻¹,
// RetryMaxDelay). The jitter spreads the retries of the webhooks that failed
// together (a receiver that was down for all of them) so that they do not all
// come back at once.
func RetryDelay(n int, jitter float64) time.Duration {
	base := RetryMaxDelay
	if n < 1 {
		n = 1
	}
	if n <= 13 { // 2^12 s > 1 h
		base = min(RetryFirstDelay<<(n-1), RetryMaxDelay)
	}
	if !(jitter >= 0) { // NaN too
		jitter = 0
	}
	jitter = min(jitter, 1)
	return base - time.Duration(jitter*float64(base/2))
}

// NextAttempt decides what follows a failed attempt at failedAt of an event
// first attempted at first, which was retry number n−1 (n counts the retries,
// so the attempt that failed was the n-th one): the time of the next attempt,
// or giveUp once RetryFor has passed since the first attempt. The last retry
// is brought forward to the end of RetryFor, so that an event is never
// abandoned without an attempt at that moment.
func NextAttempt(first, failedAt time.Time, n int, jitter float64) (next time.Time, giveUp bool) {
	deadline := first.Add(RetryFor)
	if !failedAt.Before(deadline) {
		return time.Time{}, true
	}
	next = failedAt.Add(RetryDelay(n, jitter))
	if next.After(deadline) {
		next = deadline
	}
	return next, false
}

// Webhook is an endpoint that receives a merchant's events.
type Webhook struct {
	// ID is a fresh 19-digit identifier.
	ID         string
	MerchantID string
	// URL is http or https, without user information.
	URL string
	// Types are the event types delivered; empty means every type.
	Types []EventType
	// Secret signs the deliveries (X-Daodian-Signature). Plain in memory only:
	// stores keep it sealed, as app secrets.
	Secret    string
	CreatedAt time.Time
	// Cursor is the last event_id the webhook has finished with: every
	// matching event up to it was delivered or marked failed. A new webhook's
	// cursor is the last event_id committed when it was added: it receives
	// the events committed after.
	Cursor string
	// Head is the retry state of the event being delivered, when an attempt
	// of it has failed.
	Head HeadState
}

// HeadState is the retry state of the first event after a webhook's cursor.
type HeadState struct {
	// EventID is the event being retried; "" when no attempt has failed.
	EventID string
	// Attempts is the number of attempts made (all failed).
	Attempts int
	// FirstAt is the time of the first attempt, NextAt of the next one.
	FirstAt, NextAt time.Time
}

// Wants reports whether the webhook receives events of type t.
func (w *Webhook) Wants(t EventType) bool {
	if len(w.Types) == 0 {
		return true
	}
	for _, x := range w.Types {
		if x == t {
			return true
		}
	}
	return false
}

// TypesText is the webhook's types as stores keep them: comma-separated, ""
// for every type. TypesFromText reads them back.
func (w *Webhook) TypesText() string {
	names := make([]string, len(w.Types))
	for i, t := range w.Types {
		names[i] = string(t)
	}
	return strings.Join(names, ",")
}

// TypesFromText sets the webhook's types from their stored text.
func (w *Webhook) TypesFromText(s string) {
	w.Types = nil
	if s == "" {
		return
	}
	for _, t := range strings.Split(s, ",") {
		w.Types = append(w.Types, EventType(t))
	}
}

// Kinds returns the kinds of record whose events the webhook receives; nil
// means every kind.
func (w *Webhook) Kinds() []RecordKind {
	if len(w.Types) == 0 {
		return nil
	}
	out := make([]RecordKind, len(w.Types))
	for i, t := range w.Types {
		out[i] = t.Kind()
	}
	return out
}

// DeliveryOutcome is what an attempt led to.
type DeliveryOutcome string

// The outcomes of an attempt.
const (
	// Delivered: the receiver answered 2xx within DeliveryTimeout.
	Delivered DeliveryOutcome = "delivered"
	// Retrying: the attempt failed and the event will be tried again.
	Retrying DeliveryOutcome = "retry"
	// Failed: the attempt failed RetryFor after the first; the event is
	// marked failed and the webhook goes on with the next one.
	Failed DeliveryOutcome = "failed"
)

// DeliveryAttempt is one POST of an event to a webhook.
type DeliveryAttempt struct {
	// ID is assigned by the store, increasing.
	ID        string
	WebhookID string
	EventID   string
	EventType EventType
	// Attempt numbers the attempts of this delivery of the event, from 1.
	Attempt int
	At      time.Time
	// HTTPStatus is the receiver's status code; 0 when none arrived.
	HTTPStatus int
	Latency    time.Duration
	// Error says why the attempt failed (at most MaxAttemptError bytes); ""
	// when delivered.
	Error   string
	Outcome DeliveryOutcome
	// Redelivery is set on the attempts of a redelivery (Ledger.Redeliver).
	Redelivery bool
}

// Redelivery is an event queued to be sent again to a webhook.
type Redelivery struct {
	WebhookID   string
	EventID     string
	RequestedAt time.Time
}

// DeliveryUpdate is what a deliverer writes about one webhook in one batch.
type DeliveryUpdate struct {
	WebhookID string
	// Cursor, if not "", moves the webhook's cursor forward to it (never back).
	Cursor string
	// Head, if not nil, replaces the head state, unless the stored cursor has
	// already passed Head.EventID (a deliverer that has lost its lease).
	Head *HeadState
	// Attempts are appended.
	Attempts []DeliveryAttempt
	// Redelivered are event ids whose redelivery is done (delivered or
	// failed): their Redelivery rows are deleted.
	Redelivered []string
}

// AttemptQuery selects a webhook's attempts, newest first.
type AttemptQuery struct {
	WebhookID string
	// FailedOnly keeps the attempts that marked their event failed.
	FailedOnly bool
	// BeforeID, if not "", keeps the attempts older than that one.
	BeforeID string
	// Limit is the most attempts returned, 1 to MaxAttemptsPage.
	Limit int
}

// WebhookReader reads webhooks and their deliveries; part of ReadTx.
type WebhookReader interface {
	// Webhooks returns every webhook in id order (at most MaxWebhooks), with
	// its secret in plain text.
	Webhooks(ctx context.Context) ([]Webhook, error)
	// Webhook returns a webhook, or ErrNotFound.
	Webhook(ctx context.Context, id string) (*Webhook, error)
	// Redeliveries returns the redeliveries waiting, oldest request first (at
	// most MaxRedeliveries).
	Redeliveries(ctx context.Context) ([]Redelivery, error)
	// DeliveryAttempts returns attempts of a webhook matching q, newest first.
	DeliveryAttempts(ctx context.Context, q AttemptQuery) ([]DeliveryAttempt, error)
	// RecordByID returns the record with a record_id, or ErrNotFound (also
	// for a record a RecordSequencer has not numbered yet).
	RecordByID(ctx context.Context, id string) (*Record, error)
	// LastRecordID returns the highest record_id, "" when there is none.
	LastRecordID(ctx context.Context) (string, error)
}

// WebhookWriter writes webhooks and their deliveries; part of Tx.
type WebhookWriter interface {
	// InsertWebhook stores a new webhook; ErrDuplicate on a repeated id.
	InsertWebhook(ctx context.Context, w *Webhook) error
	// DeleteWebhook deletes a webhook with its attempts and redeliveries;
	// ErrNotFound if there is no such webhook.
	DeleteWebhook(ctx context.Context, id string) error
	// PutRedelivery queues a redelivery, replacing one of the same webhook
	// and event.
	PutRedelivery(ctx context.Context, r *Redelivery) error
	// SaveDelivery applies u; it reports false, writing nothing, when the
	// webhook no longer exists.
	SaveDelivery(ctx context.Context, u *DeliveryUpdate) (bool, error)
	// PruneAttempts deletes the attempts of a webhook beyond its keep newest
	// that did not mark an event failed, and those that did from before
	// failedBefore; it returns how many it deleted.
	PruneAttempts(ctx context.Context, webhookID string, keep int, failedBefore time.Time) (int, error)
}

// WebhookLeaser is implemented by a store that several processes serve at
// once (PostgreSQL): each webhook is delivered by one process at a time, the
// one holding its lease, and a lease held by a process that dies is free
// again at once.
type WebhookLeaser interface {
	WebhookLeases(ctx context.Context) (WebhookLeases, error)
}

// WebhookLeases are one process's leases on webhooks. Safe for concurrent use.
type WebhookLeases interface {
	// Acquire takes the lease of a webhook if no one holds it; it reports
	// whether this process holds it now.
	Acquire(ctx context.Context, webhookID string) (bool, error)
	// Release gives a lease up.
	Release(ctx context.Context, webhookID string) error
	// Lost is closed when every lease is lost at once (the session holding
	// them ended): the holder must stop delivering and take new leases.
	Lost() <-chan struct{}
	// Close releases every lease.
	Close() error
}

// IDAfter reports whether the decimal id a is after b; "" is before every id.
// Ids of one kind have no leading zeros, so the longer is the larger.
func IDAfter(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// WebhookSpec describes a webhook to add.
type WebhookSpec struct {
	MerchantID string
	URL        string
	// Types are the event types to deliver; empty means every type.
	Types []EventType
}

// CheckWebhookURL checks a webhook URL: absolute http or https, with a host,
// no user information (a password in a URL ends up printed and logged; the
// signature is how a receiver authenticates daodian), no fragment, printable
// ASCII, at most MaxWebhookURLLen bytes. Where it may point is decided at
// delivery time, on the address actually dialled (package webhook).
func CheckWebhookURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, invalid("url", "must not be empty")
	}
	if len(raw) > MaxWebhookURLLen {
		return nil, invalid("url", "is longer than "+strconv.Itoa(MaxWebhookURLLen))
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f {
			return nil, invalid("url", "must be printable ASCII without spaces (percent-encode the rest)")
		}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, invalid("url", "does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, invalid("url", "must be http:// or https://")
	case u.User != nil:
		return nil, invalid("url", "must not hold a user or password (receivers authenticate deliveries by their signature)")
	case u.Host == "" || u.Hostname() == "":
		return nil, invalid("url", "must name a host")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, invalid("url", "must not have a #fragment")
	case u.Opaque != "":
		return nil, invalid("url", "must be of the form scheme://host/path")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, invalid("url", "has a port outside 1–65535")
		}
	}
	if h := u.Hostname(); strings.Contains(h, ":") {
		if _, err := netip.ParseAddr(h); err != nil {
			return nil, invalid("url", "has a host that is not a valid IPv6 address")
		}
	}
	return u, nil
}

// newWebhookSecret returns a fresh secret: WebhookSecretPrefix and 256 random
// bits in hex.
func newWebhookSecret() (string, error) {
	b := make([]byte, webhookSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return WebhookSecretPrefix + hex.EncodeToString(b), nil
}

// ErrTooManyWebhooks is returned by AddWebhook when the store holds
// MaxWebhooks webhooks.
var ErrTooManyWebhooks = fmt.Errorf("too many webhooks (at most %d): remove some first", MaxWebhooks)

// AddWebhook registers a webhook for a merchant that exists and returns it
// with its secret, which is shown to the caller once and stored sealed. It
// receives the events committed after it was added: its cursor starts at the
// last event_id committed.
func (l *Ledger) AddWebhook(ctx context.Context, spec WebhookSpec) (*Webhook, error) {
	if err := checkText("merchant", spec.MerchantID, true, MaxNameLen); err != nil {
		return nil, err
	}
	u, err := CheckWebhookURL(spec.URL)
	if err != nil {
		return nil, err
	}
	types, err := normalizeEventTypes(spec.Types)
	if err != nil {
		return nil, err
	}
	secret, err := newWebhookSecret()
	if err != nil {
		return nil, err
	}
	if err := l.sequenceRecords(ctx); err != nil {
		return nil, err
	}
	w := &Webhook{MerchantID: spec.MerchantID, URL: u.String(), Types: types, Secret: secret, CreatedAt: l.cfg.Clock().UTC()}
	err = l.store.Update(ctx, func(tx Tx) error {
		if _, err := tx.Merchant(ctx, spec.MerchantID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return fmt.Errorf("merchant %q: %w", spec.MerchantID, ErrNotFound)
			}
			return err
		}
		all, err := tx.Webhooks(ctx)
		if err != nil {
			return err
		}
		if len(all) >= MaxWebhooks {
			return ErrTooManyWebhooks
		}
		if w.Cursor, err = tx.LastRecordID(ctx); err != nil {
			return err
		}
		if w.ID, err = tx.NewID(ctx); err != nil {
			return err
		}
		return tx.InsertWebhook(ctx, w)
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Webhooks returns the webhooks of a merchant, or of every merchant for "",
// in id order, each without its secret.
func (l *Ledger) Webhooks(ctx context.Context, merchantID string) ([]Webhook, error) {
	if err := checkText("merchant", merchantID, false, MaxNameLen); err != nil {
		return nil, err
	}
	var out []Webhook
	err := l.store.View(ctx, func(tx ReadTx) error {
		all, err := tx.Webhooks(ctx)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, w := range all {
			if merchantID == "" || w.MerchantID == merchantID {
				w.Secret = ""
				out = append(out, w)
			}
		}
		return nil
	})
	return out, err
}

// Webhook returns a webhook without its secret, or ErrNotFound.
func (l *Ledger) Webhook(ctx context.Context, id string) (*Webhook, error) {
	if err := checkDigits("webhook", id, true); err != nil {
		return nil, err
	}
	var w *Webhook
	err := l.store.View(ctx, func(tx ReadTx) error {
		var err error
		w, err = tx.Webhook(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	w.Secret = ""
	return w, nil
}

// RemoveWebhook deletes a webhook, its delivery attempts and its pending
// redeliveries; ErrNotFound if there is none. A deliverer stops delivering to
// it at its next look at the webhooks (package webhook: within a second).
func (l *Ledger) RemoveWebhook(ctx context.Context, id string) error {
	if err := checkDigits("webhook", id, true); err != nil {
		return err
	}
	return l.store.Update(ctx, func(tx Tx) error { return tx.DeleteWebhook(ctx, id) })
}

// DeliveryAttempts returns a webhook's attempts matching q, newest first
// (q.Limit 0: DefaultAttemptsPage); ErrNotFound if there is no such webhook.
func (l *Ledger) DeliveryAttempts(ctx context.Context, q AttemptQuery) ([]DeliveryAttempt, error) {
	if err := checkDigits("webhook", q.WebhookID, true); err != nil {
		return nil, err
	}
	if err := checkDigits("before", q.BeforeID, false); err != nil {
		return nil, err
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultAttemptsPage
	case q.Limit < 1 || q.Limit > MaxAttemptsPage:
		return nil, invalid("limit", "must be between 1 and "+strconv.Itoa(MaxAttemptsPage))
	}
	var out []DeliveryAttempt
	err := l.store.View(ctx, func(tx ReadTx) error {
		if _, err := tx.Webhook(ctx, q.WebhookID); err != nil {
			return err
		}
		var err error
		out, err = tx.DeliveryAttempts(ctx, q)
		return err
	})
	return out, err
}

// NotFoundError is the ErrNotFound of something named by its id (a webhook,
// an event), so that a caller can say which of the things it named is
// missing.
type NotFoundError struct {
	// What is named: "webhook", "event".
	What string
	ID   string
}

func (e *NotFoundError) Error() string { return e.What + " " + e.ID + ": not found" }

// Unwrap makes errors.Is(err, ErrNotFound) hold.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// WebhookStatus is a webhook and the oldest event it has yet to deliver.
type WebhookStatus struct {
	Webhook
	// Pending is the oldest event after the webhook's cursor of a type it
	// receives — the one being delivered or retried — or nil when the webhook
	// is up to date.
	Pending *Record
}

// WebhookStatuses returns the webhooks of a merchant (of every merchant for
// ""), or only webhookID when it is set (ErrNotFound when there is no such
// webhook of the merchant), in id order, without their secrets, each with its
// oldest pending event. It is read from the store, so it tells what every
// server of the store has delivered, not one deliverer's view; one snapshot,
// one read of at most one record per webhook (at most MaxWebhooks), through
// the index a webhook's own deliveries read by (merchant, record_id).
func (l *Ledger) WebhookStatuses(ctx context.Context, merchantID, webhookID string) ([]WebhookStatus, error) {
	if err := checkText("merchant", merchantID, false, MaxNameLen); err != nil {
		return nil, err
	}
	if err := checkDigits("webhook", webhookID, false); err != nil {
		return nil, err
	}
	if err := l.sequenceRecords(ctx); err != nil {
		return nil, err
	}
	var out []WebhookStatus
	err := l.store.View(ctx, func(tx ReadTx) error {
		out = out[:0]
		all, err := tx.Webhooks(ctx)
		if err != nil {
			return err
		}
		for _, w := range all {
			if (merchantID != "" && w.MerchantID != merchantID) || (webhookID != "" && w.ID != webhookID) {
				continue
			}
			w.Secret = ""
			st := WebhookStatus{Webhook: w}
			recs, err := tx.Records(ctx, RecordQuery{MerchantID: w.MerchantID, Kinds: w.Kinds(), AfterID: w.Cursor, Limit: 1})
			if err != nil {
				return err
			}
			if len(recs) > 0 {
				st.Pending = &recs[0]
			}
			out = append(out, st)
		}
		if webhookID != "" && len(out) == 0 {
			return &NotFoundError{What: "webhook", ID: webhookID}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ErrNotRedeliverable is returned by Redeliver for an event that no webhook
// named (or, without one named, no webhook of the event's merchant) can be
// sent again; the error says why.
var ErrNotRedeliverable = errors.New("cannot redeliver")

// Redeliver queues an event to be sent again: to the webhook named, or, for
// webhookID "", to every webhook of the event's merchant that receives its
// type and has already gone past it. An event the webhook has not reached yet
// is delivered in turn, so it is not queued again. It returns the webhooks it
// queued the event for. The event must exist (ErrNotFound).
func (l *Ledger) Redeliver(ctx context.Context, eventID, webhookID string) ([]string, error) {
	return l.RedeliverFor(ctx, "", eventID, webhookID)
}

// RedeliverFor is Redeliver on behalf of someone who sees one merchant only
// ("" for every merchant): an event or a webhook of another merchant is
// refused exactly like one that does not exist (NotFoundError), so that
// naming one never reveals that it exists.
func (l *Ledger) RedeliverFor(ctx context.Context, merchantID, eventID, webhookID string) ([]string, error) {
	if err := checkDigits("event", eventID, true); err != nil {
		return nil, err
	}
	if err := checkDigits("webhook", webhookID, false); err != nil {
		return nil, err
	}
	if err := l.sequenceRecords(ctx); err != nil {
		return nil, err
	}
	now := l.cfg.Clock().UTC()
	var queued []string
	err := l.store.Update(ctx, func(tx Tx) error {
		queued = queued[:0]
		r, err := tx.RecordByID(ctx, eventID)
		if errors.Is(err, ErrNotFound) || (err == nil && merchantID != "" && r.MerchantID != merchantID) {
			return &NotFoundError{What: "event", ID: eventID}
		}
		if err != nil {
			return err
		}
		typ := EventTypeOf(r.Kind)
		var targets []Webhook
		if webhookID != "" {
			w, err := tx.Webhook(ctx, webhookID)
			if errors.Is(err, ErrNotFound) || (err == nil && merchantID != "" && w.MerchantID != merchantID) {
				return &NotFoundError{What: "webhook", ID: webhookID}
			}
			if err != nil {
				return err
			}
			switch {
			case w.MerchantID != r.MerchantID:
				return fmt.Errorf("%w: event %s is of merchant %q, webhook %s of merchant %q", ErrNotRedeliverable, eventID, r.MerchantID, w.ID, w.MerchantID)
			case !w.Wants(typ):
				return fmt.Errorf("%w: webhook %s does not receive %s events", ErrNotRedeliverable, w.ID, typ)
			case IDAfter(eventID, w.Cursor):
				return fmt.Errorf("%w: webhook %s has not reached event %s yet (its cursor is at %s); it will be delivered in turn", ErrNotRedeliverable, w.ID, eventID, cursorText(w.Cursor))
			}
			targets = append(targets, *w)
		} else {
			all, err := tx.Webhooks(ctx)
			if err != nil {
				return err
			}
			for _, w := range all {
				if w.MerchantID == r.MerchantID && w.Wants(typ) && !IDAfter(eventID, w.Cursor) {
					targets = append(targets, w)
				}
			}
			if len(targets) == 0 {
				return fmt.Errorf("%w: no webhook of merchant %q that receives %s events has gone past event %s", ErrNotRedeliverable, r.MerchantID, typ, eventID)
			}
		}
		pending, err := tx.Redeliveries(ctx)
		if err != nil {
			return err
		}
		if len(pending)+len(targets) > MaxRedeliveries {
			return fmt.Errorf("%w: %d redeliveries are waiting already (at most %d)", ErrNotRedeliverable, len(pending), MaxRedeliveries)
		}
		for _, w := range targets {
			if err := tx.PutRedelivery(ctx, &Redelivery{WebhookID: w.ID, EventID: eventID, RequestedAt: now}); err != nil {
				return err
			}
			queued = append(queued, w.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return queued, nil
}

func cursorText(c string) string {
	if c == "" {
		return "the start"
	}
	return c
}
