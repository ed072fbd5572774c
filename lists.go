package daodian

import "context"

// Listings of merchants, shops and apps, for the admin API and the console
// (SPEC §10). Each is bounded: a listing holds at most MaxListed entries and
// says when there were more.

// MaxListed bounds the entries of one listing of merchants, shops or apps.
const MaxListed = 1000

// Merchants returns the merchants in id order, at most MaxListed; more is set
// when there are others after them.
func (l *Ledger) Merchants(ctx context.Context) (list []Merchant, more bool, err error) {
	err = l.store.View(ctx, func(tx ReadTx) error {
		list, err = tx.Merchants(ctx, MaxListed+1)
		return err
	})
	return cut(list, err)
}

// Shops returns the shops of a merchant in shop id order, at most MaxListed;
// more is set when there are others after them. A merchant without shops, or
// one that does not exist, has none.
func (l *Ledger) Shops(ctx context.Context, merchantID string) (list []Shop, more bool, err error) {
	if err := checkText("merchant", merchantID, true, MaxNameLen); err != nil {
		return nil, false, err
	}
	err = l.store.View(ctx, func(tx ReadTx) error {
		list, err = tx.Shops(ctx, merchantID, MaxListed+1)
		return err
	})
	return cut(list, err)
}

// Apps returns the apps bound to merchantID ("" for every app) in key order,
// at most MaxListed, without their secrets; more is set when there are others
// after them.
func (l *Ledger) Apps(ctx context.Context, merchantID string) (list []App, more bool, err error) {
	if err := checkText("merchant", merchantID, false, MaxNameLen); err != nil {
		return nil, false, err
	}
	err = l.store.View(ctx, func(tx ReadTx) error {
		list, err = tx.Apps(ctx, merchantID, MaxListed+1)
		return err
	})
	return cut(list, err)
}

// cut keeps the first MaxListed entries of a listing read with one more.
func cut[T any](list []T, err error) ([]T, bool, error) {
	if err != nil {
		return nil, false, err
	}
	if len(list) > MaxListed {
		return list[:MaxListed], true, nil
	}
	return list, false, nil
}

// Merchant returns the merchant with the id, or ErrNotFound.
func (l *Ledger) Merchant(ctx context.Context, id string) (*Merchant, error) {
	var m *Merchant
	err := l.store.View(ctx, func(tx ReadTx) error {
		var err error
		m, err = tx.Merchant(ctx, id)
		return err
	})
	return m, err
}
