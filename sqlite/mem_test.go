package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// memWorld is a ledger on a store with or without the writer's memory, with
// fixed apps, so that two of them given the same operations answer the same.
type memWorld struct {
	s      *Store
	l      *daodian.Ledger
	clock  *storetest.Clock
	apps   []*daodian.App
	issued []*daodian.Issued
}

func newMemWorld(t *testing.T, opts Options) *memWorld {
	s := openAt(t, tempPath(t), opts)
	w := &memWorld{s: s, clock: storetest.NewClock(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))}
	w.l = daodian.NewLedger(s, daodian.Config{Clock: w.clock.Now, ReverseWindow: time.Hour})
	ctx := context.Background()
	for _, sh := range []daodian.Shop{{MerchantID: "m1", ID: "s1"}, {MerchantID: "m2", ID: "s2"}} {
		if err := w.l.AddShop(ctx, sh); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range []string{"m1", "m1", "m2"} {
		app := daodian.App{Key: fmt.Sprintf("app-%d", i), Secret: "s", Name: "pos", Merchants: []string{m}, Enabled: true}
		storetest.InsertApp(t, s, app)
		w.apps = append(w.apps, &app)
	}
	return w
}

// TestMemDifferential: the same random operations — issues, uses (group-buys,
// too many units, wrong shops, late business times), reversals by id and by
// latest (empty ones leaving fences), refunds, replays and conflicting keys,
// time passing the reversal window — on a store whose writer decides from
// memory and on one that runs a statement per read and write get the same
// answers, and leave the same ledger and the same records.
func TestMemDifferential(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			// A small memory: tickets are dropped and read again as it runs.
			mem := newMemWorld(t, Options{MemoryTickets: 8})
			stm := newMemWorld(t, Options{MemoryTickets: -1})
			r := rand.New(rand.NewPCG(seed, 99))
			for step := range 600 {
				op, choices := r.IntN(100), r.Uint64()
				a := answerOf(mem, op, choices)
				b := answerOf(stm, op, choices)
				if a != b {
					t.Fatalf("step %d (op %d): memory answered\n%s\nstatements answered\n%s", step, op, a, b)
				}
			}
			if a, b := ledgerState(t, mem.s), ledgerState(t, stm.s); a != b {
				i := 0
				for i < len(a) && i < len(b) && a[i] == b[i] {
					i++
				}
				from := max(0, i-300)
				t.Fatalf("the two ledgers differ at byte %d:\nmemory     …%s\nstatements …%s", i, a[from:min(len(a), i+200)], b[from:min(len(b), i+200)])
			}
			for _, w := range []*memWorld{mem, stm} {
				rep, err := w.l.Audit(context.Background())
				if err != nil || len(rep.Violations) > 0 {
					t.Fatalf("audit: %v %v", err, rep.Violations)
				}
			}
		})
	}
}

