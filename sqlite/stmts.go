package sqlite

import (
	"context"
	"strconv"

	"github.com/daodian/daodian"
)

// readStmts are prepared on every connection.
type readStmts struct {
	idem, ticket, ticketByCode, ticketMerchant, subOrder, order, use, groupUse,
	latestActive, activeUnits, fence, shop, app, merchant, counts, ping *stmt
}

// writeStmts are prepared on the writer connection only.
type writeStmts struct {
	begin, commit, rollback, savepoint, rollbackTo, release,
	putIdem, setAvailable, insertUse, markReversed, markRefunded, putFence,
	putMerchant, insertShop, insertApp, updateApp, setAppSecrets, insertOrder, insertTicket,
	getMeta, raiseIDLimit, insertRecord *stmt
	// memory's (mem.go)
	activeUses, ticketFences, maxRecord, dataVersion *stmt
}

const (
	ticketCols = `available, doc`
	useCols    = `doc, reversal, refund`
	idemCols   = `app_key, op, request_id, fingerprint, ticket_id, answer, created_at`

	// sqlGroupUse finds the use of ticket ?2 made by the group-buy use ?1: the
	// group's first use by its primary key (its id is the group's), or a later
	// one in the partial index uses_group, which holds only those (version 8).
	// The lowest id wins, as when one index held every use.
	sqlGroupUse = `SELECT ` + useCols + ` FROM uses WHERE trans_id = (SELECT min(trans_id) FROM (
		SELECT trans_id FROM uses WHERE trans_id = ?1 AND group_trans_id = ?1 AND ticket_id = ?2
		UNION ALL
		SELECT trans_id FROM uses WHERE group_trans_id = ?1 AND ticket_id = ?2 AND group_trans_id <> trans_id))`

	sqlEachTicket = `SELECT ` + ticketCols + ` FROM tickets ORDER BY id`
	sqlEachUse    = `SELECT ` + useCols + ` FROM uses ORDER BY trans_id`
	sqlEachIdem   = `SELECT ` + idemCols + ` FROM idem ORDER BY app_key, op, request_id`
)

// readBegin starts a View's read transaction: deferred, so the snapshot is
// taken at its first read and held until the end.
const (
	sqlReadBegin = `BEGIN`
	sqlReadEnd   = `ROLLBACK`
	// sqlCheckpoint answers (busy, WAL frames, frames checkpointed).
	sqlCheckpoint = `PRAGMA wal_checkpoint(PASSIVE)`
)

func (s *session) prepareRead(ctx context.Context) error {
	for _, p := range []struct {
		dst  **stmt
		text string
	}{
		{&s.r.idem, `SELECT fingerprint, ticket_id, answer, created_at FROM idem WHERE app_key = ? AND op = ? AND request_id = ?`},
		{&s.r.ticket, `SELECT ` + ticketCols + ` FROM tickets WHERE id = ?`},
		{&s.r.ticketByCode, `SELECT ` + ticketCols + ` FROM tickets WHERE code = ?`},
		{&s.r.ticketMerchant, `SELECT merchant_id FROM tickets WHERE id = ?`},
		{&s.r.subOrder, `SELECT ` + ticketCols + ` FROM tickets WHERE sub_order_no = ? ORDER BY id LIMIT ` +
			strconv.Itoa(daodian.MaxTicketsPerOrder+1)},
		{&s.r.order, `SELECT doc FROM orders WHERE sub_order_no = ?`},
		{&s.r.use, `SELECT ` + useCols + ` FROM uses WHERE trans_id = ?`},
		{&s.r.groupUse, sqlGroupUse},
		// "Latest" is the highest transaction id: ids are handed out in commit
		// order by the single writer, and all have 19 digits, so text order is
		// numeric order. reversed = 0 selects the partial index uses_active.
		{&s.r.latestActive, `SELECT ` + useCols + ` FROM uses WHERE ticket_id = ? AND app_key = ? AND reversed = 0 ORDER BY trans_id DESC LIMIT 1`},
		{&s.r.activeUnits, `SELECT coalesce(sum(units), 0) FROM uses WHERE ticket_id = ? AND reversed = 0`},
		{&s.r.fence, `SELECT at, request_id, created_at FROM fences WHERE ticket_id = ? AND app_key = ?`},
		{&s.r.shop, `SELECT name FROM shops WHERE merchant_id = ? AND shop_id = ?`},
		{&s.r.app, `SELECT secret, previous_secret, previous_secret_until, created_at, doc FROM apps WHERE key = ?`},
		{&s.r.merchant, `SELECT name FROM merchants WHERE id = ?`},
		{&s.r.counts, `SELECT (SELECT count(*) FROM apps), (SELECT count(*) FROM merchants),
			(SELECT count(*) FROM shops), (SELECT count(*) FROM orders), (SELECT count(*) FROM tickets),
			(SELECT count(*) FROM uses), (SELECT count(*) FROM fences), (SELECT count(*) FROM idem),
			(SELECT count(*) FROM records)`},
		{&s.r.ping, `SELECT value FROM meta WHERE key = '` + metaSchemaVersion + `'`},
	} {
		st, err := s.prepare(ctx, p.text)
		if err != nil {
			return err
		}
		*p.dst = st
	}
	return nil
}

