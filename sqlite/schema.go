package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// schemaVersion is the version this binary writes; migrations[i] brings a
// database from version i to i+1.
const schemaVersion = 8

// migrations are applied in order, each in the same transaction as the update
// of meta.schema_version, so a crash leaves the database at one version or the
// next. Every statement is idempotent (IF NOT EXISTS) so that a database
// created by hand with part of a migration still opens.
//
// Conventions: times are INTEGER Unix microseconds (0 for the zero time),
// booleans 0/1, identifiers TEXT (they are decimal strings, and keeping them as
// text round-trips any id an importer supplies). Tables keyed by text use
// WITHOUT ROWID so that a lookup by key is one B-tree descent, not an index
// descent plus a table descent — except idem since version 7 (rebuildIdem).
// The doc columns hold the encoding of codec.go.
var migrations = [][]string{
	// 0 → 1: the ledger.
	{
		`CREATE TABLE IF NOT EXISTS meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS merchants (
			id   TEXT PRIMARY KEY,
			name TEXT NOT NULL
		) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS shops (
			merchant_id TEXT NOT NULL,
			shop_id     TEXT NOT NULL,
			name        TEXT NOT NULL,
			PRIMARY KEY (merchant_id, shop_id)
		) WITHOUT ROWID`,
		// doc: name, merchants, enabled, methods, rate limit (the fields UpdateApp
		// replaces).
		`CREATE TABLE IF NOT EXISTS apps (
			key        TEXT PRIMARY KEY,
			secret     TEXT NOT NULL,
			created_at INTEGER NOT NULL,
			doc        BLOB NOT NULL
		) WITHOUT ROWID`,
		// doc: every field of the order.
		`CREATE TABLE IF NOT EXISTS orders (
			sub_order_no TEXT PRIMARY KEY,
			order_no     TEXT NOT NULL,
			merchant_id  TEXT NOT NULL,
			doc          BLOB NOT NULL
		) WITHOUT ROWID`,
		// doc: every field of the ticket except available, the one field a Tx
		// changes.
		`CREATE TABLE IF NOT EXISTS tickets (
			id           TEXT PRIMARY KEY,
			code         TEXT NOT NULL UNIQUE,
			merchant_id  TEXT NOT NULL,
			sub_order_no TEXT NOT NULL,
			quantity     INTEGER NOT NULL,
			available    INTEGER NOT NULL,
			doc          BLOB NOT NULL,
			CHECK (available BETWEEN 0 AND quantity)
		) WITHOUT ROWID`,
		// The primary key (id) is part of every index entry of a WITHOUT ROWID
		// table, so this index also yields a sub-order's tickets in id order.
		`CREATE INDEX IF NOT EXISTS tickets_sub_order ON tickets (sub_order_no)`,
		// doc: the fields fixed at the use; reversal and refund: the fields
		// MarkReversed and MarkRefunded store (empty until then).
		`CREATE TABLE IF NOT EXISTS uses (
			trans_id       TEXT PRIMARY KEY,
			group_trans_id TEXT NOT NULL,
			ticket_id      TEXT NOT NULL,
			app_key        TEXT NOT NULL,
			units          INTEGER NOT NULL,
			reversed       INTEGER NOT NULL DEFAULT 0,
			refunded       INTEGER NOT NULL DEFAULT 0,
			doc            BLOB NOT NULL,
			reversal       BLOB NOT NULL DEFAULT x'',
			refund         BLOB NOT NULL DEFAULT x''
		) WITHOUT ROWID`,
		// Active uses only: LatestActiveUse is the last entry of
		// (ticket_id, app_key), and ActiveUnits sums units without touching the
		// table. A reversal removes the use from this index, so the index stays
		// the size of the unreversed uses.
		`CREATE INDEX IF NOT EXISTS uses_active ON uses (ticket_id, app_key, trans_id, units) WHERE reversed = 0`,
		`CREATE INDEX IF NOT EXISTS uses_group ON uses (group_trans_id, ticket_id)`,
		`CREATE TABLE IF NOT EXISTS fences (
			ticket_id  TEXT NOT NULL,
			app_key    TEXT NOT NULL,
			at         INTEGER NOT NULL,
			request_id TEXT NOT NULL,
			created_at INTEGER NOT NULL,
			PRIMARY KEY (ticket_id, app_key)
		) WITHOUT ROWID`,
		// Until version 7, when rebuildIdem makes it a rowid table.
		`CREATE TABLE IF NOT EXISTS idem (` + idemColumnsDDL + `,
			PRIMARY KEY (app_key, op, request_id)
		) WITHOUT ROWID`,
	},
	// 1 → 2: fault rules (faults.go). remaining 0 is an unlimited rule; wait is
	// in microseconds.
	{
		`CREATE TABLE IF NOT EXISTS fault_rules (
			id          TEXT PRIMARY KEY,
			app_key     TEXT NOT NULL,
			method      TEXT NOT NULL,
			ticket_id   TEXT NOT NULL,
			ticket_code TEXT NOT NULL,
			kind        TEXT NOT NULL,
			remaining   INTEGER NOT NULL,
			probability REAL NOT NULL,
			code        INTEGER NOT NULL,
			wait        INTEGER NOT NULL,
			created_at  INTEGER NOT NULL
		) WITHOUT ROWID`,
	},
	// 2 → 3: the secret a rotation replaced (sealed; '' for none) and until
	// when it still signs. From this version on, apps.secret is sealed too
	// (secrets.go), which openWriter does right after migrating.
	{
		`ALTER TABLE apps ADD COLUMN previous_secret TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE apps ADD COLUMN previous_secret_until INTEGER NOT NULL DEFAULT 0`,
	},
	// 3 → 4: records (records.go); a ledger written before them gets its
	// history rebuilt from its rows (backfillRecords). day is the GMT+8
	// business day YYYYMMDD of at.
	{
		`CREATE TABLE IF NOT EXISTS records (
			id              INTEGER PRIMARY KEY,
			at              INTEGER NOT NULL,
			day             INTEGER NOT NULL,
			kind            TEXT NOT NULL,
			merchant_id     TEXT NOT NULL,
			shop_id         TEXT NOT NULL,
			ticket_id       TEXT NOT NULL,
			trans_id        TEXT NOT NULL,
			request_id      TEXT NOT NULL,
			app_key         TEXT NOT NULL,
			units           INTEGER NOT NULL,
			biz_time        INTEGER NOT NULL,
			buyer_pay_cents INTEGER NOT NULL,
			receipt_cents   INTEGER NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS records_merchant ON records (merchant_id, id)`,
		`CREATE INDEX IF NOT EXISTS records_day ON records (merchant_id, day)`,
		`CREATE INDEX IF NOT EXISTS records_ticket ON records (ticket_id)`,
	},
	// 4 → 5: admin tokens (tokens.go): the SHA-256 hash of each, never the
	// token; merchant_id '' is a token for every merchant, revoked_at 0 one
	// not revoked.
	{
		`CREATE TABLE IF NOT EXISTS admin_tokens (
			id          TEXT PRIMARY KEY,
			hash        TEXT NOT NULL UNIQUE,
			name        TEXT NOT NULL,
			merchant_id TEXT NOT NULL,
			created_at  INTEGER NOT NULL,
			revoked_at  INTEGER NOT NULL DEFAULT 0
		) WITHOUT ROWID`,
	},
	// 5 → 6: webhooks (webhooks.go). The events are the records: these tables
	// hold only where each webhook is (cursor: the last event_id finished, 0
	// for none; head_*: the retry state of the event after it), the attempts,
	// and the redeliveries asked for. secret is sealed.
	{
		`CREATE TABLE IF NOT EXISTS webhooks (
			id            TEXT PRIMARY KEY,
			merchant_id   TEXT NOT NULL,
			url           TEXT NOT NULL,
			types         TEXT NOT NULL,
			secret        TEXT NOT NULL,
			created_at    INTEGER NOT NULL,
			cursor        INTEGER NOT NULL,
			head_event    INTEGER NOT NULL DEFAULT 0,
			head_attempts INTEGER NOT NULL DEFAULT 0,
			head_first_at INTEGER NOT NULL DEFAULT 0,
			head_next_at  INTEGER NOT NULL DEFAULT 0
		) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS webhook_attempts (
			id          INTEGER PRIMARY KEY,
			webhook_id  TEXT NOT NULL,
			event_id    INTEGER NOT NULL,
			event_type  TEXT NOT NULL,
			attempt     INTEGER NOT NULL,
			at          INTEGER NOT NULL,
			http_status INTEGER NOT NULL,
			latency_us  INTEGER NOT NULL,
			error       TEXT NOT NULL,
			outcome     TEXT NOT NULL,
			redelivery  INTEGER NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS webhook_attempts_webhook ON webhook_attempts (webhook_id, id)`,
		`CREATE TABLE IF NOT EXISTS webhook_redeliveries (
			webhook_id   TEXT NOT NULL,
			event_id     INTEGER NOT NULL,
			requested_at INTEGER NOT NULL,
			PRIMARY KEY (webhook_id, event_id)
		) WITHOUT ROWID`,
	},
	// 6 → 7: idem as a rowid table with a unique index on its key
	// (rebuildIdem).
	{},
	// 7 → 8: uses_group holds only the uses whose group id is not their own id
	// — the second and later tickets of a group-buy use. A use's group id is the
	// id of its request's first use (use.go), so most uses are their own group:
	// the first part is found by the primary key (sqlGroupUse), and a use no
	// longer writes an index entry (BENCHMARKS.md, machine I: a small gain,
	// as those entries were appends).
	{
		`DROP INDEX IF EXISTS uses_group`,
		`CREATE INDEX IF NOT EXISTS uses_group ON uses (group_trans_id, ticket_id) WHERE group_trans_id <> trans_id`,
	},
}