// answerOf runs one random operation (op picks its kind, choices seeds the
// rest, so that two worlds given the same make the same) and renders its answer.
func answerOf(w *memWorld, op int, choices uint64) string {
	r := rand.New(rand.NewPCG(choices, 1))
	ctx := context.Background()
	app := w.apps[r.IntN(len(w.apps))]
	key := fmt.Sprintf("k%d", r.IntN(40)) // keys repeat: replays and conflicts
	pick := func() *daodian.Ticket {
		if len(w.issued) == 0 {
			return nil
		}
		o := w.issued[r.IntN(len(w.issued))]
		return &o.Tickets[r.IntN(len(o.Tickets))]
	}
	show := func(v any, err error) string {
		b, _ := json.Marshal(v)
		if err != nil {
			return fmt.Sprintf("%s error %v", withoutCodes(b), err)
		}
		return withoutCodes(b)
	}
	switch {
	case op < 12:
		m := "m1"
		if r.IntN(4) == 0 {
			m = "m2"
		}
		o, err := w.l.Issue(ctx, daodian.IssueRequest{MerchantID: m, Count: 1 + r.IntN(3), Quantity: 1 + r.IntN(3),
			TotalAmountCents: int64(r.IntN(10000)), ValidFrom: w.clock.Now().Add(-time.Hour), ValidTo: w.clock.Now().Add(48 * time.Hour)})
		if err == nil {
			w.issued = append(w.issued, o)
			return fmt.Sprintf("issued %d tickets", len(o.Tickets))
		}
		return show(nil, err)
	case op < 50:
		tk := pick()
		if tk == nil {
			return "none"
		}
		shop := "s1"
		if r.IntN(6) == 0 {
			shop = "s2"
		}
		var gmt time.Time
		if r.IntN(3) == 0 {
			gmt = w.clock.Now().Add(-time.Duration(r.IntN(120)) * time.Minute).Truncate(time.Second)
		}
		res, err := w.l.Use(ctx, app, daodian.UseRequest{TicketCode: tk.Code, ShopID: shop, Quantity: 1 + r.IntN(4), RequestID: key, GmtBiz: gmt})
		return show(res, err)
	case op < 80:
		tk := pick()
		if tk == nil {
			return "none"
		}
		req := daodian.ReverseRequest{RequestID: key, TicketID: tk.ID}
		if r.IntN(2) == 0 {
			// The latest use of the ticket, if any (read the same way in both).
			if u := latestUse(w, tk.ID); u != "" {
				req.TransID = u
			}
		}
		if r.IntN(4) == 0 {
			req.BizDate = w.clock.Now().Add(-time.Duration(r.IntN(60)) * time.Minute).Truncate(time.Second)
		}
		res, err := w.l.Reverse(ctx, app, req)
		return show(res, err)
	case op < 92:
		tk := pick()
		if tk == nil {
			return "none"
		}
		u := latestUse(w, tk.ID)
		if u == "" {
			u = "2100000000000999999"
		}
		res, err := w.l.Refund(ctx, app, daodian.RefundRequest{TransID: u, TicketCode: tk.Code, RequestID: key})
		return show(res, err)
	default:
		w.clock.Advance(time.Duration(r.IntN(40)) * time.Minute)
		return "time passes"
	}
}

// latestUse returns the highest transaction id of the ticket's uses, read from
// its timeline, or "".
func latestUse(w *memWorld, ticketID string) string {
	h, err := w.l.TicketHistory(context.Background(), ticketID, "", "")
	if err != nil {
		return ""
	}
	last := ""
	for _, r := range h.Timeline {
		if r.Kind == daodian.RecordUse {
			last = r.TransID
		}
	}
	return last
}

