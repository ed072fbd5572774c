package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"time"

	"github.com/daodian/daodian"
)

// Webhooks (daodian/webhooks.go). Their events are the records; these tables
// are read by the deliverer every few hundred milliseconds and written by it in
// one Update per batch of results (package webhook), and by the webhook
// commands: rare next to the ledger's statements, so they are prepared for each
// use, like the fault rules'.

const (
	webhookCols   = `id, merchant_id, url, types, secret, created_at, cursor, head_event, head_attempts, head_first_at, head_next_at`
	attemptFields = `webhook_id, event_id, event_type, attempt, at, http_status, latency_us, error, outcome, redelivery`
	attemptCols   = `id, ` + attemptFields

	sqlInsertWebhook = `INSERT INTO webhooks (` + webhookCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlWebhook       = `SELECT ` + webhookCols + ` FROM webhooks WHERE id = ?`
	// max() keeps the cursor from going back: a deliverer's late batch (one
	// that lost its lease, on a store with leases) never undoes another's.
	sqlAdvanceCursor = `UPDATE webhooks SET cursor = max(cursor, ?) WHERE id = ?`
	// A head state is kept unless the cursor has already gone past its event.
	sqlSetHead = `UPDATE webhooks SET head_event = ?, head_attempts = ?, head_first_at = ?, head_next_at = ?
		WHERE id = ? AND (? = 0 OR ? > cursor)`
	sqlInsertAttempt = `INSERT INTO webhook_attempts (` + attemptFields + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlAttempts      = `SELECT ` + attemptCols + ` FROM webhook_attempts INDEXED BY webhook_attempts_webhook
		WHERE webhook_id = ? AND (? = 0 OR id < ?) AND (? = 0 OR outcome = 'failed') ORDER BY id DESC LIMIT ?`
	sqlPutRedelivery = `INSERT INTO webhook_redeliveries (webhook_id, event_id, requested_at) VALUES (?, ?, ?)
		ON CONFLICT (webhook_id, event_id) DO UPDATE SET requested_at = excluded.requested_at`
	sqlDoneRedelivery = `DELETE FROM webhook_redeliveries WHERE webhook_id = ? AND event_id = ?`
	// The attempts that did not fail an event, beyond the keep newest: those
	// below the keep-th newest one's id.
	sqlPruneAttempts = `DELETE FROM webhook_attempts WHERE webhook_id = ? AND outcome <> 'failed' AND id < coalesce(
		(SELECT id FROM webhook_attempts INDEXED BY webhook_attempts_webhook WHERE webhook_id = ? AND outcome <> 'failed'
			ORDER BY id DESC LIMIT 1 OFFSET ?), 0)`
	sqlPruneFailed   = `DELETE FROM webhook_attempts WHERE webhook_id = ? AND outcome = 'failed' AND at < ?`
	sqlRecordByID    = `SELECT ` + recordCols + ` FROM records WHERE id = ?`
	sqlLastRecordID  = `SELECT coalesce(max(id), 0) FROM records`
	nWebhookCols     = 11
	nAttemptCols     = 11
	sqlRedeliverySel = `SELECT webhook_id, event_id, requested_at FROM webhook_redeliveries`
)

var (
	sqlWebhooks     = `SELECT ` + webhookCols + ` FROM webhooks ORDER BY id LIMIT ` + strconv.Itoa(daodian.MaxWebhooks)
	sqlRedeliveries = sqlRedeliverySel + ` ORDER BY requested_at, webhook_id, event_id LIMIT ` + strconv.Itoa(daodian.MaxRedeliveries)
)

func (t *readTx) decodeWebhook(row []driver.Value) (daodian.Webhook, error) {
	w := daodian.Webhook{
		ID: asStr(row[0]), MerchantID: asStr(row[1]), URL: asStr(row[2]), Secret: asStr(row[4]),
		CreatedAt: fromMicros(asInt(row[5])), Cursor: daodian.EventIDOf(asInt(row[6])),
		Head: daodian.HeadState{
			EventID: daodian.EventIDOf(asInt(row[7])), Attempts: int(asInt(row[8])),
			FirstAt: fromMicros(asInt(row[9])), NextAt: fromMicros(asInt(row[10])),
		},
	}
	w.TypesFromText(asStr(row[3]))
	if err := t.s.key.OpenWebhook(&w); err != nil {
		return w, fmt.Errorf("sqlite: %w", err)
	}
	return w, nil
}

