package postgres

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// recordKey names a record by what it tells, whatever its id.
func recordKey(r daodian.Record) string {
	return string(r.Kind) + "/" + r.TicketID + "/" + r.TransID + "/" + r.RequestID
}

// pageAll lists a merchant's records through the ledger from the first page to
// the last.
func pageAll(t *testing.T, l *daodian.Ledger, limit int) []daodian.Record {
	t.Helper()
	var all []daodian.Record
	cursor := ""
	for {
		p, err := l.Records(context.Background(), daodian.RecordQuery{MerchantID: storetest.M1, Limit: limit}, cursor)
		if err != nil {
			t.Error(err)
			return all
		}
		all = append(all, p.Records...)
		if p.NextCursor == "" {
			return all
		}
		cursor = p.NextCursor
	}
}

// TestRecordsTwoGateways: two stores on one database (two gateways) use and
// reverse tickets at once, each running numbering passes as serve does, while
// a third store reads. Every listing from the first page to the last holds
// every record committed before its first page exactly once, in increasing id
// order; a reader that follows the records by id without ever numbering
// anything (an event consumer) sees each record exactly once — none appears
// behind its position; and each ticket's records are in its commit order.
func TestRecordsTwoGateways(t *testing.T) {
	s1, u := newStoreURL(t, Options{})
	ctx := context.Background()
	open := func() *Store {
		s, err := openTest(ctx, u, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	s2, reader := open(), open()
	w := storetest.NewWorld(t, s1)
	l2 := daodian.NewLedger(s2, daodian.Config{Clock: w.Clock.Now})
	lr := daodian.NewLedger(reader, daodian.Config{Clock: w.Clock.Now})
	const tickets = 60
	var all []daodian.Ticket
	for range 3 {
		all = append(all, w.Issue(daodian.MaxTicketsPerOrder/5, 100).Tickets...)
	}
	all = all[:tickets]

	// committed holds the key of every record whose change has been answered
	// (so committed): under mu, in answer order.
	var mu sync.Mutex
	var committed []string
	note := func(keys ...string) {
		mu.Lock()
		committed = append(committed, keys...)
		mu.Unlock()
	}
	for _, tk := range all {
		note(recordKey(daodian.Record{Kind: daodian.RecordIssue, TicketID: tk.ID}))
	}
	ctxW, stop := context.WithCancel(ctx)
	var writers, sequencers sync.WaitGroup
	for g := range 4 {
		l, app := w.Ledger, w.A
		if g%2 == 1 {
			l, app = l2, w.A2 // the other gateway
		}
		writers.Go(func() {
			for i := 0; i < 150 && ctxW.Err() == nil; i++ {
				tk := all[(i*4+g)%tickets] // both gateways meet on every ticket
				rid := fmt.Sprintf("g%d-%d", g, i)
				res, err := l.Use(ctx, app, daodian.UseRequest{TicketCode: tk.Code, ShopID: storetest.S1, RequestID: "u-" + rid})
				if err != nil {
					continue
				}
				note(recordKey(daodian.Record{Kind: daodian.RecordUse, TicketID: tk.ID, TransID: res.TransID, RequestID: "u-" + rid}))
				r, err := l.Reverse(ctx, app, daodian.ReverseRequest{RequestID: "r-" + rid, TicketID: tk.ID, TransID: res.TransID})
				if err == nil && r.Success {
					note(recordKey(daodian.Record{Kind: daodian.RecordReversal, TicketID: tk.ID, TransID: res.TransID, RequestID: "r-" + rid}))
				}
			}
		})
	}
	for _, s := range []*Store{s1, s2} {
		sequencers.Go(func() {
			for ctxW.Err() == nil {
				if _, err := s.SequenceRecords(ctx); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}

	// The event consumer: follows records by id, numbering nothing itself.
	var followed []daodian.Record
	follow := func() int {
		last := ""
		if len(followed) > 0 {
			last = followed[len(followed)-1].ID
		}
		var page []daodian.Record
		err := reader.View(ctx, func(tx daodian.ReadTx) error {
			var err error
			page, err = tx.Records(ctx, daodian.RecordQuery{MerchantID: storetest.M1, AfterID: last, Limit: 37})
			return err
		})
		if err != nil {
			t.Error(err)
			return 0
		}
		followed = append(followed, page...)
		return len(page)
	}

	writing := make(chan struct{})
	go func() { writers.Wait(); close(writing) }()
	following := make(chan struct{})
	go func() {
		defer close(following)
		for ctxW.Err() == nil {
			follow()
		}
	}()
	listings := 0
	for done := false; !done; listings++ {
		select {
		case <-writing:
			done = true // one more listing once the writers are done
		default:
		}
		mu.Lock()
		before := slices.Clone(committed)
		mu.Unlock()
		got := pageAll(t, lr, 50+listings%7)
		seen := make(map[string]int, len(got))
		for i, r := range got {
			seen[recordKey(r)]++
			if i > 0 && !idAfter(r.ID, got[i-1].ID) {
				t.Fatalf("listing %d: record %s after %s", listings, r.ID, got[i-1].ID)
			}
		}
		for k, n := range seen {
			if n != 1 {
				t.Fatalf("listing %d: %s listed %d times", listings, k, n)
			}
		}
		for _, k := range before {
			if seen[k] != 1 {
				t.Fatalf("listing %d: %s, committed before the first page, listed %d times", listings, k, seen[k])
			}
		}
	}
	stop()
	sequencers.Wait()
	<-following
	if _, err := s1.SequenceRecords(ctx); err != nil {
		t.Fatal(err)
	}
	for follow() > 0 {
	}

	final := pageAll(t, lr, daodian.MaxRecordsPage)
	if len(final) != len(committed) {
		t.Fatalf("%d records in the end, %d changes answered", len(final), len(committed))
	}
	if !slices.EqualFunc(followed, final, func(a, b daodian.Record) bool { return a == b }) {
		t.Fatalf("the follower saw %d records, the final listing has %d: a record appeared behind its position", len(followed), len(final))
	}
	// Per ticket, commit order: a use before its reversal, and the ticket's
	// records in the order its row lock admitted them.
	useAt := map[string]string{}
	for _, r := range final {
		switch r.Kind {
		case daodian.RecordUse:
			useAt[r.TransID] = r.ID
		case daodian.RecordReversal:
			if u, ok := useAt[r.TransID]; !ok || !idAfter(r.ID, u) {
				t.Fatalf("reversal %s of use %s listed before the use (%q)", r.ID, r.TransID, u)
			}
		}
	}
	for _, tk := range all[:5] {
		tl, err := lr.TicketHistory(ctx, tk.ID, "", "")
		if err != nil {
			t.Fatal(err)
		}
		active := 0
		for _, r := range tl.Timeline[1:] {
			if r.Kind == daodian.RecordUse {
				active++
			} else {
				active--
			}
			if active < 0 || active > 1 {
				t.Fatalf("ticket %s: timeline out of commit order at %+v", tk.ID, r)
			}
		}
	}
	rep, err := w.Ledger.Audit(ctx)
	if err != nil || len(rep.Violations) > 0 {
		t.Fatalf("audit: %v %v", err, rep.Violations)
	}
	t.Logf("%d records, %d listings while writing", len(final), listings)
}

// TestRecordsQueued: a committed record not numbered yet is in the ticket's
// timeline (after the numbered ones, without an id), the day's totals and uses,
// the counts and the audit, but in no records page; a numbering pass gives it
// the next id. A pass with nothing to number writes nothing.
func TestRecordsQueued(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	w := storetest.NewWorld(t, s)
	tk := w.Issue(1, 3).Tickets[0]
	u1 := w.MustUse(w.A, tk.Code, 1, "u1")
	if n, err := s.SequenceRecords(ctx); err != nil || n != 2 {
		t.Fatalf("first pass: %d, %v; want the issue and the use", n, err)
	}
	w.Reverse(w.A, "r1", tk.ID, u1.TransID)
	w.MustUse(w.A, tk.Code, 2, "u2")

	day := daodian.Day(w.Clock.Now())
	var tl []daodian.Record
	var listed []daodian.Record
	var totals []daodian.DayTotal
	var dayUses []string
	var counts daodian.Counts
	mustView(t, s, func(tx daodian.ReadTx) error {
		var err error
		if tl, err = tx.TicketRecords(ctx, tk.ID); err != nil {
			return err
		}
		if listed, err = tx.Records(ctx, daodian.RecordQuery{MerchantID: storetest.M1, Limit: 100}); err != nil {
			return err
		}
		if totals, err = tx.DayTotals(ctx, storetest.M1, day, ""); err != nil {
			return err
		}
		if err := tx.EachDayUse(ctx, storetest.M1, day, func(du *daodian.DayUse) error {
			dayUses = append(dayUses, fmt.Sprintf("%s:%s:%t", du.Record.RequestID, du.Record.ID, du.Reversed))
			return nil
		}); err != nil {
			return err
		}
		counts, err = tx.Counts(ctx)
		return err
	})
	if k := kindsAndIDs(tl); k != "issue:1,use:2,reversal:,use:" {
		t.Fatalf("timeline %s, want the numbered records then the queued ones without ids", k)
	}
	if k := kindsAndIDs(listed); k != "issue:1,use:2" {
		t.Fatalf("records page %s, want the numbered records only", k)
	}
	wantTotals := []daodian.DayTotal{
		{ShopID: "", Kind: daodian.RecordIssue, Count: 1, Units: 3, BuyerPayCents: 9900, ReceiptCents: 8800},
		{ShopID: storetest.S1, Kind: daodian.RecordReversal, Count: 1, Units: 1, BuyerPayCents: 3300, ReceiptCents: 2933},
		{ShopID: storetest.S1, Kind: daodian.RecordUse, Count: 2, Units: 3, BuyerPayCents: 9900, ReceiptCents: 8799},
	}
	check(t, "day totals", totals, wantTotals)
	check(t, "day uses", dayUses, []string{"u1:2:true", "u2::false"})
	if counts.Records != 4 {
		t.Fatalf("Counts.Records %d, want 4", counts.Records)
	}
	rep, err := w.Ledger.Audit(ctx)
	if err != nil || len(rep.Violations) > 0 || rep.Records != 4 {
		t.Fatalf("audit with queued records: %+v, %v", rep, err)
	}

	var xmin string
	readXmin := func() string {
		t.Helper()
		var x string
		if err := s.pool.QueryRow(ctx, "SELECT xmin::text FROM record_numbering").Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	if n, err := s.SequenceRecords(ctx); err != nil || n != 2 {
		t.Fatalf("second pass: %d, %v", n, err)
	}
	xmin = readXmin()
	if n, err := s.SequenceRecords(ctx); err != nil || n != 0 || readXmin() != xmin {
		t.Fatalf("an idle pass numbered %d (%v) or wrote the numbering row", n, err)
	}
	if k := kindsAndIDs(ticketRecords(t, s, tk.ID)); k != "issue:1,use:2,reversal:3,use:4" {
		t.Fatalf("timeline after the pass %s", k)
	}
}

func ticketRecords(t *testing.T, s *Store, ticketID string) []daodian.Record {
	t.Helper()
	var tl []daodian.Record
	mustView(t, s, func(tx daodian.ReadTx) error {
		var err error
		tl, err = tx.TicketRecords(context.Background(), ticketID)
		return err
	})
	return tl
}

// kindsAndIDs renders records as kind:id,….
func kindsAndIDs(recs []daodian.Record) string {
	var b []byte
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, string(r.Kind)+":"+r.ID...)
	}
	return string(b)
}

// idAfter reports whether decimal id a is after b.
func idAfter(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// TestRecordsNumberedAfterCommit: a record inserted first but committed last
// is numbered after a record that committed before it, so that a reader who
// has already seen the latter never finds the former behind it.
func TestRecordsNumberedAfterCommit(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	w := storetest.NewWorld(t, s)
	a, b := w.Issue(1, 1).Tickets[0], w.Issue(1, 1).Tickets[0]
	if _, err := s.SequenceRecords(ctx); err != nil {
		t.Fatal(err)
	}
	fence := func(tk daodian.Ticket, rid string) daodian.Record {
		return daodian.Record{At: w.Clock.Now(), Kind: daodian.RecordFence, MerchantID: storetest.M1, TicketID: tk.ID,
			AppKey: w.A.Key, RequestID: rid}
	}
	inserted, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx daodian.Tx) error {
			if _, err := tx.Ticket(ctx, a.ID); err != nil {
				return err
			}
			r := fence(a, "slow")
			if err := tx.AppendRecord(ctx, &r); err != nil {
				return err
			}
			// A read sends the held insert: the record has its seq, uncommitted.
			if _, err := tx.Ticket(ctx, a.ID); err != nil {
				return err
			}
			once.Do(func() { close(inserted) })
			<-release
			return nil
		})
	}()
	<-inserted
	mustUpdate(t, s, func(tx daodian.Tx) error {
		r := fence(b, "fast")
		return tx.AppendRecord(ctx, &r)
	})
	if n, err := s.SequenceRecords(ctx); err != nil || n != 1 {
		t.Fatalf("pass while the first insert is uncommitted: %d, %v; want the committed record only", n, err)
	}
	if k := kindsAndIDs(ticketRecords(t, s, b.ID)); k != "issue:2,fence:3" {
		t.Fatalf("the committed record: %s", k)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := s.SequenceRecords(ctx); err != nil || n != 1 {
		t.Fatalf("pass after the commit: %d, %v", n, err)
	}
	if k := kindsAndIDs(ticketRecords(t, s, a.ID)); k != "issue:1,fence:4" {
		t.Fatalf("the record committed last: %s, want the id after 3", k)
	}
}

// TestRecordsBacklog: records queued while nothing numbered them are numbered
// in several passes, all of them, in the order they were appended.
func TestRecordsBacklog(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	const n = 2*recordBatch + 17
	if _, err := s.pool.Exec(ctx, `INSERT INTO record_queue (`+recordFields+`)
		SELECT now(), 20261101, 'fence', 'm1', '', 't' || i, '', lpad(i::text, 8, '0'), 'app', 0, now(), 0, 0
		FROM generate_series(1, $1) i`, n); err != nil {
		t.Fatal(err)
	}
	got, err := s.SequenceRecords(ctx)
	if err != nil || got != n {
		t.Fatalf("numbered %d, %v; want %d", got, err, n)
	}
	var count, maxID, last, outOfOrder, queued int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), max(record_id), (SELECT last_id FROM record_numbering),
		(SELECT count(*) FROM (SELECT request_id, lag(request_id) OVER (ORDER BY record_id) AS prev FROM records) x WHERE prev >= request_id),
		(SELECT count(*) FROM record_queue) FROM records`).Scan(&count, &maxID, &last, &outOfOrder, &queued); err != nil {
		t.Fatal(err)
	}
	if count != n || maxID != n || last != n || outOfOrder != 0 || queued != 0 {
		t.Fatalf("records %d, max id %d, last id %d, out of order %d, still queued %d; want %d, ids 1…%d in order",
			count, maxID, last, outOfOrder, queued, n, n)
	}
}

// TestRecordsBackfilled: a ledger written before records existed (schema
// version 3) gets its history when migrated: an issue per ticket, a use per
// use, a reversal and a refund per reversed and refunded use, a fence per
// fence, numbered in time order, records of one instant in the order issue,
// use, reversal, fence, refund; the uses get their amounts back but for the
// remainder cents; the audit is clean, and numbering goes on after them.
func TestRecordsBackfilled(t *testing.T) {
	ctx := context.Background()
	src, srcURL := newStoreURL(t, Options{})
	w := storetest.NewWorld(t, src)
	tk := w.Issue(1, 3).Tickets[0]
	w.Clock.Advance(time.Minute)
	u1 := w.MustUse(w.A, tk.Code, 1, "u1")
	w.Clock.Advance(time.Minute)
	u2 := w.MustUse(w.A, tk.Code, 2, "u2") // the last units: the remainder cent
	w.Clock.Advance(time.Minute)
	w.Reverse(w.A, "r1", tk.ID, "") // u2
	w.Clock.Advance(time.Minute)
	w.Reverse(w.A2, "r-empty", tk.ID, "")
	w.Clock.Advance(time.Minute)
	if _, err := w.Ledger.Refund(ctx, w.A, daodian.RefundRequest{TransID: u1.TransID, TicketCode: tk.Code, RequestID: "f1"}); err != nil {
		t.Fatal(err)
	}
	want, err := w.Ledger.TicketHistory(ctx, tk.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// One instant: every kind at once, on two tickets.
	w.Clock.Advance(time.Hour)
	o := w.Issue(2, 2)
	b, c := o.Tickets[0], o.Tickets[1]
	ub1 := w.MustUse(w.A, b.Code, 1, "ub1")
	ub2 := w.MustUse(w.A, b.Code, 1, "ub2")
	w.Reverse(w.A, "rb1", b.ID, ub1.TransID)
	if _, err := w.Ledger.Refund(ctx, w.A, daodian.RefundRequest{TransID: ub2.TransID, TicketCode: b.Code, RequestID: "fb2"}); err != nil {
		t.Fatal(err)
	}
	w.Reverse(w.A2, "rc-empty", c.ID, "")
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	// A schema at version 3 holding the same ledger.
	dstURL := freshSchema(t)
	from, to := schemaOf(t, srcURL), schemaOf(t, dstURL)
	conn := connect(t, dstURL)
	migrateTo(t, conn, 3)
	for _, table := range []string{"merchants", "shops", "apps", "orders", "tickets", "uses", "fences", "idem", "meta"} {
		var cols string
		if err := conn.QueryRow(ctx, `SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
			FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, to, table).Scan(&cols); err != nil {
			t.Fatal(err)
		}
		q := fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s`, pgx.Identifier{to, table}.Sanitize(), cols, cols,
			pgx.Identifier{from, table}.Sanitize())
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	dst, err := openTest(ctx, dstURL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	l := daodian.NewLedger(dst, daodian.Config{Clock: w.Clock.Now})
	got, err := l.TicketHistory(ctx, tk.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Timeline) != len(want.Timeline) {
		t.Fatalf("backfilled timeline %s, want %s", kindsAndIDs(got.Timeline), kindsAndIDs(want.Timeline))
	}
	for i, g := range got.Timeline {
		wr := want.Timeline[i]
		if wr.Kind != daodian.RecordIssue && wr.TransID == u2.TransID {
			wr.ReceiptCents-- // the remainder cent of the last unit cannot be recovered
		}
		g.ID, wr.ID = "", ""
		if g != wr {
			t.Errorf("backfilled record %d:\n got %+v\nwant %+v", i, g, wr)
		}
	}
	all := pageAll(t, l, daodian.MaxRecordsPage)
	for i, r := range all {
		if r.ID != strconv.Itoa(i+1) {
			t.Fatalf("record %d has id %s: backfilled records are numbered 1, 2, … in time order", i, r.ID)
		}
	}
	if k := kindsOf(all[len(want.Timeline):]); k != "issue,issue,use,use,reversal,fence,refund" {
		t.Fatalf("records of one instant: %s, want the order issue, use, reversal, fence, refund", k)
	}
	var amounts [2]int64
	mustView(t, dst, func(tx daodian.ReadTx) error {
		u, err := tx.Use(ctx, u2.TransID)
		if err == nil {
			amounts = [2]int64{u.BuyerPayCents, u.ReceiptCents}
		}
		return err
	})
	if amounts != [2]int64{6600, 5866} {
		t.Fatalf("backfilled amounts of a 2-unit use of a 9900/8800 ticket of 3: %v", amounts)
	}
	rep, err := l.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("audit after the backfill: %s", v)
	}
	// New records are numbered after the backfilled ones.
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "after", MerchantID: storetest.M1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Use(ctx, app, daodian.UseRequest{TicketCode: tk.Code, ShopID: storetest.S1, RequestID: "after"}); err != nil {
		t.Fatal(err)
	}
	tl, err := l.TicketHistory(ctx, tk.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if last := tl.Timeline[len(tl.Timeline)-1]; last.RequestID != "after" || last.ID != strconv.Itoa(len(all)+1) {
		t.Fatalf("the first record after the backfill: %+v, want id %d", last, len(all)+1)
	}
}

// schemaOf returns the schema a test URL's sessions use.
func schemaOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("search_path")
}

func kindsOf(recs []daodian.Record) string {
	var b []byte
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r.Kind...)
	}
	return string(b)
}

// TestNumberRecordsInBackground: a store opened with NumberRecordsEvery numbers
// committed records by itself, without anyone listing them; Close stops it.
func TestNumberRecordsInBackground(t *testing.T) {
	needDB(t)
	s := newStore(t, Options{NumberRecordsEvery: 10 * time.Millisecond})
	w := storetest.NewWorld(t, s)
	tk := w.Issue(1, 1).Tickets[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		var id int64
		err := s.pool.QueryRow(context.Background(), `SELECT record_id FROM records WHERE ticket_id = $1`, tk.ID).Scan(&id)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the issue record was not numbered within 5 s by the background pass (%v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// queueScan finds a scan of record_queue's heap in a plan (not of its
// sequence, record_queue_seq).
var queueScan = regexp.MustCompile(`Seq Scan on record_queue\b`)

// TestNumberingPlans: the numbering pass asks the queue's index, never scans
// its heap, which holds every record moved since the last vacuum (a plain
// EXISTS, and a DELETE … IN (subquery) joined by hash, did).
func TestNumberingPlans(t *testing.T) {
	needDB(t)
	s, url := newStoreURL(t, Options{})
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO record_queue (`+recordFields+`)
		SELECT now(), 20261201, 'use', 'm', 's', 't' || i, 'u' || i, 'r' || i, 'a', 1, now(), 0, 0
		FROM generate_series(1, 3000) i`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct{ name, sql, args string }{
		{"queued", sqlQueued, ""},
		{"number", sqlNumber, "(10000)"},
	} {
		plan := genericPlan(t, url, q.sql, q.args)
		if queueScan.MatchString(plan) {
			t.Errorf("%s: the generic plan scans the queue:\n%s", q.name, plan)
		}
	}
}
