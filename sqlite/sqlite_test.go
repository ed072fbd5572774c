package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

func tempPath(t testing.TB) string { return filepath.Join(t.TempDir(), "daodian.db") }

func openAt(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// factory makes the stores of the storetest suites: files in t.TempDir()
// opened with opts.
func factory(opts Options) storetest.Factory {
	return storetest.Factory{
		Open: func(t *testing.T) daodian.Store { return openAt(t, tempPath(t), opts) },
		Reopen: func(t *testing.T, s daodian.Store) daodian.Store {
			st := s.(*Store)
			if err := st.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openAt(t, st.Path(), opts)
		},
		StoredSecrets: func(t *testing.T, s daodian.Store, appKey string) (string, string) {
			return storedSecrets(t, s.(*Store).Path(), appKey)
		},
	}
}

func TestContract(t *testing.T) {
	storetest.Run(t, factory(Options{}))
}

// holder holds the writer inside an Update until release is called, so that
// the Updates queued meanwhile form the next batch, deterministically.
type holder struct {
	release func()
	done    chan error
}

func holdWriter(t *testing.T, s *Store) *holder {
	t.Helper()
	started, release := make(chan struct{}), make(chan struct{})
	h := &holder{done: make(chan error, 1)}
	var once sync.Once
	h.release = func() { once.Do(func() { close(release) }) }
	t.Cleanup(h.release)
	go func() {
		h.done <- s.Update(context.Background(), func(daodian.Tx) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	return h
}

// waitQueued waits until n Updates wait in the queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d Updates queued after 10s, want %d", len(s.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// commits records OnCommit calls.
type commits struct {
	mu    sync.Mutex
	sizes []int
}

func (c *commits) record(n int, _ time.Duration) {
	c.mu.Lock()
	c.sizes = append(c.sizes, n)
	c.mu.Unlock()
}

func (c *commits) get() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...)
}

// inOneBatch runs fns as concurrent Updates that the writer takes as one batch,
// in order, and returns their errors.
func inOneBatch(t *testing.T, s *Store, c *commits, fns ...func(daodian.Tx) error) []error {
	t.Helper()
	h := holdWriter(t, s)
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = s.Update(context.Background(), fn) })
		waitQueued(t, s, i+1) // one at a time: the batch runs them in this order
	}
	before := len(c.get())
	h.release()
	if err := <-h.done; err != nil {
		t.Fatalf("holding Update: %v", err)
	}
	wg.Wait()
	sizes := c.get()[before:]
	// The holder's batch committed first; the queued Updates form the next.
	if len(sizes) < 2 || sizes[len(sizes)-1] != len(fns) {
		t.Fatalf("commit sizes %v, want the last to be one batch of %d", sizes, len(fns))
	}
	return errs
}

var errBoom = errors.New("boom")

func testTicket(n int) *daodian.Ticket {
	return &daodian.Ticket{
		ID: fmt.Sprintf("21%017d", n), Code: fmt.Sprintf("%012d", n), MerchantID: "M1",
		OrderNo: "O1", SubOrderNo: "S1", ItemName: "套餐", Quantity: 100, Available: 100,
		Status: daodian.TicketValid, ValidTo: time.Now().Add(time.Hour),
	}
}

func putTicket(n int) func(daodian.Tx) error {
	return func(tx daodian.Tx) error { return tx.InsertTicket(context.Background(), testTicket(n)) }
}

