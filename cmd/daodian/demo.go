package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/daodian/daodian"
)

// Demo data names.
const (
	demoMerchant = "demo-merchant"
	demoShop     = "demo-shop"
)

// demo is what --demo seeded, for printing.
type demo struct {
	app   *daodian.App
	group *daodian.Issued // a group-buy order of two vouchers
	card  *daodian.Issued // a 5-times card
}

// seedDemo fills an empty ledger with a merchant, a shop, an app and tickets. On a
// ledger that already has apps it seeds nothing and returns nil: demo data must
// never be mixed into a real ledger.
func seedDemo(ctx context.Context, l *daodian.Ledger) (*demo, error) {
	var n daodian.Counts
	err := l.Store().View(ctx, func(tx daodian.ReadTx) error {
		var err error
		n, err = tx.Counts(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if n.Apps > 0 || n.Tickets > 0 {
		return nil, nil
	}
	if err := l.AddShop(ctx, daodian.Shop{MerchantID: demoMerchant, ID: demoShop, Name: "演示门店"}); err != nil {
		return nil, err
	}
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "demo-pos", MerchantID: demoMerchant})
	if err != nil {
		return nil, err
	}
	group, err := l.Issue(ctx, daodian.IssueRequest{
		MerchantID: demoMerchant, Count: 2, Quantity: 1, ItemName: "双人套餐团购券",
		TotalAmountCents: 9900, RealAmountCents: 8800, OriginalPriceCents: 12800, UserPhone: "13800004139",
	})
	if err != nil {
		return nil, err
	}
	card, err := l.Issue(ctx, daodian.IssueRequest{
		MerchantID: demoMerchant, Count: 1, Quantity: 5, ItemName: "洗剪吹5次卡",
		TotalAmountCents: 25000, RealAmountCents: 22500, OriginalPriceCents: 30000, UserPhone: "13900001234",
	})
	if err != nil {
		return nil, err
	}
	return &demo{app: app, group: group, card: card}, nil
}

// print writes the demo credentials and ready-to-paste calls.
func (d *demo) print(w io.Writer, url string) {
	auth := fmt.Sprintf("--url %s --app-key %s --app-secret %s", url, d.app.Key, d.app.Secret)
	g0, g1, c := d.group.Tickets[0], d.group.Tickets[1], d.card.Tickets[0]
	var b strings.Builder
	fmt.Fprintf(&b, "demo data seeded (merchant %s, shop %s)\n", demoMerchant, demoShop)
	fmt.Fprintf(&b, "  app_key    %s\n  app_secret %s\n", d.app.Key, d.app.Secret)
	fmt.Fprintf(&b, "  group-buy order %s: ticket_id %s code %s; ticket_id %s code %s\n", d.group.Order.SubOrderNo, g0.ID, g0.Code, g1.ID, g1.Code)
	fmt.Fprintf(&b, "  5-times card: ticket_id %s code %s\n", c.ID, c.Code)
	fmt.Fprintf(&b, "try (in another terminal):\n")
	fmt.Fprintf(&b, "  daodian call taobao.time.get %s\n", auth)
	fmt.Fprintf(&b, "  daodian call alibaba.alsc.daodian.ticket.consult 'consult_request={\"request_id\":\"demo-c1\",\"shop_id\":\"%s\",\"ticket_code\":\"%s\"}' %s\n", demoShop, g0.Code, auth)
	fmt.Fprintf(&b, "  daodian call alibaba.alsc.merchant.ext.ticketcode.use 'use_request={\"ticket_code\":\"%s\",\"shop_id\":\"%s\",\"quantity\":2,\"ticket_request_id\":\"demo-u1\"}' %s\n", g0.Code, demoShop, auth)
	fmt.Fprintf(&b, "  daodian call alibaba.alsc.daodian.ticket.reserve 'ticket_reverse_top_request={\"request_id\":\"demo-r1\",\"ticket_id\":\"%s\"}' %s\n", g0.ID, auth)
	fmt.Fprintf(&b, "  daodian reverse --ticket-id %s %s\n", g1.ID, auth)
	_, _ = io.WriteString(w, b.String())
}
