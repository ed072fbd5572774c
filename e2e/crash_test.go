package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testenv"
)

// TestCrashRecovery is SPEC §7's first reliability test, on the real binary: under
// concurrent uses and reversals, `daodian serve` is killed with SIGKILL at a random
// moment, restarted on the same database, and every request that was sent is
// replayed. Idempotency gives each request a definitive outcome (a replay returns
// the recorded answer, or executes if the request never committed), and then:
//   - every answer received before a kill replays identically: a use that answered
//     success is still there with the same transaction ids, a use refused is
//     refused alike (§4.3: refusals are recorded), a reversal's recorded answer
//     has not changed (§4.4 "an answer of success=true is never lost");
//   - the uses in the ledger are exactly those of the requests whose outcome is
//     success (a use that committed but whose answer was lost is not applied twice
//     by its replay, and nothing else committed);
//   - a use is reversed exactly when a successful reversal names it, or it was the
//     latest use of a successful latest-use reversal, and each reversal restored at
//     most one use;
//   - every ticket's available units equal its quantity minus the units of the
//     uses left active by those outcomes;
//   - `daodian audit` finds nothing, after every kill and at the end.
//
// DAODIAN_CRASH_CYCLES sets the number of kills (default 10).
func TestCrashRecovery(t *testing.T) {
	cycles := 10
	if s := os.Getenv("DAODIAN_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("DAODIAN_CRASH_CYCLES=%q: want a positive number", s)
		}
		cycles = n
	}
	testenv.Run(t, func(t *testing.T, kind testenv.Kind) {
		runCrash(t, testenv.NewDB(t, kind), cycles)
	})
}

// crashReq is one request sent during the test, and what became of it.
type crashReq struct {
	rid   string
	use   *alsc.UseTopRequest           // a use, or
	rev   *alsc.TicketReverseTopRequest // a reversal
	cycle int

	// pre is the answer received when it was first sent, if any: preUse or
	// preRev on success, preErr for a use refused with a final platform error.
	answered bool
	preUse   *alsc.UseResponse
	preErr   *client.Error
	preRev   *alsc.ReserveResult

	// The definitive outcome, after the replay.
	final    bool
	finalUse *alsc.UseResponse // nil: the use was refused, with finalErr
	finalErr *client.Error
	finalRev alsc.ReserveResult
}

// crashWorld is the ledger of the crash test and the log of every request sent.
type crashWorld struct {
	t       *testing.T
	db      testenv.DB
	app     *daodian.App
	tickets map[string]daodian.Ticket // by id
	codes   []string                  // codes a use may name (group-buy first tickets included)
	ids     []string                  // ticket ids a latest-use reversal may name

	mu     sync.Mutex
	reqs   []*crashReq
	uses   []alsc.MerchantTicketUseDetail // details of uses known to have succeeded
	finals []*crashReq                    // requests with a definitive outcome, for replays under load
}