// migrationFuncs run after the statements of a migration, in its transaction:
// the steps SQL alone cannot take (the rows' docs are encoded in Go).
var migrationFuncs = map[int]func(ctx context.Context, c *sql.Conn) error{
	3: backfillRecords,
	6: rebuildIdem,
}

// idemColumnsDDL are idem's columns, the same in every version.
const idemColumnsDDL = `
	app_key     TEXT NOT NULL,
	op          TEXT NOT NULL,
	request_id  TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	ticket_id   TEXT NOT NULL,
	answer      BLOB NOT NULL,
	created_at  INTEGER NOT NULL`

// rebuildIdem makes idem, the idempotency records, a rowid table with a
// unique index on its key (version 7). Until then it was WITHOUT ROWID, keyed
// by (app_key, op, request_id), which put each whole record — the answer is
// most of it, a few hundred bytes for a use — in the key's B-tree: keys arrive
// in no order, so every insert landed on a random leaf holding a handful of
// records, and split it every few inserts. A rowid table appends the records
// in arrival order, on pages a batch shares, and only the narrow key index
// takes the random inserts: 22 % fewer bytes and 18 % fewer write calls to the
// file per request under daodian bench (BENCHMARKS.md). A lookup by key costs
// an index descent plus a table descent, and a new key — the common case —
// only the first.
//
// It copies the records SQLite's own way to change a table (new table, copy,
// drop, rename), after reading the table's definition, so that a database
// already rebuilt is left alone.
func rebuildIdem(ctx context.Context, c *sql.Conn) error {
	var ddl string
	if err := c.QueryRowContext(ctx,
		`SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'idem'`).Scan(&ddl); err != nil {
		return fmt.Errorf("read idem's definition: %w", err)
	}
	if strings.Contains(strings.ToUpper(ddl), "WITHOUT ROWID") {
		for _, stmt := range []string{
			`DROP TABLE IF EXISTS idem_v7`,
			`CREATE TABLE idem_v7 (` + idemColumnsDDL + `)`,
			// In key order, as the old table is read: no sort.
			`INSERT INTO idem_v7 (` + idemCols + `) SELECT ` + idemCols + ` FROM idem`,
			`DROP TABLE idem`,
			`ALTER TABLE idem_v7 RENAME TO idem`,
		} {
			if _, err := c.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("rebuild idem: %w", err)
			}
		}
	}
	if _, err := c.ExecContext(ctx,
		`CREATE UNIQUE INDEX IF NOT EXISTS idem_key ON idem (app_key, op, request_id)`); err != nil {
		return fmt.Errorf("index idem: %w", err)
	}
	return nil
}

