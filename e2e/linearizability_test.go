package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testenv"
)

// TestLinearizability records histories of concurrent uses, reversals (of a named
// use and of the latest use), refunds, consults and replays on a few hot tickets,
// through the HTTP gateway, and checks with porcupine that each history is
// linearizable with respect to the sequential specification of SPEC §4
// (lin_model_test.go). TestLinearizabilityCheckerCatches shows the check fails on
// the histories that typical bugs produce.
func TestLinearizability(t *testing.T) {
	testenv.Run(t, func(t *testing.T, kind testenv.Kind) {
		runLinearizability(t, testenv.NewDB(t, kind).Open(t))
	})
}

// linRecorder collects the operations of a history with times from one monotonic
// clock.
type linRecorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (r *linRecorder) now() int64 { return int64(time.Since(r.start)) }

func (r *linRecorder) add(client int, in linIn, call int64, out linOut) {
	ret := r.now()
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	r.mu.Unlock()
}

// linTicket is a hot ticket and the uses known to have succeeded on it.
type linTicket struct {
	id, code string
	mu       sync.Mutex
	uses     []string
}

func (tk *linTicket) known(rng *rand.Rand) string {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if len(tk.uses) == 0 {
		return ""
	}
	return tk.uses[rng.IntN(len(tk.uses))]
}

func runLinearizability(t *testing.T, store daodian.Store) {
	ctx := context.Background()
	l := daodian.NewLedger(store, daodian.Config{})
	const quantity = 4
	seeded := testenv.Seed(t, l, daodian.IssueRequest{Quantity: quantity}, daodian.IssueRequest{Quantity: quantity}, daodian.IssueRequest{Quantity: quantity})
	other, err := l.CreateApp(ctx, daodian.AppSpec{Name: "pos-1", MerchantID: testenv.Merchant})
	if err != nil {
		t.Fatal(err)
	}
	apps := [2]*daodian.App{seeded.App, other}
	hot := make([]*linTicket, len(seeded.Tickets))
	quantities := map[string]int{}
	byID := map[string]*linTicket{}
	for i, tk := range seeded.Tickets {
		hot[i] = &linTicket{id: tk.ID, code: tk.Code}
		quantities[hot[i].id] = quantity
		byID[hot[i].id] = hot[i]
	}
	gw := gateway.New(l, gateway.Config{Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	var clients [2]*client.Client
	for i, a := range apps {
		clients[i] = client.New(srv.URL, a.Key, a.Secret, client.WithHTTPClient(httpc))
	}

	// Small enough that the checker decides within its bound even on a loaded
	// 2-core CI machine, where slow answers make many operations overlap.
	const workers, perWorker = 6, 40
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rec := &linRecorder{start: time.Now()}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			appIdx := w % 2
			c, app := clients[appIdx], apps[appIdx].Key
			var mine []linIn // this worker's idempotent requests, for replays
			<-start
			for k := range perWorker {
				tk := hot[rng.IntN(len(hot))]
				in := linIn{Ticket: tk.id, App: app, RID: fmt.Sprintf("w%d-%d", w, k)}
				switch x := rng.IntN(100); {
				case x < 35:
					in.Kind, in.Units = linUse, 1+rng.IntN(2)
				case x < 55:
					in.Kind, in.TransID = linReverse, tk.known(rng)
					if in.TransID == "" {
						in.Kind, in.Units = linUse, 1
					}
				case x < 65:
					in.Kind = linReverse // the latest use of this app
				case x < 70:
					in.Kind, in.TransID = linRefund, tk.known(rng)
					if in.TransID == "" {
						in.Kind = linConsult
					}
				case x < 88 || len(mine) == 0:
					in.Kind = linConsult
				default:
					in = mine[rng.IntN(len(mine))] // a replay: same key, same content
					tk = byID[in.Ticket]
				}
				if in.Kind != linConsult {
					mine = append(mine, in)
				}
				call := rec.now()
				out, err := linCall(ctx, c, tk, in)
				if err != nil {
					t.Errorf("%+v: %v", in, err)
					return
				}
				rec.add(w, in, call, out)
			}
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	kinds := map[string]int{}
	for _, op := range rec.ops {
		in, out := op.Input.(linIn), op.Output.(linOut)
		k := in.Kind.String()
		switch {
		case out.Transient:
			k += " transient"
		case !out.OK:
			k += " " + out.Code
		}
		kinds[k]++
	}
	t.Logf("%d operations: %v", len(rec.ops), kinds)
	checkLinearizable(t, quantities, rec.ops)
	rep, err := l.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("audit: %s", v)
	}
}

// checkLinearizable fails the test if the history is not linearizable, and writes
// porcupine's visualization of it where the test can show it.
func checkLinearizable(t *testing.T, quantities map[string]int, ops []porcupine.Operation) {
	t.Helper()
	model := linModel(quantities)
	res, info := porcupine.CheckOperationsVerbose(model, ops, 60*time.Second)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Fatal("porcupine could not decide within 60s")
	default:
		f, err := os.CreateTemp("", "daodian-linearizability-*.html")
		if err == nil {
			_ = porcupine.Visualize(model, info, f)
			f.Close()
			t.Errorf("history of %d operations is not linearizable; visualization in %s", len(ops), f.Name())
		} else {
			t.Errorf("history of %d operations is not linearizable", len(ops))
		}
	}
}