func (t *readTx) Webhooks(ctx context.Context) ([]daodian.Webhook, error) {
	var out []daodian.Webhook
	err := t.queryEach(ctx, sqlWebhooks, nWebhookCols, func(row []driver.Value) error {
		w, err := t.decodeWebhook(row)
		if err != nil {
			return &walkError{err}
		}
		out = append(out, w)
		return nil
	})
	return out, err
}

func (t *readTx) Webhook(ctx context.Context, id string) (*daodian.Webhook, error) {
	var w *daodian.Webhook
	err := t.queryEach(ctx, sqlWebhook, nWebhookCols, func(row []driver.Value) error {
		x, err := t.decodeWebhook(row)
		if err != nil {
			return &walkError{err}
		}
		w = &x
		return nil
	}, id)
	if err == nil && w == nil {
		err = daodian.ErrNotFound
	}
	return w, err
}

func (t *readTx) Redeliveries(ctx context.Context) ([]daodian.Redelivery, error) {
	var out []daodian.Redelivery
	err := t.queryEach(ctx, sqlRedeliveries, 3, func(row []driver.Value) error {
		out = append(out, daodian.Redelivery{WebhookID: asStr(row[0]), EventID: daodian.EventIDOf(asInt(row[1])), RequestedAt: fromMicros(asInt(row[2]))})
		return nil
	})
	return out, err
}

func (t *readTx) DeliveryAttempts(ctx context.Context, q daodian.AttemptQuery) ([]daodian.DeliveryAttempt, error) {
	if q.Limit < 1 || q.Limit > daodian.MaxAttemptsPage {
		return nil, fmt.Errorf("sqlite: attempts limit %d out of range", q.Limit)
	}
	before, err := daodian.EventNumber(q.BeforeID)
	if err != nil {
		return nil, err
	}
	failed := int64(0)
	if q.FailedOnly {
		failed = 1
	}
	var out []daodian.DeliveryAttempt
	err = t.queryEach(ctx, sqlAttempts, nAttemptCols, func(row []driver.Value) error {
		out = append(out, daodian.DeliveryAttempt{
			ID: strconv.FormatInt(asInt(row[0]), 10), WebhookID: asStr(row[1]), EventID: daodian.EventIDOf(asInt(row[2])),
			EventType: daodian.EventType(asStr(row[3])), Attempt: int(asInt(row[4])), At: fromMicros(asInt(row[5])),
			HTTPStatus: int(asInt(row[6])), Latency: time.Duration(asInt(row[7])) * time.Microsecond, Error: asStr(row[8]),
			Outcome: daodian.DeliveryOutcome(asStr(row[9])), Redelivery: asInt(row[10]) != 0,
		})
		return nil
	}, q.WebhookID, before, before, failed, int64(q.Limit))
	return out, err
}

func (t *readTx) RecordByID(ctx context.Context, id string) (*daodian.Record, error) {
	v, err := daodian.EventNumber(id)
	if err != nil {
		return nil, daodian.ErrNotFound // not an id this store hands out
	}
	var r *daodian.Record
	err = t.queryEach(ctx, sqlRecordByID, nRecordCols, func(row []driver.Value) error {
		x := decodeRecord(row)
		r = &x
		return nil
	}, v)
	if err == nil && r == nil {
		err = daodian.ErrNotFound
	}
	return r, err
}

func (t *readTx) LastRecordID(ctx context.Context) (string, error) {
	var last int64
	err := t.queryEach(ctx, sqlLastRecordID, 1, func(row []driver.Value) error {
		last = asInt(row[0])
		return nil
	})
	return daodian.EventIDOf(last), err
}

func (t *writeTx) InsertWebhook(ctx context.Context, w *daodian.Webhook) error {
	cursor, err := daodian.EventNumber(w.Cursor)
	if err != nil {
		return err
	}
	head, err := daodian.EventNumber(w.Head.EventID)
	if err != nil {
		return err
	}
	_, err = t.execOnce(sqlInsertWebhook, "webhook", w.ID, w.ID, w.MerchantID, w.URL, w.TypesText(), t.s.key.SealWebhook(w),
		micros(w.CreatedAt), cursor, head, int64(w.Head.Attempts), micros(w.Head.FirstAt), micros(w.Head.NextAt))
	return err
}

func (t *writeTx) DeleteWebhook(ctx context.Context, id string) error {
	n, err := t.execOnce(`DELETE FROM webhooks WHERE id = ?`, "webhook", id, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return daodian.ErrNotFound
	}
	for _, q := range []string{`DELETE FROM webhook_attempts WHERE webhook_id = ?`, `DELETE FROM webhook_redeliveries WHERE webhook_id = ?`} {
		if _, err := t.execOnce(q, "webhook", id, id); err != nil {
			return err
		}
	}
	return nil
}

