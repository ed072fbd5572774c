package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"slices"

	"github.com/daodian/daodian"
)

// Listings (daodian/lists.go) are read by the admin API and the console, not
// by the gateway: like admin tokens, their statements are prepared for each
// use. Keys are TEXT with the default BINARY collation, so ORDER BY is byte
// order.
const (
	sqlMerchants = `SELECT id, name FROM merchants ORDER BY id LIMIT ?`
	sqlShops     = `SELECT shop_id, name FROM shops WHERE merchant_id = ? ORDER BY shop_id LIMIT ?`
	// The merchants of an app are in its doc: the walk decodes each app and
	// stops once it has limit of the merchant's.
	sqlApps = `SELECT key, previous_secret_until, created_at, doc FROM apps ORDER BY key`
)

// errListFull stops the walk of the apps once the listing is full.
var errListFull = errors.New("listing full")

func (t *readTx) Merchants(ctx context.Context, limit int) ([]daodian.Merchant, error) {
	var out []daodian.Merchant
	err := t.queryEach(ctx, sqlMerchants, 2, func(row []driver.Value) error {
		out = append(out, daodian.Merchant{ID: asStr(row[0]), Name: asStr(row[1])})
		return nil
	}, int64(limit))
	return out, err
}

func (t *readTx) Shops(ctx context.Context, merchantID string, limit int) ([]daodian.Shop, error) {
	var out []daodian.Shop
	err := t.queryEach(ctx, sqlShops, 2, func(row []driver.Value) error {
		out = append(out, daodian.Shop{MerchantID: merchantID, ID: asStr(row[0]), Name: asStr(row[1])})
		return nil
	}, merchantID, int64(limit))
	return out, err
}

func (t *readTx) Apps(ctx context.Context, merchantID string, limit int) ([]daodian.App, error) {
	var out []daodian.App
	err := t.queryEach(ctx, sqlApps, 4, func(row []driver.Value) error {
		a, err := decodeApp(asStr(row[0]), asInt(row[2]), asBytes(row[3]))
		if err != nil {
			return &walkError{err}
		}
		if merchantID != "" && !slices.Contains(a.Merchants, merchantID) {
			return nil
		}
		a.PreviousSecretUntil = fromMicros(asInt(row[1]))
		out = append(out, *a)
		if len(out) == limit {
			return &walkError{errListFull}
		}
		return nil
	})
	if errors.Is(err, errListFull) {
		err = nil
	}
	return out, err
}
