package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/daodian/daodian"
)

// Listings (daodian/lists.go), for the admin API and the console. COLLATE "C"
// orders by bytes whatever the database's collation, as the embedded store
// does. The apps of a merchant are those whose merchants array holds it; the
// listing reads no secret.
const (
	sqlMerchants = `SELECT id, name FROM merchants ORDER BY id COLLATE "C" LIMIT $1`
	sqlShops     = `SELECT shop_id, name FROM shops WHERE merchant_id = $1 ORDER BY shop_id COLLATE "C" LIMIT $2`
	sqlApps      = `SELECT key, previous_secret_until, name, merchants, enabled, methods, rate_limit_per_s, created_at
	FROM apps WHERE $1 = '' OR $1 = ANY (merchants) ORDER BY key COLLATE "C" LIMIT $2`
)

// Merchants returns at most limit merchants in id order.
func (t *pgTx) Merchants(ctx context.Context, limit int) ([]daodian.Merchant, error) {
	return list(ctx, t, "merchants", sqlMerchants, func(r pgx.Rows) (daodian.Merchant, error) {
		var m daodian.Merchant
		err := r.Scan(&m.ID, &m.Name)
		m.ID, m.Name = unesc(m.ID), unesc(m.Name)
		return m, err
	}, limit)
}

// Shops returns at most limit shops of a merchant in shop id order.
func (t *pgTx) Shops(ctx context.Context, merchantID string, limit int) ([]daodian.Shop, error) {
	return list(ctx, t, "shops", sqlShops, func(r pgx.Rows) (daodian.Shop, error) {
		s := daodian.Shop{MerchantID: merchantID}
		err := r.Scan(&s.ID, &s.Name)
		s.ID, s.Name = unesc(s.ID), unesc(s.Name)
		return s, err
	}, esc(merchantID), limit)
}

// Apps returns at most limit apps bound to merchantID ("" for any) in key
// order, without their secrets.
func (t *pgTx) Apps(ctx context.Context, merchantID string, limit int) ([]daodian.App, error) {
	return list(ctx, t, "apps", sqlApps, func(r pgx.Rows) (daodian.App, error) {
		var a daodian.App
		var created, until pgtype.Timestamptz
		err := r.Scan(&a.Key, &until, &a.Name, &a.Merchants, &a.Enabled, &a.Methods, &a.RateLimitPerS, &created)
		a.Key, a.Name = unesc(a.Key), unesc(a.Name)
		a.Merchants, a.Methods = unescList(a.Merchants), unescList(a.Methods)
		a.CreatedAt, a.PreviousSecretUntil = fromTS(created), fromTS(until)
		return a, err
	}, esc(merchantID), limit)
}

// list reads the rows of a listing query.
func list[T any](ctx context.Context, t *pgTx, what, sql string, scan func(pgx.Rows) (T, error), args ...any) ([]T, error) {
	rows, err := t.query(ctx, sql, args...)
	if err != nil {
		return nil, wrapErr(what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, wrapErr(what, err)
		}
		out = append(out, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrapErr(what, err)
	}
	return out, nil
}