func runCrash(t *testing.T, db testenv.DB, cycles int) {
	w := &crashWorld{t: t, db: db, tickets: map[string]daodian.Ticket{}}
	w.setup()
	hook := newCrashHook(t, db)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	p := testenv.StartServe(t, db.Args()...)
	for cycle := range cycles {
		c := client.New(p.URL, w.app.Key, w.app.Secret, client.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
		killAfter := 20 + rng.IntN(150)
		stop := w.load(c, cycle, 8, killAfter, rng.Uint64())
		p.Kill(t)
		stop()
		audit(t, db)
		p = testenv.StartServe(t, db.Args()...)
		c = client.New(p.URL, w.app.Key, w.app.Secret)
		w.replay(c, cycle)
		if t.Failed() {
			return
		}
	}
	hook.verify(t, p.Base)
	p.Stop(t)
	w.verify()
	audit(t, db)
}

// setup seeds the database: the shop, the app and the tickets (6 of 4 units,
// and a group-buy order of 3 of 2 units, where a use of more than 2 units
// spans tickets).
func (w *crashWorld) setup() {
	orders := []daodian.IssueRequest{}
	for range 6 {
		orders = append(orders, daodian.IssueRequest{Quantity: 4})
	}
	orders = append(orders, daodian.IssueRequest{Count: 3, Quantity: 2})
	seeded := testenv.SeedDB(w.t, w.db, orders...)
	w.app = seeded.App
	for _, o := range seeded.Orders {
		for _, tk := range o.Tickets {
			w.tickets[tk.ID] = tk
			w.ids = append(w.ids, tk.ID)
		}
		w.codes = append(w.codes, o.Tickets[0].Code)
	}
}

func audit(t *testing.T, db testenv.DB) {
	t.Helper()
	out, err := db.Command(t, "audit").CombinedOutput()
	if err != nil {
		t.Fatalf("daodian audit: %v\n%s", err, out)
	}
}

// finalPlatformError reports whether err is an answer that the request was
// refused and nothing was done, as opposed to no answer or a transient failure.
func finalPlatformError(err error) (*client.Error, bool) {
	var pe *client.Error
	if errors.As(err, &pe) && pe.Code != 15 {
		return pe, true
	}
	return nil, false
}

// load runs n workers sending requests until killAfter answers have arrived, then
// returns while requests are still in flight (the caller kills the server, then
// calls stop to end the workers).
func (w *crashWorld) load(c *client.Client, cycle, n, killAfter int, seed uint64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var answers atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for k := 0; ctx.Err() == nil; k++ {
				if w.step(ctx, c, rng, fmt.Sprintf("c%d-w%d-%d", cycle, i, k), cycle) && answers.Add(1) == int64(killAfter) {
					once.Do(func() { close(enough) })
				}
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(time.Minute):
		// A ledger that answers nothing must fail the test, not hang it.
		cancel()
		wg.Wait()
		w.t.Fatalf("cycle %d: %d answers in a minute, want %d before the kill", cycle, answers.Load(), killAfter)
	}
	// Requests are in flight at this moment; the kill lands among them.
	return func() { cancel(); wg.Wait() }
}

// step sends one request and reports whether an answer arrived.
func (w *crashWorld) step(ctx context.Context, c *client.Client, rng *rand.Rand, rid string, cycle int) bool {
	w.mu.Lock()
	var r *crashReq
	var replayOf *crashReq
	switch x := rng.IntN(100); {
	case x < 10 && len(w.finals) > 0:
		replayOf = w.finals[rng.IntN(len(w.finals))]
	case x < 55 || len(w.uses) == 0:
		r = &crashReq{rid: rid, cycle: cycle, use: &alsc.UseTopRequest{
			TicketCode: w.codes[rng.IntN(len(w.codes))], ShopID: "s1", TicketRequestID: rid, Quantity: alsc.Quantity(1 + rng.IntN(3)),
		}}
	case x < 88:
		d := w.uses[rng.IntN(len(w.uses))]
		r = &crashReq{rid: rid, cycle: cycle, rev: &alsc.TicketReverseTopRequest{RequestID: rid, TicketID: d.TicketID, TicketUseTransID: d.TicketTransID}}
	default:
		r = &crashReq{rid: rid, cycle: cycle, rev: &alsc.TicketReverseTopRequest{RequestID: rid, TicketID: w.ids[rng.IntN(len(w.ids))]}}
	}
	if r != nil {
		w.reqs = append(w.reqs, r)
	}
	w.mu.Unlock()

	if replayOf != nil {
		return w.replayUnderLoad(ctx, c, replayOf)
	}
	if r.use != nil {
		resp, err := c.Use(ctx, *r.use)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err == nil {
			r.answered, r.preUse = true, resp
			w.uses = append(w.uses, resp.TicketUseDetails...)
			return true
		}
		if pe, ok := finalPlatformError(err); ok {
			if pe.SubCode != daodian.SubNotEnoughQuantity && pe.SubCode != daodian.SubUseFencedByReversal {
				w.t.Errorf("use %s: unexpected refusal %v", r.rid, err)
			}
			r.answered, r.preErr = true, pe
			return true
		}
		return false
	}
	resp, err := c.Reserve(ctx, *r.rev)
	if err != nil {
		if _, ok := finalPlatformError(err); ok {
			w.t.Errorf("reversal %s: unexpected platform error %v", r.rid, err)
		}
		return false
	}
	if resp.Result.ErrorCode == daodian.CodeSystemError {
		return false
	}
	w.mu.Lock()
	r.answered, r.preRev = true, &resp.Result
	w.mu.Unlock()
	return true
}

// replayUnderLoad resends a request whose outcome is definitive and recorded, and
// checks the answer is the recorded one.
func (w *crashWorld) replayUnderLoad(ctx context.Context, c *client.Client, r *crashReq) bool {
	if r.use != nil {
		resp, err := c.Use(ctx, *r.use)
		if pe, ok := finalPlatformError(err); ok {
			if msg := sameRefusal(r.finalErr, pe); msg != "" {
				w.t.Errorf("replay under load of use %s: %s", r.rid, msg)
			}
			return true
		}
		if err != nil {
			return false // no answer, or transient: nothing to compare
		}
		if msg := sameUse(r.finalUse, resp); msg != "" {
			w.t.Errorf("replay under load of use %s: %s", r.rid, msg)
		}
		return true
	}
	resp, err := c.Reserve(ctx, *r.rev)
	if err != nil || resp.Result.ErrorCode == daodian.CodeSystemError {
		return false
	}
	if resp.Result != r.finalRev {
		w.t.Errorf("replay under load of reversal %s: %+v, recorded %+v", r.rid, resp.Result, r.finalRev)
	}
	return true
}

// sameRefusal compares a use replay that was refused with the first answer (""
// when it was the same refusal: a refusal is recorded, SPEC §4.3).
func sameRefusal(first, replay *client.Error) string {
	if first == nil {
		return fmt.Sprintf("the first answer was a success, the replay is refused: %v", replay)
	}
	if replay.SubCode != first.SubCode || replay.SubMsg != first.SubMsg {
		return fmt.Sprintf("the first answer was %v, the replay %v", first, replay)
	}
	return ""
}

// sameUse compares a use replay with the first success answer ("" when equal).
func sameUse(first, replay *alsc.UseResponse) string {
	if first == nil {
		return "the first answer was a refusal, the replay a success"
	}
	if replay.BizCode != daodian.BizTicketAlreadyUsed {
		return "replay biz_code " + replay.BizCode + ", want " + daodian.BizTicketAlreadyUsed
	}
	if replay.TicketTransID != first.TicketTransID || replay.UseDate != first.UseDate || !reflect.DeepEqual(replay.TicketUseDetails, first.TicketUseDetails) {
		return fmt.Sprintf("replay %+v differs from the first answer %+v", replay, first)
	}
	return ""
}

// replay resends every request of the cycle until it has a definitive answer,
// and checks the answers received before the kill against it.
func (w *crashWorld) replay(c *client.Client, cycle int) {
	t := w.t
	w.mu.Lock()
	var todo []*crashReq
	for _, r := range w.reqs {
		if r.cycle == cycle {
			todo = append(todo, r)
		}
	}
	w.mu.Unlock()
	// A ledger that answers nothing definitive must fail the test, not hang it:
	// every replay of the cycle shares one deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(todo) {
					return
				}
				w.replayOne(ctx, c, todo[i])
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	w.mu.Lock()
	for _, r := range todo {
		// Every definitive answer is recorded, a use's refusal included.
		w.finals = append(w.finals, r)
		if r.use != nil && r.finalUse != nil && r.preUse == nil {
			w.uses = append(w.uses, r.finalUse.TicketUseDetails...)
		}
	}
	w.mu.Unlock()
}