// linCall performs one operation through the SDK and describes its answer. An
// error is returned only for an answer the model has no place for.
func linCall(ctx context.Context, c *client.Client, tk *linTicket, in linIn) (linOut, error) {
	var pe *client.Error
	platform := func(err error) (linOut, error) {
		if !errors.As(err, &pe) {
			return linOut{}, err // no answer at all: the test cannot use it
		}
		if pe.Code == 15 && (pe.SubCode == "isp.service-busy" || pe.SubCode == gateway.SubCodeServerBusy) {
			return linOut{Transient: true}, nil // nothing changed (SPEC §4.3)
		}
		if pe.Code != 50 {
			return linOut{}, err
		}
		return linOut{Code: pe.SubCode}, nil
	}
	switch in.Kind {
	case linUse:
		r, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.code, ShopID: testenv.Shop, TicketRequestID: in.RID, Quantity: alsc.Quantity(in.Units)})
		if err != nil {
			return platform(err)
		}
		if len(r.TicketUseDetails) != 1 || r.TicketUseDetails[0].TicketID != tk.id || r.TicketUseDetails[0].Quantity != int64(in.Units) {
			return linOut{}, fmt.Errorf("use answer %+v", r)
		}
		tk.mu.Lock()
		tk.uses = append(tk.uses, r.TicketTransID)
		tk.mu.Unlock()
		return linOut{OK: true, TransID: r.TicketTransID, Biz: r.BizCode}, nil
	case linReverse:
		r, err := c.Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: in.RID, TicketID: tk.id, TicketUseTransID: in.TransID})
		if err != nil {
			return linOut{}, err
		}
		if r.Result.ErrorCode == daodian.CodeSystemError {
			return linOut{Transient: true}, nil
		}
		return linOut{OK: r.Result.Success, Code: r.Result.ErrorCode}, nil
	case linRefund:
		r, err := c.Refund(ctx, alsc.RefundRequest{TransID: in.TransID, TicketCode: tk.code, TicketRequestID: in.RID})
		if err != nil {
			return platform(err)
		}
		return linOut{OK: true, Biz: r.BizCode}, nil
	case linConsult:
		r, err := c.Consult(ctx, alsc.ConsultTopRequest{RequestID: "c", ShopID: testenv.Shop, TicketCode: tk.code})
		if err != nil {
			return linOut{}, err
		}
		if r.Result.ErrorCode == daodian.CodeSystemError {
			return linOut{Transient: true}, nil
		}
		if !r.Result.Success || r.Result.Value == nil {
			return linOut{}, fmt.Errorf("consult answer %+v", r.Result)
		}
		return linOut{OK: true, Avail: int(r.Result.Value.AvailableQuantity)}, nil
	}
	return linOut{}, fmt.Errorf("unknown operation %v", in.Kind)
}

