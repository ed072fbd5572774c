package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrationLock is the key of the advisory lock that serialises migrations of one
// database ("daodian" in ASCII). Advisory locks are scoped to the database, so
// unrelated databases on the same server do not contend for it.
const migrationLock int64 = 0x64616f6469616e

// migrations are the schema versions in order: migrations[i] takes the schema from
// version i to version i+1. Never edit one that has shipped; append a new one.
//
// Conventions:
//   - identifiers and codes are text COLLATE "C", so that ordering by them is byte
//     order, as on the embedded store, and id order is numeric order for the
//     server's 19-digit ids;
//   - times are timestamptz (microseconds), NULL for the zero time.Time;
//   - text cannot hold a NUL byte, so strings are stored escaped (escape.go):
//     NUL and 0x01 become two-byte sequences starting with 0x01, which keeps
//     equality and byte order, and leaves every ordinary string as it is;
//   - there are no foreign keys between tickets and the other tables, so that the
//     ticket-keyed tables can be distributed by ticket_id (DISTRIBUTION.md); the
//     ledger keeps the references consistent and `daodian audit` checks them.
var migrations = []string{
	// 1: the ledger.
	`
CREATE SEQUENCE daodian_ids AS bigint
	START WITH 2100000000000000000 MINVALUE 2100000000000000000
	NO CYCLE CACHE 1;

CREATE TABLE merchants (
	id   text COLLATE "C" PRIMARY KEY,
	name text NOT NULL
);

CREATE TABLE shops (
	merchant_id text COLLATE "C" NOT NULL,
	shop_id     text COLLATE "C" NOT NULL,
	name        text NOT NULL,
	PRIMARY KEY (merchant_id, shop_id)
);

CREATE TABLE apps (
	key              text COLLATE "C" PRIMARY KEY,
	secret           text NOT NULL,
	name             text NOT NULL,
	merchants        text[] NOT NULL DEFAULT '{}',
	enabled          boolean NOT NULL,
	methods          text[] NOT NULL DEFAULT '{}',
	rate_limit_per_s integer NOT NULL,
	created_at       timestamptz
);

CREATE TABLE orders (
	sub_order_no         text COLLATE "C" PRIMARY KEY,
	order_no             text COLLATE "C" NOT NULL,
	merchant_id          text COLLATE "C" NOT NULL,
	buyer_id             text NOT NULL,
	user_phone           text NOT NULL,
	item_id              text NOT NULL,
	out_item_id          text NOT NULL,
	item_name            text NOT NULL,
	original_price_cents bigint NOT NULL,
	total_amount_cents   bigint NOT NULL,
	real_amount_cents    bigint NOT NULL,
	created_at           timestamptz
);

CREATE TABLE tickets (
	id                   text COLLATE "C" PRIMARY KEY,
	code                 text COLLATE "C" NOT NULL UNIQUE,
	merchant_id          text COLLATE "C" NOT NULL,
	order_no             text COLLATE "C" NOT NULL,
	sub_order_no         text COLLATE "C" NOT NULL,
	item_id              text NOT NULL,
	out_item_id          text NOT NULL,
	item_name            text NOT NULL,
	quantity             integer NOT NULL,
	available            integer NOT NULL,
	original_price_cents bigint NOT NULL,
	total_amount_cents   bigint NOT NULL,
	real_amount_cents    bigint NOT NULL,
	valid_from           timestamptz,
	valid_to             timestamptz,
	status               text NOT NULL,
	created_at           timestamptz,
	CONSTRAINT tickets_available_range CHECK (available BETWEEN 0 AND quantity)
);
CREATE INDEX tickets_sub_order_no ON tickets (sub_order_no, id);

CREATE TABLE uses (
	trans_id            text COLLATE "C" PRIMARY KEY,
	group_trans_id      text COLLATE "C" NOT NULL,
	ticket_id           text COLLATE "C" NOT NULL,
	app_key             text COLLATE "C" NOT NULL,
	request_id          text NOT NULL,
	shop_id             text NOT NULL,
	units               integer NOT NULL,
	gmt_biz             timestamptz,
	created_at          timestamptz,
	reversed            boolean NOT NULL DEFAULT false,
	reversed_at         timestamptz,
	reversal_app_key    text NOT NULL DEFAULT '',
	reversal_request_id text NOT NULL DEFAULT '',
	reversal_biz_date   timestamptz,
	refunded            boolean NOT NULL DEFAULT false,
	refunded_at         timestamptz,
	refund_app_key      text NOT NULL DEFAULT '',
	refund_request_id   text NOT NULL DEFAULT ''
);
-- LatestActiveUse and ActiveUnits read only the unreversed uses of one ticket.
CREATE INDEX uses_active ON uses (ticket_id, app_key, trans_id DESC) WHERE NOT reversed;
CREATE INDEX uses_group ON uses (group_trans_id, ticket_id);

CREATE TABLE fences (
	ticket_id  text COLLATE "C" NOT NULL,
	app_key    text COLLATE "C" NOT NULL,
	at         timestamptz,
	request_id text NOT NULL,
	created_at timestamptz,
	PRIMARY KEY (ticket_id, app_key)
);

CREATE TABLE idem (
	app_key     text COLLATE "C" NOT NULL,
	op          text COLLATE "C" NOT NULL,
	request_id  text COLLATE "C" NOT NULL,
	-- bytea: the ledger's fingerprints join fields with NUL bytes, which text
	-- cannot hold.
	fingerprint bytea NOT NULL,
	ticket_id   text COLLATE "C" NOT NULL,
	answer      bytea NOT NULL,
	created_at  timestamptz,
	PRIMARY KEY (app_key, op, request_id)
);
`,
	// 2: fault rules (daodian/faults.go). remaining 0 is an unlimited rule; wait_us
	// is in microseconds. Not keyed by ticket: a rule is read by every gateway and
	// may name no ticket, so on a distributed engine it is a small reference table.
	`
CREATE TABLE fault_rules (
	id          text COLLATE "C" PRIMARY KEY,
	app_key     text COLLATE "C" NOT NULL,
	method      text NOT NULL,
	ticket_id   text COLLATE "C" NOT NULL,
	ticket_code text COLLATE "C" NOT NULL,
	kind        text NOT NULL,
	remaining   integer NOT NULL,
	probability double precision NOT NULL,
	code        integer NOT NULL,
	wait_us     bigint NOT NULL,
	created_at  timestamptz
);
`,
	// 3: the secret a rotation replaced (sealed; '' for none) and until when it
	// still signs, and meta for the check of the key the secrets are sealed with
	// (secrets.go). From this version on apps.secret is sealed too, which Open
	// does right after migrating. meta is a small reference table.
	`
ALTER TABLE apps ADD COLUMN previous_secret text NOT NULL DEFAULT '',
	ADD COLUMN previous_secret_until timestamptz;

CREATE TABLE meta (
	key   text COLLATE "C" PRIMARY KEY,
	value text NOT NULL
);
`,
	// 4: records (records.go). A record is appended to record_queue in its
	// change's transaction and moved to records, with its record_id, by the
	// numbering pass (SequenceRecords); record_numbering holds the last
	// record_id handed out, and its row lock admits one pass at a time. day is
	// the GMT+8 business day YYYYMMDD of at. record_queue_seq must hand out its
	// values in the order they are taken, whichever session takes them, so its
	// cache is 1: the numbering orders the records of one ticket by it.
	//
	// Then the history of a ledger written before records existed, rebuilt
	// from its rows as the embedded store does (sqlite.backfillRecords): the
	// uses get their amounts — each unit's share of its ticket's prices,
	// without the remainder cents a ticket's last unit used to carry (which
	// use took the last unit is lost once uses are reversed) — and records are
	// written already numbered: an issue per ticket, a use per use, a reversal
	// and a refund per reversed or refunded use (at the time each was marked),
	// a fence per fence (at its last move: earlier moves were overwritten), in
	// time order, records of one instant in the order issue, use, reversal,
	// fence, refund, then by ticket or use id.
	`
ALTER TABLE uses ADD COLUMN buyer_pay_cents bigint NOT NULL DEFAULT 0,
	ADD COLUMN receipt_cents bigint NOT NULL DEFAULT 0;

UPDATE uses u SET buyer_pay_cents = t.total_amount_cents / t.quantity * u.units,
	receipt_cents = t.real_amount_cents / t.quantity * u.units
FROM tickets t WHERE t.id = u.ticket_id AND t.quantity > 0;

CREATE SEQUENCE record_queue_seq AS bigint NO CYCLE CACHE 1;

CREATE TABLE record_queue (
	seq             bigint PRIMARY KEY DEFAULT nextval('record_queue_seq'),
	at              timestamptz,
	day             integer NOT NULL,
	kind            text COLLATE "C" NOT NULL,
	merchant_id     text COLLATE "C" NOT NULL,
	shop_id         text COLLATE "C" NOT NULL,
	ticket_id       text COLLATE "C" NOT NULL,
	trans_id        text COLLATE "C" NOT NULL,
	request_id      text COLLATE "C" NOT NULL,
	app_key         text COLLATE "C" NOT NULL,
	units           integer NOT NULL,
	biz_time        timestamptz,
	buyer_pay_cents bigint NOT NULL,
	receipt_cents   bigint NOT NULL
);
ALTER SEQUENCE record_queue_seq OWNED BY record_queue.seq;

CREATE TABLE records (
	record_id       bigint PRIMARY KEY,
	at              timestamptz,
	day             integer NOT NULL,
	kind            text COLLATE "C" NOT NULL,
	merchant_id     text COLLATE "C" NOT NULL,
	shop_id         text COLLATE "C" NOT NULL,
	ticket_id       text COLLATE "C" NOT NULL,
	trans_id        text COLLATE "C" NOT NULL,
	request_id      text COLLATE "C" NOT NULL,
	app_key         text COLLATE "C" NOT NULL,
	units           integer NOT NULL,
	biz_time        timestamptz,
	buyer_pay_cents bigint NOT NULL,
	receipt_cents   bigint NOT NULL
);
-- A merchant's records in commit order (paging); a merchant's day in commit
-- order (statements, reconciliation, and the bounds of a time range); a
-- ticket's timeline.
CREATE INDEX records_merchant ON records (merchant_id, record_id);
CREATE INDEX records_day ON records (merchant_id, day, record_id);
CREATE INDEX records_ticket ON records (ticket_id, record_id);

CREATE TABLE record_numbering (
	id      boolean PRIMARY KEY DEFAULT true CHECK (id),
	last_id bigint NOT NULL
);

INSERT INTO records (record_id, at, day, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key,
	units, biz_time, buyer_pay_cents, receipt_cents)
SELECT row_number() OVER (ORDER BY h.at NULLS FIRST, h.rank, h.key1, h.key2), h.at,
	COALESCE(to_char(h.at AT TIME ZONE INTERVAL '+08:00', 'YYYYMMDD')::integer, 10101),
	h.kind, h.merchant_id, h.shop_id, h.ticket_id, h.trans_id, h.request_id, h.app_key, h.units, h.biz_time,
	h.buyer_pay_cents, h.receipt_cents
FROM (
	SELECT t.created_at AS at, 0 AS rank, t.id AS key1, ''::text COLLATE "C" AS key2, 'issue' AS kind,
		t.merchant_id, '' AS shop_id, t.id AS ticket_id, '' AS trans_id, '' AS request_id, '' AS app_key,
		t.quantity AS units, NULL::timestamptz AS biz_time, t.total_amount_cents AS buyer_pay_cents,
		t.real_amount_cents AS receipt_cents
	FROM tickets t
	UNION ALL
	SELECT u.created_at, 1, u.trans_id, '', 'use', COALESCE(t.merchant_id, ''), u.shop_id, u.ticket_id, u.trans_id,
		u.request_id, u.app_key, u.units, u.gmt_biz, u.buyer_pay_cents, u.receipt_cents
	FROM uses u LEFT JOIN tickets t ON t.id = u.ticket_id
	UNION ALL
	SELECT u.reversed_at, 2, u.trans_id, '', 'reversal', COALESCE(t.merchant_id, ''), u.shop_id, u.ticket_id,
		u.trans_id, u.reversal_request_id, u.reversal_app_key, u.units, u.reversal_biz_date, u.buyer_pay_cents,
		u.receipt_cents
	FROM uses u LEFT JOIN tickets t ON t.id = u.ticket_id WHERE u.reversed
	UNION ALL
	SELECT f.created_at, 3, f.ticket_id, f.app_key, 'fence', COALESCE(t.merchant_id, ''), '', f.ticket_id, '',
		f.request_id, f.app_key, 0, f.at, 0, 0
	FROM fences f LEFT JOIN tickets t ON t.id = f.ticket_id
	UNION ALL
	SELECT u.refunded_at, 4, u.trans_id, '', 'refund', COALESCE(t.merchant_id, ''), u.shop_id, u.ticket_id,
		u.trans_id, u.refund_request_id, u.refund_app_key, u.units, NULL, u.buyer_pay_cents, u.receipt_cents
	FROM uses u LEFT JOIN tickets t ON t.id = u.ticket_id WHERE u.refunded
) h;

INSERT INTO record_numbering (last_id) SELECT COALESCE(max(record_id), 0) FROM records;
`,
	// 5: admin tokens (daodian/tokens.go): the SHA-256 hash of each, never the
	// token; merchant_id '' is a token for every merchant, revoked_at NULL one
	// not revoked. A small reference table, like fault_rules.
	`
CREATE TABLE admin_tokens (
	id          text COLLATE "C" PRIMARY KEY,
	hash        text COLLATE "C" NOT NULL UNIQUE,
	name        text NOT NULL,
	merchant_id text COLLATE "C" NOT NULL,
	created_at  timestamptz,
	revoked_at  timestamptz
);
`,
	// 6: webhooks (webhooks.go). The events are the records: these tables hold
	// only where each webhook is (cursor: the last event_id finished, 0 for
	// none; head_*: the retry state of the event after it), the attempts, and
	// the redeliveries asked for. secret is sealed. Small reference tables on a
	// distributed engine, like fault_rules; the attempts are keyed by webhook.
	`
CREATE TABLE webhooks (
	id            text COLLATE "C" PRIMARY KEY,
	merchant_id   text COLLATE "C" NOT NULL,
	url           text NOT NULL,
	types         text NOT NULL,
	secret        text NOT NULL,
	created_at    timestamptz,
	cursor        bigint NOT NULL,
	head_event    bigint NOT NULL DEFAULT 0,
	head_attempts integer NOT NULL DEFAULT 0,
	head_first_at timestamptz,
	head_next_at  timestamptz
);

CREATE TABLE webhook_attempts (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	webhook_id  text COLLATE "C" NOT NULL,
	event_id    bigint NOT NULL,
	event_type  text NOT NULL,
	attempt     integer NOT NULL,
	at          timestamptz,
	http_status integer NOT NULL,
	latency_us  bigint NOT NULL,
	error       text NOT NULL,
	outcome     text NOT NULL,
	redelivery  boolean NOT NULL
);
CREATE INDEX webhook_attempts_webhook ON webhook_attempts (webhook_id, id);

CREATE TABLE webhook_redeliveries (
	webhook_id   text COLLATE "C" NOT NULL,
	event_id     bigint NOT NULL,
	requested_at timestamptz,
	PRIMARY KEY (webhook_id, event_id)
);
`,
	// 7: the idempotent operations as server-side functions (functions.go).
	migrationFunctions,
	// 8: a use locks only the tickets it takes units from (functions_sql_v8.go).
	migrationUseLocks,
}

// migrate brings the schema to the latest version. It runs in one transaction
// holding an advisory lock, so two processes starting at once apply each migration
// exactly once: the second waits for the first, then finds nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return wrapErr("migrate", err)
	}
	// Rolls back unless committed; a no-op after Commit.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	err = func() error {
		// A migration may rewrite a large table, and the lock may be held by
		// another process migrating: neither is bounded by the per-statement
		// timeout meant for ledger statements.
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return err
		}
		var version int
		if err := tx.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&version); err != nil {
			return err
		}
		if version > len(migrations) {
			// A newer daodian has migrated this database; this binary does not know
			// what the new schema means and must not write to it.
			return fmt.Errorf("the database schema is at version %d but this daodian knows only up to %d: upgrade daodian", version, len(migrations))
		}
		for v := version; v < len(migrations); v++ {
			// No arguments: pgx sends it with the simple protocol, which accepts
			// several statements in one string.
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("version %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v+1); err != nil {
				return err
			}
		}
		return nil
	}()
	if err == nil {
		// Like every commit of the store: a schema the standby may lack is not
		// reported as applied.
		err = s.commitDurably(ctx, conn.Conn(), tx.Commit)
	}
	if err != nil {
		return wrapErr("migrate", err)
	}
	return nil
}
