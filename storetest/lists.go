package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// testListings: merchants, shops and apps are listed in byte order of their
// keys, at most the limit asked for; apps by merchant (a multi-merchant app
// under each of its merchants) and without their secrets.
func testListings(t *testing.T, f Factory) {
	s := f.Open(t)
	until := at(40)
	apps := []*daodian.App{
		{Key: "app-3", Secret: "secret-three", Name: "三号", Merchants: []string{"M001"}, Enabled: true, CreatedAt: at(3)},
		{Key: "app-1", Secret: "secret-one", Name: "POS 收银", Merchants: []string{"M002", "M001"}, Enabled: true,
			Methods: []string{"taobao.time.get"}, RateLimitPerS: 5, CreatedAt: at(1)},
		{Key: "app-2", Secret: "secret-two", Name: "two", Merchants: []string{"M002"}, CreatedAt: at(2)},
		// Upper case sorts before lower case in byte order, not in a locale's.
		{Key: "App-0", Secret: "secret-zero", Name: "zero", Merchants: []string{"M010"}, Enabled: true, CreatedAt: at(4)},
	}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, n := range []int{2, 10, 1} {
			if err := tx.PutMerchant(ctx, merchant(n)); err != nil {
				return err
			}
		}
		for _, sh := range []daodian.Shop{{MerchantID: "M001", ID: "shop-b", Name: "B 店"}, {MerchantID: "M001", ID: "Shop-z", Name: "Z"},
			{MerchantID: "M001", ID: "shop-a", Name: "A 店"}, {MerchantID: "M002", ID: "shop-a", Name: "other"}} {
			if err := tx.InsertShop(ctx, &sh); err != nil {
				return err
			}
		}
		for _, a := range apps {
			if err := tx.InsertApp(ctx, a); err != nil {
				return err
			}
		}
		// A rotation's grace is listed; its secrets are not.
		return tx.SetAppSecrets(ctx, &daodian.App{Key: "app-1", Secret: "secret-one-b", PreviousSecret: "secret-one", PreviousSecretUntil: until})
	})
	listed := func(a *daodian.App) daodian.App {
		v := *a
		v.Secret, v.PreviousSecret = "", ""
		if v.Key == "app-1" {
			v.PreviousSecretUntil = until
		}
		return v
	}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		ms, err := tx.Merchants(ctx, 10)
		if err != nil {
			return err
		}
		same(t, "Merchants", []daodian.Merchant{*merchant(1), *merchant(2), *merchant(10)}, ms)
		if ms, err = tx.Merchants(ctx, 2); err != nil {
			return err
		}
		same(t, "Merchants(limit 2)", []daodian.Merchant{*merchant(1), *merchant(2)}, ms)

		shops, err := tx.Shops(ctx, "M001", 10)
		if err != nil {
			return err
		}
		same(t, "Shops(M001)", []daodian.Shop{{MerchantID: "M001", ID: "Shop-z", Name: "Z"},
			{MerchantID: "M001", ID: "shop-a", Name: "A 店"}, {MerchantID: "M001", ID: "shop-b", Name: "B 店"}}, shops)
		if shops, err = tx.Shops(ctx, "M001", 1); err != nil {
			return err
		}
		same(t, "Shops(M001, limit 1)", []daodian.Shop{{MerchantID: "M001", ID: "Shop-z", Name: "Z"}}, shops)
		if shops, err = tx.Shops(ctx, "M999", 10); err != nil || len(shops) != 0 {
			t.Errorf("Shops(M999) = %v, %v; want none", shops, err)
		}

		all, err := tx.Apps(ctx, "", 10)
		if err != nil {
			return err
		}
		same(t, "Apps", []daodian.App{listed(apps[3]), listed(apps[1]), listed(apps[2]), listed(apps[0])}, all)
		m1, err := tx.Apps(ctx, "M001", 10)
		if err != nil {
			return err
		}
		same(t, "Apps(M001)", []daodian.App{listed(apps[1]), listed(apps[0])}, m1)
		if m1, err = tx.Apps(ctx, "M001", 1); err != nil {
			return err
		}
		same(t, "Apps(M001, limit 1)", []daodian.App{listed(apps[1])}, m1)
		m2, err := tx.Apps(ctx, "M002", 10)
		if err != nil {
			return err
		}
		same(t, "Apps(M002)", []daodian.App{listed(apps[1]), listed(apps[2])}, m2)
		if none, err := tx.Apps(ctx, "M999", 10); err != nil || len(none) != 0 {
			t.Errorf("Apps(M999) = %v, %v; want none", none, err)
		}
		return nil
	})
}

// testLedgerListings: the Ledger's listings stop at daodian.MaxListed and say
// there are more; a merchant that is not text is refused.
func testLedgerListings(t *testing.T, f Factory) {
	s := f.Open(t)
	l := daodian.NewLedger(s, daodian.Config{Clock: func() time.Time { return at(0) }})
	ctx := ctxT(t)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for i := range daodian.MaxListed + 1 {
			if err := tx.InsertShop(ctx, &daodian.Shop{MerchantID: "M001", ID: fmt.Sprintf("shop-%04d", i), Name: "x"}); err != nil {
				return err
			}
		}
		return tx.PutMerchant(ctx, merchant(1))
	})
	shops, more, err := l.Shops(ctx, "M001")
	if err != nil || !more || len(shops) != daodian.MaxListed || shops[0].ID != "shop-0000" || shops[len(shops)-1].ID != fmt.Sprintf("shop-%04d", daodian.MaxListed-1) {
		t.Errorf("Shops over the bound: %d shops, more %v, %v", len(shops), more, err)
	}
	ms, more, err := l.Merchants(ctx)
	if err != nil || more || len(ms) != 1 {
		t.Errorf("Merchants: %v, more %v, %v", ms, more, err)
	}
	if _, _, err := l.Apps(ctx, "M\x01"); !isInvalid(err) {
		t.Errorf("Apps(control character) = %v, want an invalid parameter", err)
	}
	if _, _, err := l.Shops(ctx, ""); !isInvalid(err) {
		t.Errorf("Shops(\"\") = %v, want an invalid parameter", err)
	}
}
