package keycache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// store is a map read by load, counting its reads.
type store struct {
	mu    sync.Mutex
	m     map[string]int
	reads atomic.Int32
	fail  error
}

func (s *store) load(key string) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		s.reads.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail != nil {
			return 0, s.fail
		}
		v, ok := s.m[key]
		if !ok {
			return 0, daodian.ErrNotFound
		}
		return v, nil
	}
}

func (s *store) set(key string, v int, present bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if present {
		s.m[key] = v
	} else {
		delete(s.m, key)
	}
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(time.Unix(1_000_000, 0))
	st := &store{m: map[string]int{"a": 1}}
	c := New[int](Config{TTL: 2 * time.Second, Clock: clk.Now, MaxEntries: 100, MaxLookups: 2, LookupWait: time.Second})
	get := func(key string) (int, error) { return c.Get(ctx, key, st.load(key)) }
	wantValue := func(what, key string, want int, reads int32) {
		t.Helper()
		v, err := get(key)
		if err != nil || v != want || st.reads.Load() != reads {
			t.Fatalf("%s: %d, %v after %d store reads; want %d after %d", what, v, err, st.reads.Load(), want, reads)
		}
	}

	wantValue("first read", "a", 1, 1)
	wantValue("within the TTL, from the cache", "a", 1, 1)
	st.set("a", 2, true)
	clk.Advance(time.Second)
	wantValue("a change is not seen within the TTL", "a", 1, 1)
	clk.Advance(time.Second)
	wantValue("a change is seen once the TTL has passed", "a", 2, 2)

	// Unknown keys are read every time, never cached.
	for i := range 3 {
		if _, err := get("nope"); !errors.Is(err, daodian.ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
		if got := st.reads.Load(); got != int32(3+i) {
			t.Fatalf("unknown key read %d times in all, want %d", got, 3+i)
		}
	}

	// A failed read leaves the cached value in place; a deleted key is dropped.
	clk.Advance(3 * time.Second)
	st.mu.Lock()
	st.fail = errors.New("store down")
	st.mu.Unlock()
	if _, err := get("a"); err == nil || errors.Is(err, daodian.ErrNotFound) {
		t.Fatalf("read failing: %v, want its error", err)
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	st.set("a", 0, false)
	if _, err := get("a"); !errors.Is(err, daodian.ErrNotFound) {
		t.Fatalf("a deleted key: %v, want ErrNotFound", err)
	}
	c.mu.RLock()
	_, held := c.m["a"]
	c.mu.RUnlock()
	if held {
		t.Error("a deleted key is still cached")
	}
}

// TestUnknownLookupsBounded: at most MaxLookups loads of unknown keys run at
// once, a request waits at most LookupWait for one (then ErrBusy), and a key the
// cache holds is served, and reloaded when expired, while they are all taken.
func TestUnknownLookupsBounded(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(time.Unix(1_000_000, 0))
	c := New[int](Config{TTL: time.Second, Clock: clk.Now, MaxEntries: 100, MaxLookups: 2, LookupWait: 50 * time.Millisecond})
	if v, err := c.Get(ctx, "known", func(context.Context) (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatal(v, err)
	}
	block := make(chan struct{})
	var running, peak atomic.Int32
	slow := func(context.Context) (int, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-block
		running.Add(-1)
		return 0, daodian.ErrNotFound
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _, _ = c.Get(ctx, "unknown", slow) })
	}
	for running.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if _, err := c.Get(ctx, "unknown-3", slow); !errors.Is(err, ErrBusy) {
		t.Fatalf("a third unknown key: %v, want ErrBusy", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("ErrBusy after %v, want after the 50ms wait", d)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(cancelled, "unknown-4", slow); !errors.Is(err, ErrBusy) {
		t.Fatalf("an unknown key of a client that left: %v, want ErrBusy", err)
	}
	if v, err := c.Get(ctx, "known", slow); err != nil || v != 7 {
		t.Fatalf("a cached key while lookups are taken: %d, %v", v, err)
	}
	clk.Advance(2 * time.Second)
	if v, err := c.Get(ctx, "known", func(context.Context) (int, error) { return 8, nil }); err != nil || v != 8 {
		t.Fatalf("an expired cached key while lookups are taken: %d, %v; want it reloaded outside the bound", v, err)
	}
	close(block)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Errorf("%d unknown-key loads at once, want 2", p)
	}
}

// TestMaxEntries: the cache never holds more than MaxEntries keys.
func TestMaxEntries(t *testing.T) {
	c := New[int](Config{TTL: time.Hour, MaxEntries: 10, MaxLookups: 1, LookupWait: time.Second})
	for i := range 100 {
		key := string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, err := c.Get(context.Background(), key, func(context.Context) (int, error) { return i, nil }); err != nil {
			t.Fatal(err)
		}
		if n := len(c.m); n > 10 {
			t.Fatalf("%d entries, more than MaxEntries", n)
		}
	}
}