func (w *crashWorld) replayOne(ctx context.Context, c *client.Client, r *crashReq) {
	t := w.t
	for attempt := 0; ; attempt++ {
		if attempt == 20 || ctx.Err() != nil {
			t.Errorf("request %s: no definitive answer after %d attempts (%v)", r.rid, attempt, ctx.Err())
			return
		}
		if r.use != nil {
			resp, err := c.Use(ctx, *r.use)
			if err != nil {
				pe, ok := finalPlatformError(err)
				if !ok {
					continue
				}
				// Refused now. A refusal answered before the kill was recorded
				// durably, like a success: the replay must be that refusal, and
				// a use that succeeded must replay its success.
				if r.preUse != nil {
					t.Errorf("use %s answered success %s before the kill; its replay after restart is refused: %v", r.rid, r.preUse.TicketTransID, err)
				}
				if r.preErr != nil {
					if msg := sameRefusal(r.preErr, pe); msg != "" {
						t.Errorf("use %s after restart: %s", r.rid, msg)
					}
				}
				r.final, r.finalErr = true, pe
				return
			}
			if r.preUse != nil || r.preErr != nil {
				if msg := sameUse(r.preUse, resp); msg != "" {
					t.Errorf("use %s after restart: %s", r.rid, msg)
				}
			}
			r.final, r.finalUse = true, resp
			return
		}
		resp, err := c.Reserve(ctx, *r.rev)
		if err != nil {
			if _, ok := finalPlatformError(err); ok {
				t.Errorf("reversal %s: %v", r.rid, err)
				return
			}
			continue
		}
		if resp.Result.ErrorCode == daodian.CodeSystemError {
			continue
		}
		if r.preRev != nil && *r.preRev != resp.Result {
			t.Errorf("reversal %s answered %+v before the kill, %+v after restart", r.rid, *r.preRev, resp.Result)
		}
		if !resp.Result.Success {
			t.Errorf("reversal %s of a use that exists: %+v", r.rid, resp.Result)
		}
		r.final, r.finalRev = true, resp.Result
		return
	}
}