// addColumnRE matches the one kind of migration statement SQLite cannot make
// idempotent (ADD COLUMN has no IF NOT EXISTS): migrate skips it when the
// column exists.
var addColumnRE = regexp.MustCompile(`^ALTER TABLE (\w+) ADD COLUMN (\w+) `)

// Keys of the meta table.
const (
	metaSchemaVersion = "schema_version"
	// metaIDLimit is the high-water mark of NewID: every id handed out is below
	// it, so a restarted store starts there.
	metaIDLimit = "id_limit"
	// metaSecretKeyCheck tells which key the app secrets are sealed with
	// (seal.Setup).
	metaSecretKeyCheck = "secret_key_check"
)

// migrate brings the database to schemaVersion in one immediate transaction on
// the writer connection.
func migrate(ctx context.Context, c *sql.Conn) (err error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = c.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	// meta may not exist yet: then the version is 0.
	var n int
	if err := c.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'`).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: read schema: %w", err)
	}
	version := 0
	if n == 1 {
		var v string
		err := c.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaSchemaVersion).Scan(&v)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("sqlite: read schema version: %w", err)
		default:
			if version, err = strconv.Atoi(v); err != nil {
				return fmt.Errorf("sqlite: bad schema version %q: %w", v, err)
			}
		}
	}
	if version > schemaVersion {
		return fmt.Errorf("sqlite: database schema version %d is newer than this build supports (%d): use a newer daodian", version, schemaVersion)
	}
	for v := version; v < schemaVersion; v++ {
		for _, stmt := range migrations[v] {
			if m := addColumnRE.FindStringSubmatch(stmt); m != nil {
				var n int
				if err := c.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, m[1], m[2]).Scan(&n); err != nil {
					return fmt.Errorf("sqlite: migration to version %d: %w", v+1, err)
				}
				if n > 0 {
					continue
				}
			}
			if _, err := c.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("sqlite: migration to version %d: %w", v+1, err)
			}
		}
		if fn := migrationFuncs[v]; fn != nil {
			if err := fn(ctx, c); err != nil {
				return fmt.Errorf("sqlite: migration to version %d: %w", v+1, err)
			}
		}
	}
	if version != schemaVersion {
		if _, err := c.ExecContext(ctx,
			`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
			metaSchemaVersion, strconv.Itoa(schemaVersion)); err != nil {
			return fmt.Errorf("sqlite: write schema version: %w", err)
		}
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlite: commit migration: %w", err)
	}
	return nil
}