func count(t *testing.T, s *Store) daodian.Counts {
	t.Helper()
	var c daodian.Counts
	if err := s.View(context.Background(), func(tx daodian.ReadTx) error {
		var err error
		c, err = tx.Counts(context.Background())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGroupCommitBatches(t *testing.T) {
	var c commits
	s := openAt(t, tempPath(t), Options{OnCommit: c.record})
	const n = 64
	fns := make([]func(daodian.Tx) error, n)
	for i := range fns {
		fns[i] = putTicket(i)
	}
	for i, err := range inOneBatch(t, s, &c, fns...) {
		if err != nil {
			t.Errorf("Update %d: %v", i, err)
		}
	}
	if got := count(t, s).Tickets; got != n {
		t.Fatalf("%d tickets, want %d", got, n)
	}

	// Free-running: 64 goroutines, no holding. Batches form on their own while
	// a commit is in progress.
	c.mu.Lock()
	c.sizes = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	const each = 20
	for g := range n {
		wg.Go(func() {
			for i := range each {
				if err := s.Update(context.Background(), putTicket(1000+g*each+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	sizes := c.get()
	total, biggest := 0, 0
	for _, n := range sizes {
		total += n
		biggest = max(biggest, n)
	}
	t.Logf("%d Updates in %d commits, largest batch %d", total, len(sizes), biggest)
	if total != n*each || len(sizes) >= total || biggest < 2 {
		t.Fatalf("%d Updates in %d commits (largest %d): want fewer commits than Updates", total, len(sizes), biggest)
	}
}

func TestBatchMaxBatch(t *testing.T) {
	var c commits
	s := openAt(t, tempPath(t), Options{OnCommit: c.record, MaxBatch: 5})
	h := holdWriter(t, s)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			if err := s.Update(context.Background(), putTicket(i)); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, 12)
	h.release()
	wg.Wait()
	for _, n := range c.get() {
		if n > 5 {
			t.Fatalf("batch of %d with MaxBatch 5", n)
		}
	}
}

// TestBatchFailuresAreIsolated: in one batch, an Update that fails, one that
// hits a duplicate key and one that panics undo only their own writes.
func TestBatchFailuresAreIsolated(t *testing.T) {
	var c commits
	s := openAt(t, tempPath(t), Options{OnCommit: c.record})
	if err := s.Update(context.Background(), putTicket(0)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errs := inOneBatch(t, s, &c,
		putTicket(1),
		func(tx daodian.Tx) error { // fails after writing
			if err := tx.InsertTicket(ctx, testTicket(2)); err != nil {
				return err
			}
			return errBoom
		},
		putTicket(3),
		func(tx daodian.Tx) error { // duplicate after writing
			if err := tx.InsertTicket(ctx, testTicket(4)); err != nil {
				return err
			}
			return tx.InsertTicket(ctx, testTicket(0))
		},
		func(tx daodian.Tx) error { // panics after writing
			if err := tx.InsertTicket(ctx, testTicket(5)); err != nil {
				return err
			}
			var m map[string]int
			m["x"]++ // nil map write
			return nil
		},
		func(tx daodian.Tx) error { // swallows a duplicate and goes on: its other writes stay
			if err := tx.InsertTicket(ctx, testTicket(0)); !errors.Is(err, daodian.ErrDuplicate) {
				return fmt.Errorf("want ErrDuplicate, got %v", err)
			}
			return tx.InsertTicket(ctx, testTicket(6))
		},
		func(tx daodian.Tx) error { // sees the effects of the earlier Updates of its batch
			if _, err := tx.Ticket(ctx, testTicket(1).ID); err != nil {
				return fmt.Errorf("earlier Update of the batch not visible: %w", err)
			}
			if _, err := tx.Ticket(ctx, testTicket(2).ID); !errors.Is(err, daodian.ErrNotFound) {
				return fmt.Errorf("failed Update of the batch visible: %v", err)
			}
			return tx.InsertTicket(ctx, testTicket(7))
		},
		func(tx daodian.Tx) error { // reads only, then fails: no savepoint to undo
			if _, err := tx.Ticket(ctx, testTicket(7).ID); err != nil {
				return err
			}
			return errBoom
		},
		func(tx daodian.Tx) error { // reads only
			_, err := tx.Ticket(ctx, testTicket(3).ID)
			return err
		},
	)
	want := []func(error) bool{
		func(err error) bool { return err == nil },
		func(err error) bool { return errors.Is(err, errBoom) },
		func(err error) bool { return err == nil },
		func(err error) bool { return errors.Is(err, daodian.ErrDuplicate) },
		func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "panic") && !errors.Is(err, daodian.ErrTransient)
		},
		func(err error) bool { return err == nil },
		func(err error) bool { return err == nil },
		func(err error) bool { return errors.Is(err, errBoom) },
		func(err error) bool { return err == nil },
	}
	for i, err := range errs {
		if !want[i](err) {
			t.Errorf("Update %d: unexpected error %v", i, err)
		}
	}
	for n, present := range map[int]bool{0: true, 1: true, 2: false, 3: true, 4: false, 5: false, 6: true, 7: true} {
		err := s.View(ctx, func(tx daodian.ReadTx) error {
			_, err := tx.Ticket(ctx, testTicket(n).ID)
			return err
		})
		if present && err != nil || !present && !errors.Is(err, daodian.ErrNotFound) {
			t.Errorf("ticket %d: %v, want present=%v", n, err, present)
		}
	}
}

func TestQueueFull(t *testing.T) {
	s := openAt(t, tempPath(t), Options{QueueLen: 2})
	h := holdWriter(t, s)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if err := s.Update(context.Background(), putTicket(i)); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, 2)
	ran := false
	start := time.Now()
	err := s.Update(context.Background(), func(daodian.Tx) error { ran = true; return nil })
	if !errors.Is(err, daodian.ErrTransient) || !errors.Is(err, ErrQueueFull) || ran {
		t.Fatalf("Update on a full queue: %v (ran %v), want transient ErrQueueFull", err, ran)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Update on a full queue took %v, want an immediate answer", d)
	}
	h.release()
	wg.Wait()
	if got := count(t, s).Tickets; got != 2 {
		t.Fatalf("%d tickets, want the 2 queued", got)
	}
}

func TestCancelledContext(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := s.Update(ctx, func(daodian.Tx) error { ran = true; return nil })
	if !errors.Is(err, daodian.ErrTransient) || !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("Update with a cancelled context: %v (ran %v)", err, ran)
	}
	err = s.View(ctx, func(daodian.ReadTx) error { return nil })
	_ = err // a View with a dead context may run: reads have no effect to undo

	// Cancelled while queued behind a busy writer: Update returns at once and
	// the function never runs.
	h := holdWriter(t, s)
	ctx2, cancel2 := context.WithCancel(context.Background())
	var ran2 atomic.Bool
	res := make(chan error, 1)
	go func() {
		res <- s.Update(ctx2, func(tx daodian.Tx) error {
			ran2.Store(true)
			return tx.InsertTicket(context.Background(), testTicket(1))
		})
	}()
	waitQueued(t, s, 1)
	cancel2()
	select {
	case err := <-res:
		if !errors.Is(err, daodian.ErrTransient) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Update cancelled in the queue: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Update cancelled in the queue did not return")
	}
	h.release()
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	// Let the writer pass the withdrawn op.
	if err := s.Update(context.Background(), putTicket(2)); err != nil {
		t.Fatal(err)
	}
	if ran2.Load() {
		t.Fatal("a withdrawn Update ran")
	}
	if got := count(t, s).Tickets; got != 1 {
		t.Fatalf("%d tickets, want 1", got)
	}

	// A deadline that passes while the op is queued but after the writer took
	// it is not reported as a failure if the op ran: Update waits for the truth.
	ctx3, cancel3 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel3()
	err = s.Update(ctx3, func(tx daodian.Tx) error {
		cancel3() // the caller gives up while fn runs
		return tx.InsertTicket(context.Background(), testTicket(3))
	})
	if err != nil {
		t.Fatalf("Update whose context ended while it ran: %v, want the real outcome (nil)", err)
	}
	if got := count(t, s).Tickets; got != 2 {
		t.Fatalf("%d tickets, want 2", got)
	}
}

func TestSecondOpenFails(t *testing.T) {
	path := tempPath(t)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), path, Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want ErrLocked naming the path", err)
	}
	t.Logf("second Open: %v", err)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, path, Options{})
	if err := s2.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestShared: a Shared Store writes next to the one holding the lock, and
// both hand out distinct identifiers.
func TestShared(t *testing.T) {
	path := tempPath(t)
	main := openAt(t, path, Options{})
	admin := openAt(t, path, Options{Shared: true})
	if _, err := Open(context.Background(), path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive Open next to a Shared one: %v, want ErrLocked", err)
	}
	ctx := context.Background()
	var (
		mu  sync.Mutex
		ids = map[string]bool{}
		wg  sync.WaitGroup
	)
	for g := range 8 {
		s := main
		if g%4 == 0 {
			s = admin
		}
		wg.Go(func() {
			for i := range 150 {
				var id string
				err := s.Update(ctx, func(tx daodian.Tx) error {
					var err error
					if id, err = tx.NewID(ctx); err != nil {
						return err
					}
					return tx.InsertUse(ctx, &daodian.Use{TransID: id, TicketID: fmt.Sprint(g, "-", i), AppKey: "a", Units: 1})
				})
				if err != nil {
					t.Errorf("store %d: %v", g, err)
					return
				}
				mu.Lock()
				if ids[id] {
					t.Errorf("id %s handed out twice", id)
				}
				ids[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, s := range []*Store{main, admin} {
		if got := count(t, s).Uses; got != 8*150 {
			t.Fatalf("%d uses, want %d", got, 8*150)
		}
	}
	// Restarted, the server continues above both.
	if err := main.Close(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path, Options{})
	if err := s.Update(ctx, func(tx daodian.Tx) error {
		id, err := tx.NewID(ctx)
		if err == nil && ids[id] {
			err = fmt.Errorf("id %s reused after restart", id)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := tempPath(t)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 50 {
		if err := s.Update(context.Background(), func(tx daodian.Tx) error {
			id, err := tx.NewID(context.Background())
			if err != nil {
				return err
			}
			ids = append(ids, id)
			return tx.InsertTicket(context.Background(), testTicket(i))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{})
	if got := count(t, s).Tickets; got != 50 {
		t.Fatalf("%d tickets after reopen, want 50", got)
	}
	// Ids keep increasing across restarts (the high-water mark is persisted).
	if err := s.Update(context.Background(), func(tx daodian.Tx) error {
		id, err := tx.NewID(context.Background())
		if err == nil && id <= ids[len(ids)-1] {
			err = fmt.Errorf("id %s after reopen is not above %s", id, ids[len(ids)-1])
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersion(t *testing.T) {
	path := tempPath(t)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Opening again is a no-op migration.
	s, err = Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRow(`SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v); err != nil || v != strconv.Itoa(schemaVersion) {
		t.Fatalf("schema_version %q, %v; want %d", v, err, schemaVersion)
	}
	if _, err := db.Exec(`UPDATE meta SET value = '99' WHERE key = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v, want a clear refusal", err)
	}
	// The failed Open released its lock.
	if _, err := lockFile(path); err != nil {
		t.Fatalf("lock after failed Open: %v", err)
	}
}

func TestTxUnusableAfterReturn(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	var kept daodian.Tx
	if err := s.Update(context.Background(), func(tx daodian.Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := kept.InsertTicket(context.Background(), testTicket(1)); !errors.Is(err, errTxDone) {
		t.Fatalf("Tx used after Update: %v", err)
	}
	if _, err := kept.NewID(context.Background()); !errors.Is(err, errTxDone) {
		t.Fatalf("NewID after Update: %v", err)
	}
	var keptR daodian.ReadTx
	if err := s.View(context.Background(), func(tx daodian.ReadTx) error { keptR = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := keptR.Ticket(context.Background(), "x"); !errors.Is(err, errTxDone) {
		t.Fatalf("ReadTx used after View: %v", err)
	}
}

func TestSubOrderTooManyTickets(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	if err := s.Update(context.Background(), func(tx daodian.Tx) error {
		for i := range daodian.MaxTicketsPerOrder + 1 {
			if err := tx.InsertTicket(context.Background(), testTicket(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err := s.View(context.Background(), func(tx daodian.ReadTx) error {
		_, err := tx.SubOrderTickets(context.Background(), "S1")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("SubOrderTickets over the limit: %v", err)
	}
}

// TestViewPanic: a panic in a View reaches the caller and leaves the read
// connection usable.
func TestViewPanic(t *testing.T) {
	s := openAt(t, tempPath(t), Options{Readers: 1})
	for range 3 {
		func() {
			defer func() {
				if r := recover(); r != "view boom" {
					t.Fatalf("recovered %v", r)
				}
			}()
			_ = s.View(context.Background(), func(tx daodian.ReadTx) error {
				if _, err := tx.Ticket(context.Background(), "x"); !errors.Is(err, daodian.ErrNotFound) {
					t.Error(err)
				}
				panic("view boom")
			})
		}()
	}
	if err := s.Update(context.Background(), putTicket(1)); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s).Tickets; got != 1 { // sees the new commit: the snapshot was released
		t.Fatalf("%d tickets", got)
	}
}

// TestNestedWalks: a walk's callback may read, and walk, on the same tx.
func TestNestedWalks(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	ctx := context.Background()
	if err := s.Update(ctx, func(tx daodian.Tx) error {
		for i := range 3 {
			tk := testTicket(i)
			if err := tx.InsertTicket(ctx, tk); err != nil {
				return err
			}
			if err := tx.InsertUse(ctx, &daodian.Use{TransID: fmt.Sprint(2200000000000000000 + i), TicketID: tk.ID, AppKey: "a", Units: 1}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pairs := 0
	if err := s.View(ctx, func(tx daodian.ReadTx) error {
		return tx.EachTicket(ctx, func(tk *daodian.Ticket) error {
			n, err := tx.ActiveUnits(ctx, tk.ID)
			if err != nil || n != 1 {
				return fmt.Errorf("ActiveUnits %d, %v", n, err)
			}
			return tx.EachTicket(ctx, func(*daodian.Ticket) error { pairs++; return nil })
		})
	}); err != nil {
		t.Fatal(err)
	}
	if pairs != 9 {
		t.Fatalf("%d pairs, want 9", pairs)
	}
}

func TestLinger(t *testing.T) {
	var c commits
	s := openAt(t, tempPath(t), Options{OnCommit: c.record, Linger: 2 * time.Millisecond, MaxBatch: 8})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if err := s.Update(context.Background(), putTicket(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := count(t, s).Tickets; got != 40 {
		t.Fatalf("%d tickets", got)
	}
	for _, n := range c.get() {
		if n > 8 {
			t.Fatalf("batch of %d with MaxBatch 8", n)
		}
	}
}

// TestBatchGrowsWhileSyncing: while the WAL is being synced, the writer keeps
// its next transaction open and runs Updates into it as they arrive, one at a
// time, then commits them together once the sync ends; none of them is
// answered before its own batch is synced.
func TestBatchGrowsWhileSyncing(t *testing.T) {
	var c commits
	var hold atomic.Bool
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	s := openAt(t, tempPath(t), Options{OnCommit: c.record, syncFile: func(f *os.File) error {
		if hold.Swap(false) {
			entered <- struct{}{}
			<-gate
		}
		return fdatasync(f)
	}})
	ctx := context.Background()
	hold.Store(true)
	first := make(chan error, 1)
	go func() { first <- s.Update(ctx, putTicket(0)) }()
	<-entered // committed alone; its sync is held

	const n = 20
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		// Each Update is sent only after the previous one has run, so a
		// writer that committed whatever it had would commit each alone.
		ran := make(chan struct{})
		go func() {
			errs <- s.Update(ctx, func(tx daodian.Tx) error {
				defer close(ran)
				return putTicket(i)(tx)
			})
		}()
		<-ran
	}
	select {
	case err := <-errs:
		t.Fatalf("an Update returned (%v) while the sync before its commit was held", err)
	case err := <-first:
		t.Fatalf("the first Update returned (%v) before its sync ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := c.get(); !slices.Equal(got, []int{1, n}) {
		t.Fatalf("batch sizes %v, want [1 %d]", got, n)
	}
	if got := count(t, s).Tickets; got != n+1 {
		t.Fatalf("%d tickets, want %d", got, n+1)
	}
}

// TestRefusalWaitsForItsBatch: an Update that fails is answered with its batch,
// once the writes before it are durable — its failure may rest on them (a use
// refused for units an earlier use in the batch took), and a reader must not
// learn of it while a View still sees the units there.
func TestRefusalWaitsForItsBatch(t *testing.T) {
	var hold atomic.Bool
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	s := openAt(t, tempPath(t), Options{syncFile: func(f *os.File) error {
		if hold.Swap(false) {
			entered <- struct{}{}
			<-gate
		}
		return fdatasync(f)
	}})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the store's Close, which waits for the syncer
	ctx := context.Background()
	hold.Store(true)
	first := make(chan error, 1)
	go func() { first <- s.Update(ctx, putTicket(0)) }()
	<-entered // the first batch is syncing; the next one stays open

	errRefused := errors.New("refused: ticket 1 exists")
	wrote, refused := make(chan error, 1), make(chan error, 1)
	ran := make(chan struct{})
	go func() {
		wrote <- s.Update(ctx, func(tx daodian.Tx) error {
			defer close(ran)
			return putTicket(1)(tx)
		})
	}()
	<-ran
	go func() {
		refused <- s.Update(ctx, func(tx daodian.Tx) error {
			if _, err := tx.Ticket(ctx, testTicket(1).ID); err == nil {
				return errRefused // it saw the uncommitted ticket 1
			}
			return nil
		})
	}()
	select {
	case err := <-refused:
		t.Fatalf("a refusal resting on an uncommitted write was answered (%v) before that write was durable", err)
	case err := <-wrote:
		t.Fatalf("an Update returned (%v) while the sync before its commit was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	open()
	for _, ch := range []chan error{first, wrote} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-refused; !errors.Is(err, errRefused) {
		t.Fatalf("refusal answered %v, want its own error", err)
	}
}

// TestSlowDiskFullBatches: on a disk slower than the Updates arrive, batches
// fill up to MaxBatch while the previous one syncs, are committed full and
// queued for the syncer behind it; every Update still succeeds, once.
func TestSlowDiskFullBatches(t *testing.T) {
	var c commits
	s := openAt(t, tempPath(t), Options{OnCommit: c.record, MaxBatch: 8, syncFile: func(f *os.File) error {
		time.Sleep(5 * time.Millisecond)
		return fdatasync(f)
	}})
	var wg sync.WaitGroup
	const n = 200
	for i := range n {
		wg.Go(func() {
			if err := s.Update(context.Background(), putTicket(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sizes := c.get()
	total, full := 0, 0
	for _, b := range sizes {
		if b > 8 {
			t.Fatalf("batch of %d with MaxBatch 8", b)
		}
		total += b
		if b == 8 {
			full++
		}
	}
	if total != n || count(t, s).Tickets != n {
		t.Fatalf("%d Updates committed, %d tickets; want %d", total, count(t, s).Tickets, n)
	}
	if full == 0 {
		t.Fatalf("batch sizes %v: none reached MaxBatch on a slow disk", sizes)
	}
}

// TestCloseFinishesQueued: Close lets every queued Update finish, then refuses
// new ones.
func TestCloseFinishesQueued(t *testing.T) {
	s, err := Open(context.Background(), tempPath(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := holdWriter(t, s)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if err := s.Update(context.Background(), putTicket(i)); err != nil {
				t.Errorf("queued Update during Close: %v", err)
			}
		})
	}
	waitQueued(t, s, 10)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close is waiting for the writer; new Updates are refused meanwhile.
	for {
		s.mu.RLock()
		closed := s.closed
		s.mu.RUnlock()
		if closed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Update(context.Background(), putTicket(99)); !errors.Is(err, ErrClosed) || !errors.Is(err, daodian.ErrTransient) {
		t.Fatalf("Update while closing: %v", err)
	}
	if err := s.View(context.Background(), func(daodian.ReadTx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("View while closing: %v", err)
	}
	h.release()
	wg.Wait()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s2 := openAt(t, s.Path(), Options{})
	if got := count(t, s2).Tickets; got != 10 {
		t.Fatalf("%d tickets after Close, want the 10 queued", got)
	}
}

// TestViewWaitsForSync: a View that saw a committed batch does not return
// before that batch is on disk, so nothing a reader learns can be lost.
func TestViewWaitsForSync(t *testing.T) {
	var hold atomic.Bool
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	s := openAt(t, tempPath(t), Options{syncFile: func(f *os.File) error {
		if hold.Load() {
			entered <- struct{}{}
			<-gate
		}
		return fdatasync(f)
	}})
	ctx := context.Background()
	hold.Store(true)
	upd := make(chan error, 1)
	go func() { upd <- s.Update(ctx, putTicket(1)) }()
	<-entered // committed, visible to readers, not yet synced
	hold.Store(false)
	view := make(chan error, 1)
	go func() {
		view <- s.View(ctx, func(tx daodian.ReadTx) error {
			_, err := tx.Ticket(ctx, testTicket(1).ID)
			return err
		})
	}()
	select {
	case err := <-view:
		t.Fatalf("View returned (%v) before the commit it saw was synced", err)
	case err := <-upd:
		t.Fatalf("Update returned (%v) before its commit was synced", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	if err := <-upd; err != nil {
		t.Fatal(err)
	}
	if err := <-view; err != nil {
		t.Fatalf("View: %v", err)
	}
}

// TestSyncFailureStopsStore: after a failed WAL sync nothing is acknowledged
// and the store refuses work until it is reopened.
func TestSyncFailureStopsStore(t *testing.T) {
	var fail atomic.Bool
	path := tempPath(t)
	s, err := Open(context.Background(), path, Options{syncFile: func(f *os.File) error {
		if fail.Load() {
			return syscall.EIO
		}
		return fdatasync(f)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Update(ctx, putTicket(1)); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	err = s.Update(ctx, putTicket(2))
	if !errors.Is(err, daodian.ErrTransient) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Update whose sync failed: %v", err)
	}
	if err := s.Update(ctx, putTicket(3)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Update after a failed sync: %v", err)
	}
	if err := s.View(ctx, func(daodian.ReadTx) error { return nil }); !errors.Is(err, syscall.EIO) {
		t.Fatalf("View after a failed sync: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Ping after a failed sync: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{})
	if err := s.Update(ctx, putTicket(4)); err != nil {
		t.Fatalf("Update after reopening: %v", err)
	}
}

// TestSerialSync runs the contract with SQLite's own synchronous=FULL.
func TestSerialSync(t *testing.T) {
	storetest.Run(t, factory(Options{SerialSync: true}))
}

// TestWALRestart writes enough to cross CheckpointPages many times and checks
// that the WAL file stays bounded and the data intact.
func TestWALRestart(t *testing.T) {
	path := tempPath(t)
	// The log restarts only between batches, and a batch grows for as long as
	// the previous one is being synced (a slow disk: hundreds of Updates, a
	// thousand pages). Small batches keep what the restarts must bound small.
	s := openAt(t, path, Options{CheckpointPages: 64, MaxBatch: 16})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 400 {
				n := g*1000 + i
				if err := s.Update(ctx, func(tx daodian.Tx) error {
					if err := tx.InsertTicket(ctx, testTicket(n)); err != nil {
						return err
					}
					return tx.PutIdem(ctx, &daodian.IdemRecord{IdemKey: daodian.IdemKey{AppKey: "a", Op: daodian.OpUse, RequestID: strconv.Itoa(n)},
						Answer: make([]byte, 2000)})
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	c := count(t, s)
	if c.Tickets != 3200 || c.Idem != 3200 {
		t.Fatalf("counts %+v", c)
	}
	// The answers alone took 3200 pages; a log that never restarted would
	// hold them all. One that restarts holds what was written since the last
	// restart: up to a checkpoint interval's worth, which at this test's rate
	// (every Update a new 2 KB record) has been seen near 2000 frames.
	frames, err := s.ckpt.checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("WAL holds %d frames after more than %d pages were written", frames, 3200)
	if frames >= 3200 {
		t.Errorf("WAL holds %d frames: it did not restart", frames)
	}
}

// TestKill9 kills a writing process and checks that every Update it saw
// return is in the database.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := tempPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.v")
	cmd.Env = append(os.Environ(), "DAODIAN_HELPER_DB="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 400 {
		if id, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
			acked = append(acked, id)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 400 {
		t.Fatalf("helper acknowledged only %d Updates", len(acked))
	}
	s := openAt(t, path, Options{}) // the kernel released the dead process's lock
	missing := 0
	if err := s.View(context.Background(), func(tx daodian.ReadTx) error {
		for _, id := range acked {
			if _, err := tx.Ticket(context.Background(), id); errors.Is(err, daodian.ErrNotFound) {
				missing++
			} else if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged Updates lost by kill -9", missing, len(acked))
	}
	t.Logf("%d acknowledged Updates survived kill -9; %d tickets in all", len(acked), count(t, s).Tickets)
}

// TestHelperWriter is the process TestKill9 kills.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("DAODIAN_HELPER_DB")
	if path == "" {
		t.Skip("helper process for TestKill9")
	}
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(n.Add(1))
				tk := testTicket(i)
				if err := s.Update(context.Background(), func(tx daodian.Tx) error { return tx.InsertTicket(context.Background(), tk) }); err != nil {
					fmt.Println("update:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Println("ok", tk.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestPageCacheSizes: the write connection of a Store that owns its file
// keeps the small page cache that spares its commits SQLite's scan of the
// whole cache (DefaultCacheKiB), a Shared Store's the large one of bulk
// writes, each read connection its own size, and explicit options win.
func TestPageCacheSizes(t *testing.T) {
	ctx := context.Background()
	// cacheKiB reads the page caches of s's write connection and of one of
	// its read connections, in KiB.
	cacheKiB := func(s *Store) (write, read int) {
		t.Helper()
		// The writer's goroutine uses the connection only for Updates, and
		// none runs here.
		var n int
		if err := s.ws.conn.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		write = -n
		rs, err := s.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { s.readers <- rs }()
		if err := rs.conn.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return write, -n
	}
	path := tempPath(t)
	owner := openAt(t, path, Options{})
	if w, r := cacheKiB(owner); w != DefaultCacheKiB || r != DefaultReadCacheKiB {
		t.Errorf("owning store: write cache %d KiB, read cache %d KiB; want %d and %d", w, r, DefaultCacheKiB, DefaultReadCacheKiB)
	}
	shared := openAt(t, path, Options{Shared: true})
	if w, r := cacheKiB(shared); w != DefaultSharedCacheKiB || r != DefaultReadCacheKiB {
		t.Errorf("shared store: write cache %d KiB, read cache %d KiB; want %d and %d", w, r, DefaultSharedCacheKiB, DefaultReadCacheKiB)
	}
	set := openAt(t, tempPath(t), Options{CacheKiB: 3000, ReadCacheKiB: 5000})
	if w, r := cacheKiB(set); w != 3000 || r != 5000 {
		t.Errorf("explicit sizes: write cache %d KiB, read cache %d KiB; want 3000 and 5000", w, r)
	}
}

// BenchmarkUpdate runs §6's workload against the store alone: parallel
// Updates, each the statements of a redemption or of the reversal of it
// (idempotency lookup, ticket, latest active use, then either insert use or
// mark reversed, set available, record the answer), on 10 000 tickets, with
// 64 concurrent callers. It reports Updates/s, process CPU per Update, the
// mean batch and the callers' p50/p99 latency.
//
// Environment: DAODIAN_BENCH_TICKETS (ledger size), DAODIAN_BENCH_CLIENTS
// (callers), DAODIAN_BENCH_SERIAL_SYNC=1 (Options.SerialSync),
// DAODIAN_BENCH_CHECKPOINT_INTERVAL (Options.CheckpointInterval),
// DAODIAN_BENCH_CACHE_KIB (Options.CacheKiB).
func BenchmarkUpdate(b *testing.B) {
	tickets := 10_000
	if v, err := strconv.Atoi(os.Getenv("DAODIAN_BENCH_TICKETS")); err == nil && v > 0 {
		tickets = v
	}
	var nCommits, nOps atomic.Int64
	ckInterval, _ := time.ParseDuration(os.Getenv("DAODIAN_BENCH_CHECKPOINT_INTERVAL"))
	cacheKiB, _ := strconv.Atoi(os.Getenv("DAODIAN_BENCH_CACHE_KIB"))
	s := openAt(b, tempPath(b), Options{
		SerialSync:         os.Getenv("DAODIAN_BENCH_SERIAL_SYNC") != "",
		CheckpointInterval: ckInterval,
		CacheKiB:           cacheKiB,
		OnCommit: func(n int, _ time.Duration) {
			nCommits.Add(1)
			nOps.Add(int64(n))
		}})
	ctx := context.Background()
	for lo := 0; lo < tickets; lo += 5000 {
		if err := s.Update(ctx, func(tx daodian.Tx) error {
			for i := lo; i < min(lo+5000, tickets); i++ {
				tk := testTicket(i)
				tk.SubOrderNo = fmt.Sprintf("S%d", i)
				tk.Quantity, tk.Available = 1, 1
				if err := tx.InsertTicket(ctx, tk); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	answer := []byte(strings.Repeat("a", 120))
	var next atomic.Int64
	var reversals, uses atomic.Int64
	nCommits.Store(0)
	nOps.Store(0)
	clients := 64
	if v, err := strconv.Atoi(os.Getenv("DAODIAN_BENCH_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	b.SetParallelism(max(1, clients/max(1, runtime.GOMAXPROCS(0))))
	var latMu sync.Mutex
	var lats []time.Duration
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		var mine []time.Duration
		defer func() {
			latMu.Lock()
			lats = append(lats, mine...)
			latMu.Unlock()
		}()
		for pb.Next() {
			t0 := time.Now()
			id := testTicket(int(next.Add(1)) % tickets).ID
			req := fmt.Sprintf("%016x%016x", rnd.Uint64(), rnd.Uint64())
			err := s.Update(ctx, func(tx daodian.Tx) error {
				key := daodian.IdemKey{AppKey: "app-1", Op: daodian.OpReverse, RequestID: req}
				if _, err := tx.Idem(ctx, key); !errors.Is(err, daodian.ErrNotFound) {
					return fmt.Errorf("idem: %v", err)
				}
				tk, err := tx.Ticket(ctx, id)
				if err != nil {
					return err
				}
				now := time.Now()
				u, err := tx.LatestActiveUse(ctx, id, "app-1")
				switch {
				case err == nil: // reverse it
					u.Reversed, u.ReversedAt, u.ReversalAppKey, u.ReversalRequestID, u.ReversalBizDate = true, now, "app-1", req, now
					if err := tx.MarkReversed(ctx, u); err != nil {
						return err
					}
					if err := tx.SetAvailable(ctx, id, tk.Available+u.Units); err != nil {
						return err
					}
					reversals.Add(1)
				case errors.Is(err, daodian.ErrNotFound): // use it
					key.Op = daodian.OpUse
					trans, err := tx.NewID(ctx)
					if err != nil {
						return err
					}
					if err := tx.InsertUse(ctx, &daodian.Use{TransID: trans, GroupTransID: trans, TicketID: id, AppKey: "app-1",
						RequestID: req, ShopID: "shop-1", Units: 1, GmtBiz: now, CreatedAt: now}); err != nil {
						return err
					}
					if err := tx.SetAvailable(ctx, id, tk.Available-1); err != nil {
						return err
					}
					uses.Add(1)
				default:
					return err
				}
				return tx.PutIdem(ctx, &daodian.IdemRecord{IdemKey: key, Fingerprint: id, TicketID: id, Answer: answer, CreatedAt: now})
			})
			if err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
	})
	b.StopTimer()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	slices.Sort(lats)
	if len(lats) > 0 {
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if c := nCommits.Load(); c > 0 {
		b.ReportMetric(float64(nOps.Load())/float64(c), "ops/commit")
	}
	b.Logf("N=%d: %d uses, %d reversals", b.N, uses.Load(), reversals.Load())
}

// oldDatabase returns the path of a new database made to look as a build of
// schema version v left it (schemaAt).
func oldDatabase(t *testing.T, v int, undo ...string) string {
	t.Helper()
	path := tempPath(t)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	schemaAt(t, path, v, undo...)
	return path
}

// schemaAt makes the closed database at path look as a build of schema version
// v left it: undo drops what the later versions added, and the version is set
// to v, so that the next open migrates it again.
func schemaAt(t *testing.T, path string, v int, undo ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range append(undo, `UPDATE meta SET value = '`+strconv.Itoa(v)+`' WHERE key = 'schema_version'`) {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