// verify compares the whole ledger with what the definitive outcomes imply.
func (w *crashWorld) verify() {
	t := w.t
	ctx := context.Background()
	s := w.db.Open(t)
	defer s.Close()
	uses := map[string]daodian.Use{}
	avail := map[string]int{}
	err := s.View(ctx, func(tx daodian.ReadTx) error {
		if err := tx.EachUse(ctx, func(u *daodian.Use) error { uses[u.TransID] = *u; return nil }); err != nil {
			return err
		}
		return tx.EachTicket(ctx, func(tk *daodian.Ticket) error { avail[tk.ID] = tk.Available; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}

	// The uses in the ledger are exactly the details of the successful uses.
	want := map[string]alsc.MerchantTicketUseDetail{}
	revs := map[string]*crashReq{}
	nUse, nRev := 0, 0
	for _, r := range w.reqs {
		if !r.final {
			t.Fatalf("request %s has no definitive outcome", r.rid)
		}
		if r.rev != nil {
			revs[r.rid] = r
			nRev++
			continue
		}
		nUse++
		if r.finalUse == nil {
			continue
		}
		for _, d := range r.finalUse.TicketUseDetails {
			if _, dup := want[d.TicketTransID]; dup {
				t.Errorf("transaction id %s answered to two uses", d.TicketTransID)
			}
			want[d.TicketTransID] = d
			u, ok := uses[d.TicketTransID]
			switch {
			case !ok:
				t.Errorf("use %s answered success with %s, which is not in the ledger", r.rid, d.TicketTransID)
			case u.RequestID != r.rid || u.TicketID != d.TicketID || int64(u.Units) != d.Quantity || u.AppKey != w.app.Key:
				t.Errorf("use row %+v does not match the answer %+v of %s", u, d, r.rid)
			}
		}
	}
	for id, u := range uses {
		if _, ok := want[id]; !ok {
			t.Errorf("the ledger holds use %s (request %s) that no successful answer announced", id, u.RequestID)
		}
	}

	// Reversals: each reversed use names a successful reversal that may reverse
	// it; each reversal restored at most one use; a reversal that names a use
	// leaves it reversed.
	byReversal := map[string]string{}
	for id, u := range uses {
		if !u.Reversed {
			continue
		}
		r, ok := revs[u.ReversalRequestID]
		switch {
		case !ok:
			t.Errorf("use %s reversed by unknown request %q", id, u.ReversalRequestID)
		case !r.finalRev.Success || r.rev.TicketID != u.TicketID || (r.rev.TicketUseTransID != "" && r.rev.TicketUseTransID != id):
			t.Errorf("use %s reversed by %s %+v, which cannot reverse it", id, r.rid, r.finalRev)
		}
		if other, dup := byReversal[u.ReversalRequestID]; dup {
			t.Errorf("reversal %s reversed two uses, %s and %s", u.ReversalRequestID, other, id)
		}
		byReversal[u.ReversalRequestID] = id
	}
	for _, r := range revs {
		if tr := r.rev.TicketUseTransID; tr != "" && r.finalRev.Success && !uses[tr].Reversed {
			t.Errorf("reversal %s answered success but use %s is not reversed", r.rid, tr)
		}
	}

	// How many requests were in doubt at a kill (sent, no answer), and how many of
	// those had committed all the same: the kills landed among requests in flight.
	inDoubt, committed := 0, 0
	for _, r := range w.reqs {
		if !r.answered {
			inDoubt++
			if (r.finalUse != nil && r.finalUse.BizCode == daodian.BizTicketAlreadyUsed) ||
				(r.rev != nil && byReversal[r.rid] != "") {
				committed++
			}
		}
	}

	// Available units follow from the outcomes.
	active := map[string]int{}
	for id, d := range want {
		if !uses[id].Reversed {
			active[d.TicketID] += int(d.Quantity)
		}
	}
	for id, tk := range w.tickets {
		if got, exp := avail[id], tk.Quantity-active[id]; got != exp {
			t.Errorf("ticket %s: available %d, the outcomes imply %d", id, got, exp)
		}
	}
	t.Logf("%d requests (%d uses, %d reversals), %d uses in the ledger, %d reversed; %d requests in doubt at a kill, of which at least %d had committed",
		len(w.reqs), nUse, nRev, len(uses), len(byReversal), inDoubt, committed)
}