func (s *session) prepareWrite(ctx context.Context) error {
	s.w = new(writeStmts)
	for _, p := range []struct {
		dst  **stmt
		text string
	}{
		// IMMEDIATE takes the write lock at once, so the batch never fails
		// half-way on a lock upgrade.
		{&s.w.begin, `BEGIN IMMEDIATE`},
		{&s.w.commit, `COMMIT`},
		{&s.w.rollback, `ROLLBACK`},
		{&s.w.savepoint, `SAVEPOINT op`},
		{&s.w.rollbackTo, `ROLLBACK TO op`},
		{&s.w.release, `RELEASE op`},
		{&s.w.putIdem, `INSERT INTO idem (` + idemCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&s.w.setAvailable, `UPDATE tickets SET available = ? WHERE id = ?`},
		{&s.w.insertUse, `INSERT INTO uses (trans_id, group_trans_id, ticket_id, app_key, units, reversed, refunded, doc, reversal, refund)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.w.markReversed, `UPDATE uses SET reversed = ?, reversal = ? WHERE trans_id = ?`},
		{&s.w.markRefunded, `UPDATE uses SET refunded = ?, refund = ? WHERE trans_id = ?`},
		{&s.w.putFence, `INSERT INTO fences (ticket_id, app_key, at, request_id, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (ticket_id, app_key) DO UPDATE SET at = excluded.at, request_id = excluded.request_id, created_at = excluded.created_at`},
		{&s.w.putMerchant, `INSERT INTO merchants (id, name) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name`},
		{&s.w.insertShop, `INSERT INTO shops (merchant_id, shop_id, name) VALUES (?, ?, ?)`},
		{&s.w.insertApp, `INSERT INTO apps (key, secret, previous_secret, previous_secret_until, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.w.updateApp, `UPDATE apps SET doc = ? WHERE key = ?`},
		{&s.w.setAppSecrets, `UPDATE apps SET secret = ?, previous_secret = ?, previous_secret_until = ? WHERE key = ?`},
		{&s.w.insertOrder, `INSERT INTO orders (sub_order_no, order_no, merchant_id, doc) VALUES (?, ?, ?, ?)`},
		{&s.w.insertTicket, `INSERT INTO tickets (id, code, merchant_id, sub_order_no, quantity, available, doc) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&s.w.getMeta, `SELECT value FROM meta WHERE key = ?`},
		{&s.w.insertRecord, sqlInsertRecord},
		{&s.w.activeUses, `SELECT ` + useCols + ` FROM uses WHERE ticket_id = ? AND reversed = 0 ORDER BY trans_id`},
		{&s.w.ticketFences, `SELECT app_key, at, request_id, created_at FROM fences WHERE ticket_id = ?`},
		{&s.w.maxRecord, `SELECT coalesce(max(id), 0) FROM records`},
		{&s.w.dataVersion, `PRAGMA data_version`},
		// Never lowers the mark another Store on the file may have raised. The
		// values are decimal strings of 19 digits (20 at exhaustion), compared
		// as such: they may exceed SQLite's 64-bit signed integers.
		{&s.w.raiseIDLimit, `INSERT INTO meta (key, value) VALUES ('` + metaIDLimit + `', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value
			WHERE length(excluded.value) > length(meta.value)
			OR (length(excluded.value) = length(meta.value) AND excluded.value > meta.value)`},
	} {
		st, err := s.prepare(ctx, p.text)
		if err != nil {
			return err
		}
		*p.dst = st
	}
	return nil
}
