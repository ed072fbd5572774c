package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/daodian/daodian"
)

// Webhooks (daodian/webhooks.go): read by every gateway's deliverer every few
// hundred milliseconds, written by the deliverer holding a webhook's lease
// (leases.go) in one Update per batch of results, and by the webhook commands.
// A batch's attempts go in one INSERT of arrays, not one statement each.

const (
	webhookCols = `id, merchant_id, url, types, secret, created_at, cursor, head_event, head_attempts, head_first_at, head_next_at`
	attemptCols = `id, webhook_id, event_id, event_type, attempt, at, http_status, latency_us, error, outcome, redelivery`

	sqlInsertWebhook = `INSERT INTO webhooks (` + webhookCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
	ON CONFLICT DO NOTHING`
	sqlWebhook  = `SELECT ` + webhookCols + ` FROM webhooks WHERE id = $1`
	sqlWebhooks = `SELECT ` + webhookCols + ` FROM webhooks ORDER BY id LIMIT $1`
	// GREATEST keeps the cursor from going back: a late batch of a deliverer
	// that lost its lease never undoes the next holder's progress.
	sqlAdvanceCursor = `UPDATE webhooks SET cursor = GREATEST(cursor, $2) WHERE id = $1`
	// A head state is kept unless the cursor has already gone past its event.
	sqlSetHead = `UPDATE webhooks SET head_event = $2, head_attempts = $3, head_first_at = $4, head_next_at = $5
	WHERE id = $1 AND ($2 = 0 OR $2 > cursor)`
	sqlInsertAttempts = `INSERT INTO webhook_attempts (webhook_id, event_id, event_type, attempt, at, http_status, latency_us, error, outcome, redelivery)
	SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::integer[], $5::timestamptz[], $6::integer[], $7::bigint[],
		$8::text[], $9::text[], $10::boolean[])`
	sqlAttempts = `SELECT ` + attemptCols + ` FROM webhook_attempts
	WHERE webhook_id = $1 AND ($2 = 0 OR id < $2) AND (NOT $3 OR outcome = 'failed') ORDER BY id DESC LIMIT $4`
	sqlPutRedelivery = `INSERT INTO webhook_redeliveries (webhook_id, event_id, requested_at) VALUES ($1, $2, $3)
	ON CONFLICT (webhook_id, event_id) DO UPDATE SET requested_at = excluded.requested_at`
	sqlDoneRedeliveries = `DELETE FROM webhook_redeliveries WHERE webhook_id = $1 AND event_id = ANY($2)`
	sqlRedeliveries     = `SELECT webhook_id, event_id, requested_at FROM webhook_redeliveries
	ORDER BY requested_at, webhook_id, event_id LIMIT $1`
	// The attempts that did not fail an event, beyond the $2 newest.
	sqlPruneAttempts = `DELETE FROM webhook_attempts WHERE webhook_id = $1 AND outcome <> 'failed' AND id < COALESCE(
		(SELECT id FROM webhook_attempts WHERE webhook_id = $1 AND outcome <> 'failed' ORDER BY id DESC LIMIT 1 OFFSET $2), 0)`
	sqlPruneFailed = `DELETE FROM webhook_attempts WHERE webhook_id = $1 AND outcome = 'failed' AND at < $2`

	// Numbered records only: a queued one has no event_id yet.
	sqlRecordByID   = `SELECT ` + recordRead + ` FROM records WHERE record_id = $1`
	sqlLastRecordID = `SELECT COALESCE(max(record_id), 0) FROM records`
)

func (t *pgTx) scanWebhook(r rowScanner) (daodian.Webhook, error) {
	var w daodian.Webhook
	var types string
	var created, first, next pgtype.Timestamptz
	var cursor, head int64
	if err := r.Scan(&w.ID, &w.MerchantID, &w.URL, &types, &w.Secret, &created, &cursor, &head, &w.Head.Attempts, &first, &next); err != nil {
		return w, err
	}
	w.ID, w.MerchantID, w.URL, w.Secret = unesc(w.ID), unesc(w.MerchantID), unesc(w.URL), unesc(w.Secret)
	w.CreatedAt, w.Head.FirstAt, w.Head.NextAt = fromTS(created), fromTS(first), fromTS(next)
	w.Cursor, w.Head.EventID = daodian.EventIDOf(cursor), daodian.EventIDOf(head)
	w.TypesFromText(unesc(types))
	if err := t.key.OpenWebhook(&w); err != nil {
		return w, fmt.Errorf("postgres: %w", err)
	}
	return w, nil
}

// Webhooks returns every webhook in id order.
func (t *pgTx) Webhooks(ctx context.Context) ([]daodian.Webhook, error) {
	rows, err := t.query(ctx, sqlWebhooks, daodian.MaxWebhooks)
	if err != nil {
		return nil, wrapErr("webhooks", err)
	}
	defer rows.Close()
	var out []daodian.Webhook
	for rows.Next() {
		w, err := t.scanWebhook(rows)
		if err != nil {
			return nil, wrapErr("webhooks", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("webhooks", err)
	}
	return out, nil
}

// Webhook returns a webhook.
func (t *pgTx) Webhook(ctx context.Context, id string) (*daodian.Webhook, error) {
	w, err := t.scanWebhook(t.queryRow(ctx, sqlWebhook, esc(id)))
	if err != nil {
		return nil, rowErr("webhook", err)
	}
	return &w, nil
}

// Redeliveries returns the redeliveries waiting, oldest request first.
func (t *pgTx) Redeliveries(ctx context.Context) ([]daodian.Redelivery, error) {
	rows, err := t.query(ctx, sqlRedeliveries, daodian.MaxRedeliveries)
	if err != nil {
		return nil, wrapErr("redeliveries", err)
	}
	defer rows.Close()
	var out []daodian.Redelivery
	for rows.Next() {
		var r daodian.Redelivery
		var ev int64
		var at pgtype.Timestamptz
		if err := rows.Scan(&r.WebhookID, &ev, &at); err != nil {
			return nil, wrapErr("redeliveries", err)
		}
		r.WebhookID, r.EventID, r.RequestedAt = unesc(r.WebhookID), daodian.EventIDOf(ev), fromTS(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("redeliveries", err)
	}
	return out, nil
}

// DeliveryAttempts returns a webhook's attempts matching q, newest first.
func (t *pgTx) DeliveryAttempts(ctx context.Context, q daodian.AttemptQuery) ([]daodian.DeliveryAttempt, error) {
	if q.Limit < 1 || q.Limit > daodian.MaxAttemptsPage {
		return nil, fmt.Errorf("postgres: attempts limit %d out of range", q.Limit)
	}
	before, err := daodian.EventNumber(q.BeforeID)
	if err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, sqlAttempts, esc(q.WebhookID), before, q.FailedOnly, q.Limit)
	if err != nil {
		return nil, wrapErr("delivery attempts", err)
	}
	defer rows.Close()
	var out []daodian.DeliveryAttempt
	for rows.Next() {
		var a daodian.DeliveryAttempt
		var id, ev, latency int64
		var typ, outcome string
		var at pgtype.Timestamptz
		if err := rows.Scan(&id, &a.WebhookID, &ev, &typ, &a.Attempt, &at, &a.HTTPStatus, &latency, &a.Error, &outcome, &a.Redelivery); err != nil {
			return nil, wrapErr("delivery attempts", err)
		}
		a.ID, a.WebhookID, a.EventID = strconv.FormatInt(id, 10), unesc(a.WebhookID), daodian.EventIDOf(ev)
		a.EventType, a.Outcome, a.Error = daodian.EventType(unesc(typ)), daodian.DeliveryOutcome(unesc(outcome)), unesc(a.Error)
		a.At, a.Latency = fromTS(at), time.Duration(latency)*time.Microsecond
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("delivery attempts", err)
	}
	return out, nil
}

// RecordByID returns a numbered record.
func (t *pgTx) RecordByID(ctx context.Context, id string) (*daodian.Record, error) {
	v, err := daodian.EventNumber(id)
	if err != nil || v == 0 {
		return nil, daodian.ErrNotFound // not an id this store hands out
	}
	r := new(daodian.Record)
	if _, err := scanRecord(t.queryRow(ctx, sqlRecordByID, v), r); err != nil {
		return nil, rowErr("record", err)
	}
	return r, nil
}

// LastRecordID returns the highest record_id handed out by a numbering pass.
func (t *pgTx) LastRecordID(ctx context.Context) (string, error) {
	var last int64
	if err := t.queryRow(ctx, sqlLastRecordID).Scan(&last); err != nil {
		return "", wrapErr("last record id", err)
	}
	return daodian.EventIDOf(last), nil
}

// InsertWebhook stores a new webhook, its secret sealed.
func (t *pgTx) InsertWebhook(ctx context.Context, w *daodian.Webhook) error {
	cursor, err := daodian.EventNumber(w.Cursor)
	if err != nil {
		return err
	}
	head, err := daodian.EventNumber(w.Head.EventID)
	if err != nil {
		return err
	}
	tag, err := t.exec(ctx, sqlInsertWebhook, esc(w.ID), esc(w.MerchantID), esc(w.URL), esc(w.TypesText()),
		t.key.SealWebhook(w), ts(w.CreatedAt), cursor, head, w.Head.Attempts, ts(w.Head.FirstAt), ts(w.Head.NextAt))
	return insertErr("insert webhook", tag, err)
}

// DeleteWebhook deletes a webhook, its attempts and its redeliveries.
func (t *pgTx) DeleteWebhook(ctx context.Context, id string) error {
	tag, err := t.exec(ctx, `DELETE FROM webhooks WHERE id = $1`, esc(id))
	if err != nil {
		return wrapErr("delete webhook", err)
	}
	if tag.RowsAffected() == 0 {
		return daodian.ErrNotFound
	}
	for _, q := range []string{`DELETE FROM webhook_attempts WHERE webhook_id = $1`, `DELETE FROM webhook_redeliveries WHERE webhook_id = $1`} {
		if _, err := t.exec(ctx, q, esc(id)); err != nil {
			return wrapErr("delete webhook", err)
		}
	}
	return nil
}

// PutRedelivery queues a redelivery.
func (t *pgTx) PutRedelivery(ctx context.Context, r *daodian.Redelivery) error {
	ev, err := daodian.EventNumber(r.EventID)
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, sqlPutRedelivery, esc(r.WebhookID), ev, ts(r.RequestedAt)); err != nil {
		return wrapErr("put redelivery", err)
	}
	return nil
}

// SaveDelivery applies a deliverer's batch for one webhook.
func (t *pgTx) SaveDelivery(ctx context.Context, u *daodian.DeliveryUpdate) (bool, error) {
	cursor, err := daodian.EventNumber(u.Cursor)
	if err != nil {
		return false, err
	}
	n := len(u.Attempts)
	var (
		evs       = make([]int64, n)
		types     = make([]string, n)
		numbers   = make([]int32, n)
		ats       = make([]pgtype.Timestamptz, n)
		statuses  = make([]int32, n)
		latencies = make([]int64, n)
		errs      = make([]string, n)
		outcomes  = make([]string, n)
		redeliver = make([]bool, n)
	)
	for i := range u.Attempts {
		a := &u.Attempts[i]
		if evs[i], err = daodian.EventNumber(a.EventID); err != nil {
			return false, err
		}
		types[i], numbers[i], ats[i], statuses[i] = esc(string(a.EventType)), int32(a.Attempt), ts(a.At), int32(a.HTTPStatus)
		latencies[i], errs[i], outcomes[i], redeliver[i] = a.Latency.Microseconds(), esc(a.Error), esc(string(a.Outcome)), a.Redelivery
	}
	done := make([]int64, len(u.Redelivered))
	for i, id := range u.Redelivered {
		if done[i], err = daodian.EventNumber(id); err != nil {
			return false, err
		}
	}
	// The cursor update (a no-op for 0) says whether the webhook still exists.
	tag, err := t.exec(ctx, sqlAdvanceCursor, esc(u.WebhookID), cursor)
	if err != nil {
		return false, wrapErr("save delivery", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if h := u.Head; h != nil {
		head, err := daodian.EventNumber(h.EventID)
		if err != nil {
			return false, err
		}
		if _, err := t.exec(ctx, sqlSetHead, esc(u.WebhookID), head, h.Attempts, ts(h.FirstAt), ts(h.NextAt)); err != nil {
			return false, wrapErr("save delivery", err)
		}
	}
	if n > 0 {
		if _, err := t.exec(ctx, sqlInsertAttempts, esc(u.WebhookID), evs, types, numbers, ats, statuses, latencies, errs, outcomes, redeliver); err != nil {
			return false, wrapErr("save delivery attempts", err)
		}
	}
	if len(done) > 0 {
		if _, err := t.exec(ctx, sqlDoneRedeliveries, esc(u.WebhookID), done); err != nil {
			return false, wrapErr("save delivery", err)
		}
	}
	return true, nil
}

// PruneAttempts bounds the attempts kept of a webhook.
func (t *pgTx) PruneAttempts(ctx context.Context, webhookID string, keep int, failedBefore time.Time) (int, error) {
	tag1, err := t.exec(ctx, sqlPruneAttempts, esc(webhookID), max(keep, 1)-1)
	if err != nil {
		return 0, wrapErr("prune attempts", err)
	}
	tag2, err := t.exec(ctx, sqlPruneFailed, esc(webhookID), ts(failedBefore))
	if err != nil {
		return 0, wrapErr("prune attempts", err)
	}
	return int(tag1.RowsAffected() + tag2.RowsAffected()), nil
}

// webhookLockKey is the advisory lock key of a webhook's lease: its id, a
// 19-digit number, fits a bigint; the migration lock's key is far below every
// id, so the two never meet.
func webhookLockKey(id string) (int64, error) {
	k, err := strconv.ParseInt(id, 10, 64)
	if err != nil || k <= migrationLock {
		return 0, fmt.Errorf("postgres: webhook id %q cannot key a lease", id)
	}
	return k, nil
}