// ledgerState renders every ticket, use, idempotency record and record.
func ledgerState(t *testing.T, s *Store) string {
	t.Helper()
	var out []any
	err := s.View(context.Background(), func(tx daodian.ReadTx) error {
		ctx := context.Background()
		if err := tx.EachTicket(ctx, func(tk *daodian.Ticket) error { out = append(out, *tk); return nil }); err != nil {
			return err
		}
		if err := tx.EachUse(ctx, func(u *daodian.Use) error { out = append(out, *u); return nil }); err != nil {
			return err
		}
		if err := tx.EachIdem(ctx, func(r *daodian.IdemRecord) error {
			c := *r
			c.Fingerprint = "" // holds a ticket code; the answers are compared
			c.Answer = []byte(withoutCodes(c.Answer))
			out = append(out, c)
			return nil
		}); err != nil {
			return err
		}
		return tx.EachRecord(ctx, func(r *daodian.Record) error { out = append(out, *r); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return withoutCodes(b)
}

// codes matches ticket codes in JSON: random at issue, so the one thing two
// worlds given the same operations do not share.
var codes = regexp.MustCompile(`"(ticket_code|Code|TicketCode)":"[0-9]*"`)

func withoutCodes(b []byte) string { return codes.ReplaceAllString(string(b), `"code":""`) }

// TestMemOtherWriter: a process that writes the file beside the server (an
// admin command, here a Shared store in this process) is seen by the server's
// next batch: a use the other reversed is not reversed twice, and units it gave
// back are there to use.
func TestMemOtherWriter(t *testing.T) {
	path := tempPath(t)
	server := openAt(t, path, Options{})
	other := openAt(t, path, Options{Shared: true})
	w := storetest.NewWorld(t, server)
	ow := daodian.NewLedger(other, daodian.Config{Clock: w.Clock.Now})
	tk := w.Issue(1, 2).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 2, "u1") // the server now holds the ticket: 0 left
	rev, err := ow.Reverse(context.Background(), w.A, daodian.ReverseRequest{RequestID: "r-other", TicketID: tk.ID, TransID: u.TransID})
	if err != nil || !rev.Success {
		t.Fatalf("the other's reversal: %+v %v", rev, err)
	}
	// The server sees the units back and the use reversed.
	w.MustUse(w.A, tk.Code, 1, "u2")
	if r := w.Reverse(w.A, "r2", tk.ID, u.TransID); !r.Success {
		t.Fatalf("a reversal of the use the other reversed: %+v", r)
	}
	if got := w.Available(tk.ID); got != 1 {
		t.Fatalf("available %d, want 1 (2 given back by the other, 1 used since)", got)
	}
	w.Audit()
}

// TestMemBound: memory holds at most two generations of MemoryTickets tickets,
// whatever the number touched, and answers stay right as tickets are dropped
// and read again.
func TestMemBound(t *testing.T) {
	s := openAt(t, tempPath(t), Options{MemoryTickets: 4})
	w := storetest.NewWorld(t, s)
	o := w.Issue(daodian.MaxTicketsPerOrder, 2)
	for round := range 2 {
		for i, tk := range o.Tickets {
			u := w.MustUse(w.A, tk.Code, 1, fmt.Sprintf("u%d-%d", round, i))
			if round == 1 {
				if r := w.Reverse(w.A, fmt.Sprintf("r%d", i), tk.ID, u.TransID); !r.Success {
					t.Fatalf("%+v", r)
				}
			}
			held := 0
			if err := s.Update(context.Background(), func(daodian.Tx) error {
				held = len(s.w.mem.cur) + len(s.w.mem.prev)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if held > 2*4 {
				t.Fatalf("memory holds %d tickets, more than 2 × 4", held)
			}
		}
	}
	for _, tk := range o.Tickets {
		if got := w.Available(tk.ID); got != 1 {
			t.Fatalf("ticket %s: available %d, want 1", tk.ID, got)
		}
	}
	w.Audit()
}

// TestMemBatchFailure: a batch whose writes the file refuses fails whole, with
// a transient error, and memory forgets what the batch had decided: the same
// requests succeed afterwards, each once.
func TestMemBatchFailure(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{})
	w := storetest.NewWorld(t, s)
	tk := w.Issue(1, 3).Tickets[0]
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The file refuses one record: the batch that writes it fails.
	if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.request_id = 'doomed'
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	_, err = w.Use(w.A, tk.Code, 1, "doomed")
	if !errors.Is(err, daodian.ErrTransient) {
		t.Fatalf("a use whose batch the file refused: %v, want a transient error", err)
	}
	if got := w.Available(tk.ID); got != 3 {
		t.Fatalf("available %d after a failed batch, want 3", got)
	}
	if _, err := db.Exec(`DROP TRIGGER refuse`); err != nil {
		t.Fatal(err)
	}
	// Memory did not keep the failed use: the same request runs afresh, once.
	w.MustUse(w.A, tk.Code, 1, "doomed")
	w.MustUse(w.A, tk.Code, 1, "doomed") // a replay
	if got := w.Available(tk.ID); got != 2 {
		t.Fatalf("available %d, want 2", got)
	}
	w.Audit()
}