// TestLinearizabilityCheckerCatches feeds the checker histories with the traces of
// typical bugs, each next to the correct history it was derived from: the correct
// one must pass and the corrupted one must fail, or the check above proves
// nothing.
func TestLinearizabilityCheckerCatches(t *testing.T) {
	const tk = "2100000000000000001"
	q := map[string]int{tk: 2}
	op := func(client int, call, ret int64, in linIn, out linOut) porcupine.Operation {
		in.Ticket = tk
		if in.App == "" {
			in.App = "A"
		}
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	use := func(rid string, units int) linIn { return linIn{Kind: linUse, RID: rid, Units: units} }
	rev := func(rid, trans string) linIn { return linIn{Kind: linReverse, RID: rid, TransID: trans} }
	consult := linIn{Kind: linConsult}
	ok := func(trans string) linOut { return linOut{OK: true, TransID: trans, Biz: daodian.BizSuccess} }
	replayed := func(trans string) linOut { return linOut{OK: true, TransID: trans, Biz: daodian.BizTicketAlreadyUsed} }
	success := linOut{OK: true}
	avail := func(n int) linOut { return linOut{OK: true, Avail: n} }
	notEnough := linOut{Code: daodian.SubNotEnoughQuantity}

	cases := []struct {
		name      string
		good, bad []porcupine.Operation
	}{
		{
			name: "lost update: two concurrent uses of 2 units on a 2-unit ticket both succeed",
			good: []porcupine.Operation{
				op(0, 0, 10, use("u1", 2), ok("t1")),
				op(1, 1, 11, use("u2", 2), notEnough),
				op(2, 12, 13, consult, avail(0)),
			},
			bad: []porcupine.Operation{
				op(0, 0, 10, use("u1", 2), ok("t1")),
				op(1, 1, 11, use("u2", 2), ok("t2")),
				op(2, 12, 13, consult, avail(0)),
			},
		},
		{
			name: "double restore: two reversals of one use each give its units back",
			good: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 3, use("u2", 1), ok("t2")),
				op(1, 4, 10, rev("r1", "t1"), success),
				op(2, 5, 11, rev("r2", "t1"), success),
				op(0, 12, 13, consult, avail(1)),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 3, use("u2", 1), ok("t2")),
				op(1, 4, 10, rev("r1", "t1"), success),
				op(2, 5, 11, rev("r2", "t1"), success),
				op(0, 12, 13, consult, avail(2)),
			},
		},
		{
			name: "a reversed use becomes active again: a later use is refused for want of units",
			good: []porcupine.Operation{
				op(0, 0, 1, use("u1", 2), ok("t1")),
				op(0, 2, 3, rev("r1", "t1"), success),
				op(0, 4, 5, use("u2", 2), ok("t2")),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u1", 2), ok("t1")),
				op(0, 2, 3, rev("r1", "t1"), success),
				op(0, 4, 5, use("u2", 2), notEnough),
			},
		},
		{
			name: "a replay executes again instead of answering the recorded use",
			good: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(1, 2, 3, use("u1", 1), replayed("t1")),
				op(0, 4, 5, consult, avail(1)),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(1, 2, 3, use("u1", 1), ok("t2")),
				op(0, 4, 5, consult, avail(0)),
			},
		},
		{
			name: "a refused use takes effect when sent again after a reversal freed units",
			good: []porcupine.Operation{
				op(0, 0, 1, use("u1", 2), ok("t1")),
				op(0, 2, 3, use("u2", 1), notEnough),
				op(0, 4, 5, rev("r1", "t1"), success),
				op(0, 6, 7, use("u2", 1), notEnough),
				op(0, 8, 9, consult, avail(2)),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u1", 2), ok("t1")),
				op(0, 2, 3, use("u2", 1), notEnough),
				op(0, 4, 5, rev("r1", "t1"), success),
				op(0, 6, 7, use("u2", 1), ok("t2")),
				op(0, 8, 9, consult, avail(1)),
			},
		},
		{
			name: "a recorded reversal answer changes",
			good: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 3, linIn{Kind: linRefund, RID: "f1", TransID: "t1"}, linOut{OK: true, Biz: daodian.BizSuccess}),
				op(0, 4, 5, rev("r1", "t1"), linOut{Code: daodian.CodeTicketStatusInvalid}),
				op(0, 6, 7, rev("r1", "t1"), linOut{Code: daodian.CodeTicketStatusInvalid}),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 3, linIn{Kind: linRefund, RID: "f1", TransID: "t1"}, linOut{OK: true, Biz: daodian.BizSuccess}),
				op(0, 4, 5, rev("r1", "t1"), linOut{Code: daodian.CodeTicketStatusInvalid}),
				op(0, 6, 7, rev("r1", "t1"), success),
			},
		},
		{
			name: "a refund and a reversal of the same use both take effect",
			good: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 10, linIn{Kind: linRefund, RID: "f1", TransID: "t1"}, linOut{Code: daodian.SubUseAlreadyReversed}),
				op(1, 3, 11, rev("r1", "t1"), success),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 10, linIn{Kind: linRefund, RID: "f1", TransID: "t1"}, linOut{OK: true, Biz: daodian.BizSuccess}),
				op(1, 3, 11, rev("r1", "t1"), success),
			},
		},
		{
			name: "the latest-use reversal reverses an older use",
			good: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 3, use("u2", 1), ok("t2")),
				op(0, 4, 5, rev("r1", ""), success),
				op(0, 6, 7, linIn{Kind: linRefund, RID: "f1", TransID: "t1"}, linOut{OK: true, Biz: daodian.BizSuccess}),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 3, use("u2", 1), ok("t2")),
				op(0, 4, 5, rev("r1", ""), success),
				op(0, 6, 7, linIn{Kind: linRefund, RID: "f1", TransID: "t1"}, linOut{Code: daodian.SubUseAlreadyReversed}),
			},
		},
		{
			name: "a use is fenced although no empty reversal left a fence",
			good: []porcupine.Operation{
				op(0, 0, 1, rev("r1", ""), success),
				op(0, 2, 3, use("u1", 1), linOut{Code: daodian.SubUseFencedByReversal}),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u0", 1), ok("t0")),
				op(0, 2, 3, rev("r1", ""), success),
				op(0, 4, 5, use("u1", 1), linOut{Code: daodian.SubUseFencedByReversal}),
			},
		},
		{
			name: "a consult sees a state that never existed (a use half applied)",
			good: []porcupine.Operation{
				op(0, 0, 10, use("u1", 2), ok("t1")),
				op(1, 1, 2, consult, avail(2)),
				op(1, 3, 4, consult, avail(0)),
				op(1, 5, 6, consult, avail(0)),
			},
			bad: []porcupine.Operation{
				op(0, 0, 10, use("u1", 2), ok("t1")),
				op(1, 1, 2, consult, avail(2)),
				op(1, 3, 4, consult, avail(1)),
				op(1, 5, 6, consult, avail(0)),
			},
		},
		{
			name: "a transient failure changed the ledger",
			good: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 3, rev("r1", "t1"), linOut{Transient: true}),
				op(0, 4, 5, consult, avail(1)),
			},
			bad: []porcupine.Operation{
				op(0, 0, 1, use("u1", 1), ok("t1")),
				op(0, 2, 3, rev("r1", "t1"), linOut{Transient: true}),
				op(0, 4, 5, consult, avail(2)),
			},
		},
	}
	model := linModel(q)
	for _, c := range cases {
		if !porcupine.CheckOperations(model, c.good) {
			t.Errorf("%s: the correct history is rejected", c.name)
		}
		if porcupine.CheckOperations(model, c.bad) {
			t.Errorf("%s: the corrupted history is accepted", c.name)
		}
	}
}
