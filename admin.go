package daodian

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// NewApp returns an app bound to one merchant with a fresh random key and secret of
// 128 bits each.
func NewApp(name, merchantID string, now time.Time) (*App, error) {
	if err := checkText("name", name, true, MaxNameLen); err != nil {
		return nil, err
	}
	if err := checkText("merchant", merchantID, true, MaxNameLen); err != nil {
		return nil, err
	}
	key, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	secret, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	return &App{Key: key, Secret: secret, Name: name, Merchants: []string{merchantID}, Enabled: true, CreatedAt: now.UTC()}, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// App returns the app with the key, or ErrNotFound.
func (l *Ledger) App(ctx context.Context, key string) (*App, error) {
	var app *App
	err := l.store.View(ctx, func(tx ReadTx) error {
		var err error
		app, err = tx.App(ctx, key)
		return err
	})
	return app, err
}

// Ping reports whether the ledger's store is reachable (and, on PostgreSQL,
// writable).
func (l *Ledger) Ping(ctx context.Context) error { return l.store.Ping(ctx) }

// Counts returns the number of rows of each ledger table.
func (l *Ledger) Counts(ctx context.Context) (Counts, error) {
	var n Counts
	err := l.store.View(ctx, func(tx ReadTx) error {
		var err error
		n, err = tx.Counts(ctx)
		return err
	})
	return n, err
}

// AppSpec describes an app to create.
type AppSpec struct {
	Name       string
	MerchantID string
	// Methods granted; empty means all.
	Methods []string
	// RateLimitPerS is calls per second per gateway process; 0 means unlimited.
	RateLimitPerS int
}

// CreateApp stores a new app bound to one merchant, creating the merchant if new.
func (l *Ledger) CreateApp(ctx context.Context, spec AppSpec) (*App, error) {
	app, err := NewApp(spec.Name, spec.MerchantID, l.cfg.Clock())
	if err != nil {
		return nil, err
	}
	if spec.RateLimitPerS < 0 {
		return nil, invalid("rate_limit", "must not be negative")
	}
	app.Methods = spec.Methods
	app.RateLimitPerS = spec.RateLimitPerS
	err = l.store.Update(ctx, func(tx Tx) error {
		if err := ensureMerchant(ctx, tx, spec.MerchantID); err != nil {
			return err
		}
		return tx.InsertApp(ctx, app)
	})
	if err != nil {
		return nil, err
	}
	return app, nil
}

// MaxSecretGrace bounds how long a rotated-out secret may keep signing: long
// enough to update every terminal of a fleet, short enough that a leaked secret
// does not outlive its rotation by much.
const MaxSecretGrace = 30 * 24 * time.Hour

// RotateAppSecret gives the app a new random secret and returns the app as
// stored. The secret it replaces keeps signing valid requests for grace (as
// PreviousSecret, until now+grace); with grace 0 it stops at once. Only the
// newest replaced secret is kept: rotating again within the grace ends the
// older one at once, so at most two secrets ever sign for an app. Gateways see
// the change when their app cache next reads the app (gateway.Config.AppCacheTTL).
func (l *Ledger) RotateAppSecret(ctx context.Context, appKey string, grace time.Duration) (*App, error) {
	if err := checkText("app_key", appKey, true, MaxNameLen); err != nil {
		return nil, err
	}
	if grace < 0 || grace > MaxSecretGrace {
		return nil, invalid("grace", fmt.Sprintf("must be between 0 and %s", MaxSecretGrace))
	}
	secret, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	now := l.cfg.Clock().UTC()
	var out *App
	err = l.store.Update(ctx, func(tx Tx) error {
		app, err := tx.App(ctx, appKey)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("app %q: %w", appKey, ErrNotFound)
		}
		if err != nil {
			return err
		}
		app.PreviousSecret, app.PreviousSecretUntil = "", time.Time{}
		if grace > 0 {
			app.PreviousSecret, app.PreviousSecretUntil = app.Secret, now.Add(grace)
		}
		app.Secret = secret
		out = app
		return tx.SetAppSecrets(ctx, app)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func ensureMerchant(ctx context.Context, tx Tx, id string) error {
	if _, err := tx.Merchant(ctx, id); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return tx.PutMerchant(ctx, &Merchant{ID: id, Name: id})
}

// AddShop registers a shop of a merchant, creating the merchant if new.
func (l *Ledger) AddShop(ctx context.Context, s Shop) error {
	if err := checkText("merchant", s.MerchantID, true, MaxNameLen); err != nil {
		return err
	}
	if err := checkText("shop_id", s.ID, true, MaxShopIDLen); err != nil {
		return err
	}
	if err := checkText("name", s.Name, false, MaxNameLen); err != nil {
		return err
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	return l.store.Update(ctx, func(tx Tx) error {
		if err := ensureMerchant(ctx, tx, s.MerchantID); err != nil {
			return err
		}
		return tx.InsertShop(ctx, &s)
	})
}

// IssueRequest describes one order of Count tickets of Quantity units each.
type IssueRequest struct {
	MerchantID string
	Count      int // tickets in the order (default 1)
	Quantity   int // units per ticket (default 1)
	ItemName   string
	ItemID     string // default: generated
	OutItemID  string
	// Per-ticket prices in cents. TotalAmountCents is what the buyer paid;
	// RealAmountCents (default = total) what the merchant receives;
	// OriginalPriceCents (default = total) the list price.
	TotalAmountCents   int64
	RealAmountCents    int64
	OriginalPriceCents int64
	ValidFrom          time.Time // default now
	ValidTo            time.Time // default ValidFrom + 30 days
	BuyerID            string
	UserPhone          string // masked on the way in
	Status             TicketStatus
}

// Issued is an order and its tickets as stored.
type Issued struct {
	Order   Order
	Tickets []Ticket
}

// MaxIssueCount bounds the tickets of one issued order.
const MaxIssueCount = MaxTicketsPerOrder

func (l *Ledger) normalizeIssue(r *IssueRequest, now time.Time) error {
	if err := checkText("merchant", r.MerchantID, true, MaxNameLen); err != nil {
		return err
	}
	if r.Count == 0 {
		r.Count = 1
	}
	if r.Quantity == 0 {
		r.Quantity = 1
	}
	if r.Count < 1 || r.Count > MaxIssueCount {
		return invalid("count", fmt.Sprintf("must be between 1 and %d", MaxIssueCount))
	}
	if r.Quantity < 1 || r.Quantity > MaxQuantity {
		return invalid("quantity", fmt.Sprintf("must be between 1 and %d", MaxQuantity))
	}
	if r.ItemName == "" {
		r.ItemName = "到店券"
	}
	if err := checkText("item_name", r.ItemName, true, MaxNameLen); err != nil {
		return err
	}
	if err := checkText("item_id", r.ItemID, false, MaxNameLen); err != nil {
		return err
	}
	if err := checkText("out_item_id", r.OutItemID, false, MaxNameLen); err != nil {
		return err
	}
	if err := checkText("buyer_id", r.BuyerID, false, MaxNameLen); err != nil {
		return err
	}
	const maxCents = 1_000_000_000_00 // one billion yuan: beyond any voucher
	for _, c := range []struct {
		name string
		v    *int64
	}{{"amount_cents", &r.TotalAmountCents}, {"real_amount_cents", &r.RealAmountCents}, {"original_price_cents", &r.OriginalPriceCents}} {
		if *c.v < 0 || *c.v > maxCents {
			return invalid(c.name, "must be between 0 and 100000000000")
		}
	}
	if r.RealAmountCents == 0 {
		r.RealAmountCents = r.TotalAmountCents
	}
	if r.OriginalPriceCents == 0 {
		r.OriginalPriceCents = r.TotalAmountCents
	}
	if r.RealAmountCents > r.TotalAmountCents {
		return invalid("real_amount_cents", "must not exceed amount_cents")
	}
	if r.ValidFrom.IsZero() {
		r.ValidFrom = now
	}
	if r.ValidTo.IsZero() {
		r.ValidTo = r.ValidFrom.Add(30 * 24 * time.Hour)
	}
	if !r.ValidTo.After(r.ValidFrom) {
		return invalid("valid_to", "must be after valid_from")
	}
	if r.Status == "" {
		r.Status = TicketValid
	}
	if !r.Status.Valid() {
		return invalid("status", "must be VALID, REFUNDED or CANCELLED")
	}
	r.UserPhone = MaskPhone(r.UserPhone)
	return nil
}

// MaskPhone keeps the last four digits of a phone number (e.g. *******4139), so the
// full number never enters the ledger.
func MaskPhone(p string) string {
	if p == "" {
		return ""
	}
	rs := []rune(p)
	if len(rs) <= 4 {
		return p
	}
	out := make([]rune, len(rs))
	for i := range rs {
		if i < len(rs)-4 {
			out[i] = '*'
		} else {
			out[i] = rs[i]
		}
	}
	return string(out)
}

// Issue creates one order with its tickets, creating the merchant if new.
func (l *Ledger) Issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	now := l.cfg.Clock()
	if err := l.normalizeIssue(&req, now); err != nil {
		return nil, err
	}
	out, err := l.issue(ctx, []IssueRequest{req}, now)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// MaxIssueMany bounds the orders of one IssueMany, which is one transaction.
const MaxIssueMany = 100_000

// IssueMany creates several orders in one transaction: all or none. Bulk import
// uses it to write many rows per durable commit.
func (l *Ledger) IssueMany(ctx context.Context, reqs []IssueRequest) ([]*Issued, error) {
	if len(reqs) > MaxIssueMany {
		return nil, invalid("orders", fmt.Sprintf("at most %d in one transaction", MaxIssueMany))
	}
	now := l.cfg.Clock()
	for i := range reqs {
		if err := l.normalizeIssue(&reqs[i], now); err != nil {
			return nil, fmt.Errorf("row %d: %w", i+1, err)
		}
	}
	return l.issue(ctx, reqs, now)
}

// issue writes normalized requests in one transaction.
func (l *Ledger) issue(ctx context.Context, reqs []IssueRequest, now time.Time) ([]*Issued, error) {
	var out []*Issued
	err := l.store.Update(ctx, func(tx Tx) error {
		// A batch is mostly a few merchants' orders: each is looked up (and
		// created if new) once per transaction, not once per order.
		merchants := make(map[string]bool)
		for i := range reqs {
			if !merchants[reqs[i].MerchantID] {
				if err := ensureMerchant(ctx, tx, reqs[i].MerchantID); err != nil {
					return err
				}
				merchants[reqs[i].MerchantID] = true
			}
		}
		var err error
		out, err = issueOrders(ctx, tx, reqs, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ValidateIssue checks an issue request without writing anything.
func (l *Ledger) ValidateIssue(req IssueRequest) error {
	return l.normalizeIssue(&req, l.cfg.Clock())
}

// issueOrders writes orders and their tickets, with a record of each ticket's
// issue; the merchants exist. The rows are written in bulk (Tx.InsertOrders,
// InsertTickets, AppendRecords), in chunks of at most MaxBulkRows, and
// identifiers are taken likewise: per order its order number, sub-order number
// and item id if generated, then its tickets' ids, all increasing, as if each
// were taken on its own. A ticket whose random code turns out taken is
// inserted again under fresh codes (insertWithFreshCode), before any record is
// appended, so the records follow the tickets' order whatever collided.
func issueOrders(ctx context.Context, tx Tx, reqs []IssueRequest, now time.Time) ([]*Issued, error) {
	nIDs, nTickets := 0, 0
	for i := range reqs {
		nIDs += 2 + reqs[i].Count
		if reqs[i].ItemID == "" {
			nIDs++
		}
		nTickets += reqs[i].Count
	}
	ids := make([]string, 0, nIDs)
	for len(ids) < nIDs {
		more, err := tx.NewIDs(ctx, min(nIDs-len(ids), MaxBulkRows))
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...)
	}
	next := func() string {
		id := ids[0]
		ids = ids[1:]
		return id
	}
	orders := make([]Order, len(reqs))
	tickets := make([]Ticket, 0, nTickets)
	for i := range reqs {
		req := &reqs[i]
		orderNo, subNo := next(), next()
		itemID := req.ItemID
		if itemID == "" {
			itemID = next()
		}
		o := Order{
			OrderNo: orderNo, SubOrderNo: subNo, MerchantID: req.MerchantID, BuyerID: req.BuyerID,
			UserPhone: req.UserPhone, ItemID: itemID, OutItemID: req.OutItemID, ItemName: req.ItemName,
			OriginalPriceCents: req.OriginalPriceCents, TotalAmountCents: req.TotalAmountCents,
			RealAmountCents: req.RealAmountCents, CreatedAt: now,
		}
		if o.BuyerID == "" {
			o.BuyerID = "2088" + subNo[len(subNo)-12:]
		}
		orders[i] = o
		for range req.Count {
			code, err := NewTicketCode()
			if err != nil {
				return nil, err
			}
			tickets = append(tickets, Ticket{
				ID: next(), Code: code, MerchantID: req.MerchantID, OrderNo: orderNo, SubOrderNo: subNo,
				ItemID: itemID, OutItemID: req.OutItemID, ItemName: req.ItemName,
				Quantity: req.Quantity, Available: req.Quantity,
				OriginalPriceCents: req.OriginalPriceCents, TotalAmountCents: req.TotalAmountCents,
				RealAmountCents: req.RealAmountCents, ValidFrom: req.ValidFrom, ValidTo: req.ValidTo,
				Status: req.Status, CreatedAt: now,
			})
		}
	}
	for c := range chunks(len(orders)) {
		if err := tx.InsertOrders(ctx, orders[c.from:c.to]); err != nil {
			return nil, err
		}
	}
	for c := range chunks(len(tickets)) {
		taken, err := tx.InsertTickets(ctx, tickets[c.from:c.to])
		if err != nil {
			return nil, err
		}
		for _, i := range taken {
			// Its first code was tried in the bulk insert.
			if err := insertWithFreshCode(ctx, tx, &tickets[c.from+i], codeTries-1); err != nil {
				return nil, err
			}
		}
	}
	records := make([]Record, 0, min(len(tickets), MaxBulkRows))
	for c := range chunks(len(tickets)) {
		records = records[:0]
		for i := c.from; i < c.to; i++ {
			t := &tickets[i]
			// An issue is an administrator's act: no app, no request id.
			records = append(records, Record{
				At: now, Kind: RecordIssue, MerchantID: t.MerchantID, TicketID: t.ID, Units: t.Quantity,
				BuyerPayCents: t.TotalAmountCents, ReceiptCents: t.RealAmountCents,
			})
		}
		if err := tx.AppendRecords(ctx, records); err != nil {
			return nil, err
		}
	}
	out := make([]*Issued, len(reqs))
	for i := range reqs {
		n := reqs[i].Count
		out[i] = &Issued{Order: orders[i], Tickets: tickets[:n:n]}
		tickets = tickets[n:]
	}
	return out, nil
}

// MaxBulkRows bounds the rows of one bulk write of a Tx (InsertOrders,
// InsertTickets, AppendRecords, NewIDs), so that each statement a store sends
// for it stays far inside the store's statement timeout.
const MaxBulkRows = 10_000

// span is the half-open range [from, to) of a slice.
type span struct{ from, to int }

// chunks yields the spans of at most MaxBulkRows that cover [0, n).
func chunks(n int) func(yield func(span) bool) {
	return func(yield func(span) bool) {
		for from := 0; from < n; from += MaxBulkRows {
			if !yield(span{from, min(from+MaxBulkRows, n)}) {
				return
			}
		}
	}
}

// codeTries bounds the codes tried for one ticket; with 9·10¹¹ codes a
// collision is rare until the space is nearly full.
const codeTries = 16

// insertWithFreshCode inserts the ticket under a random code, drawing again
// when the code is taken, at most tries times. The store's unique index on
// codes tells (InsertTicket reports ErrDuplicate and writes nothing): looking
// each code up first would cost a second index descent per ticket. The
// ticket's id is fresh, so a duplicate can only be its code.
func insertWithFreshCode(ctx context.Context, tx Tx, t *Ticket, tries int) error {
	for range tries {
		code, err := NewTicketCode()
		if err != nil {
			return err
		}
		t.Code = code
		err = tx.InsertTicket(ctx, t)
		if !errors.Is(err, ErrDuplicate) {
			return err
		}
	}
	t.Code = ""
	return errors.New("could not find a free ticket code")
}

// Ticket codes are 12 digits with a first digit other than zero: codeBase plus
// a number below codeSpace.
const (
	codeBase  = 100_000_000_000
	codeSpace = 900_000_000_000
	// codeLimit is the largest multiple of codeSpace a uint64 holds: a draw at
	// or above it is rejected, so that every code is equally likely.
	codeLimit = math.MaxUint64 - math.MaxUint64%codeSpace
)

// NewTicketCode returns a random 12-digit ticket code (first digit not zero), so
// codes cannot be guessed from each other.
func NewTicketCode() (string, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		if n := binary.LittleEndian.Uint64(b[:]); n < codeLimit {
			return strconv.FormatUint(codeBase+n%codeSpace, 10), nil
		}
	}
}