func (t *writeTx) PutRedelivery(ctx context.Context, r *daodian.Redelivery) error {
	ev, err := daodian.EventNumber(r.EventID)
	if err != nil {
		return err
	}
	_, err = t.execOnce(sqlPutRedelivery, "redelivery", r.WebhookID, r.WebhookID, ev, micros(r.RequestedAt))
	return err
}

// SaveDelivery prepares each statement once for the whole update: a batch of
// a busy webhook carries many attempts.
func (t *writeTx) SaveDelivery(ctx context.Context, u *daodian.DeliveryUpdate) (bool, error) {
	cursor, err := daodian.EventNumber(u.Cursor)
	if err != nil {
		return false, err
	}
	// The cursor update (a no-op for 0) says whether the webhook still exists.
	n, err := t.execOnce(sqlAdvanceCursor, "webhook", u.WebhookID, cursor, u.WebhookID)
	if err != nil || n == 0 {
		return false, err
	}
	if h := u.Head; h != nil {
		head, err := daodian.EventNumber(h.EventID)
		if err != nil {
			return false, err
		}
		if _, err := t.execOnce(sqlSetHead, "webhook", u.WebhookID, head, int64(h.Attempts), micros(h.FirstAt), micros(h.NextAt),
			u.WebhookID, head, head); err != nil {
			return false, err
		}
	}
	// Ids are checked before the first insert: a failed statement breaks the
	// writer's batch, a malformed id must only fail this Update.
	attempts := make([]int64, len(u.Attempts))
	for i := range u.Attempts {
		if attempts[i], err = daodian.EventNumber(u.Attempts[i].EventID); err != nil {
			return false, err
		}
	}
	done := make([]int64, len(u.Redelivered))
	for i, id := range u.Redelivered {
		if done[i], err = daodian.EventNumber(id); err != nil {
			return false, err
		}
	}
	if err := t.eachPrepared(sqlInsertAttempt, len(u.Attempts), func(st *stmt, i int) error {
		a := &u.Attempts[i]
		redelivery := int64(0)
		if a.Redelivery {
			redelivery = 1
		}
		_, err := t.s.exec(st, u.WebhookID, attempts[i], string(a.EventType), int64(a.Attempt), micros(a.At), int64(a.HTTPStatus),
			a.Latency.Microseconds(), a.Error, string(a.Outcome), redelivery)
		return err
	}); err != nil {
		return false, err
	}
	if err := t.eachPrepared(sqlDoneRedelivery, len(done), func(st *stmt, i int) error {
		_, err := t.s.exec(st, u.WebhookID, done[i])
		return err
	}); err != nil {
		return false, err
	}
	return true, nil
}

// eachPrepared prepares text once and runs fn, which returns the driver's
// errors only, for 0 ≤ i < n with it; an error is classified.
func (t *writeTx) eachPrepared(text string, n int, fn func(st *stmt, i int) error) error {
	if n == 0 {
		return nil
	}
	st, err := t.prepared(text)
	if err != nil {
		return err
	}
	defer st.s.Close()
	for i := range n {
		if err := fn(st, i); err != nil {
			return t.s.fail(err)
		}
	}
	return nil
}

func (t *writeTx) PruneAttempts(ctx context.Context, webhookID string, keep int, failedBefore time.Time) (int, error) {
	n1, err := t.execOnce(sqlPruneAttempts, "attempts of webhook", webhookID, webhookID, webhookID, int64(max(keep, 1)-1))
	if err != nil {
		return 0, err
	}
	n2, err := t.execOnce(sqlPruneFailed, "attempts of webhook", webhookID, webhookID, micros(failedBefore))
	return int(n1 + n2), err
}

// Inside an Update with memory (mem.go), the batch's pending records go to the
// file first, so that these reads see the records of the Updates before this
// one in the batch, as Records does.

func (t *writeTx) RecordByID(ctx context.Context, id string) (*daodian.Record, error) {
	if err := t.syncFile(); err != nil {
		return nil, err
	}
	return t.readTx.RecordByID(ctx, id)
}

func (t *writeTx) LastRecordID(ctx context.Context) (string, error) {
	if err := t.syncFile(); err != nil {
		return "", err
	}
	return t.readTx.LastRecordID(ctx)
}
