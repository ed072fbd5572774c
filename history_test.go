package daodian_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
)

// TestHistoryShopFilter: a statement or a records query naming a shop the
// merchant does not have (a typo, another merchant's shop) is ErrNoSuchShop — also
// ErrNotFound — rather than an empty answer that looks like a quiet day; an
// unknown merchant is ErrNotFound and not ErrNoSuchShop; a shop of the merchant
// with nothing yet answers empty.
func TestHistoryShopFilter(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := storetest.NewWorld(t, s)
	if err := w.Ledger.AddShop(w.Ctx, daodian.Shop{MerchantID: storetest.M1, ID: "quiet"}); err != nil {
		t.Fatal(err)
	}
	tk := w.Issue(1, 1).Tickets[0]
	w.MustUse(w.A, tk.Code, 1, "u1")
	day := daodian.DayString(daodian.Day(w.Clock.Now()))
	for _, c := range []struct {
		merchant, shop string
		want           error
	}{
		{storetest.M1, "no-such-shop", daodian.ErrNoSuchShop},
		{storetest.M1, storetest.S2, daodian.ErrNoSuchShop}, // M2's
		{"no-such-merchant", storetest.S1, daodian.ErrNotFound},
		{"no-such-merchant", "", daodian.ErrNotFound},
		{storetest.M1, "quiet", nil},
		{storetest.M1, storetest.S1, nil},
	} {
		st, err := w.Ledger.Statement(w.Ctx, c.merchant, day, c.shop)
		p, perr := w.Ledger.Records(w.Ctx, daodian.RecordQuery{MerchantID: c.merchant, ShopID: c.shop}, "")
		for what, got := range map[string]error{"statement": err, "records": perr} {
			if !errors.Is(got, c.want) || (c.want == daodian.ErrNotFound && errors.Is(got, daodian.ErrNoSuchShop)) {
				t.Errorf("%s of %s/%s: %v, want %v", what, c.merchant, c.shop, got, c.want)
			}
		}
		if c.want != nil {
			continue
		}
		wantUses, wantRecords := int64(0), 0
		if c.shop == storetest.S1 {
			wantUses, wantRecords = 1, 1
		}
		if st.Total.Uses != wantUses || len(p.Records) != wantRecords {
			t.Errorf("shop %s: %d uses, %d records; want %d, %d", c.shop, st.Total.Uses, len(p.Records), wantUses, wantRecords)
		}
	}
}
