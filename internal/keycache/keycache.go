// Package keycache keeps what the store said about a key that clients present
// before they are authenticated — an app key (gateway/), an admin token's hash
// (admin/) — for a short time, and bounds the store reads of keys it does not
// hold.
//
// Any client can present random keys. Unknown keys are therefore never cached
// (a client could fill memory with them), and their store reads go through a
// small number of lookups at once, waiting a bounded time for one: a flood of
// random keys neither takes the store's connections from authenticated work nor
// delays the keys the cache holds, which are read again outside that bound when
// they expire (only keys that exist get there).
package keycache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/daodian/daodian"
)

// ErrBusy is the answer to a key the cache does not hold when no lookup became
// free within Config.LookupWait.
var ErrBusy = errors.New("too many lookups of unknown keys at once")

// Config sets a cache's bounds.
type Config struct {
	// TTL is how long a value read from the store is trusted: a change in the
	// store (a disabled app, a revoked token) takes effect within it.
	TTL time.Duration
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// MaxEntries bounds the cache; beyond it the cache is dropped and refilled.
	MaxEntries int
	// MaxLookups is the most store reads of unknown keys at once.
	MaxLookups int
	// LookupWait is the longest a request waits for one of them.
	LookupWait time.Duration
}

// Cache holds values of type V by key. It is safe for concurrent use.
type Cache[V any] struct {
	cfg Config

	mu sync.RWMutex
	m  map[string]entry[V]

	lookups chan struct{}
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns an empty cache.
func New[V any](cfg Config) *Cache[V] {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Cache[V]{cfg: cfg, m: make(map[string]entry[V]), lookups: make(chan struct{}, max(cfg.MaxLookups, 1))}
}

// Get returns the value of key: the cached one while fresh, else what load
// reads. load's daodian.ErrNotFound is returned as it is, and removes the key
// from the cache; any other error of load is returned and the cache is left
// as it was. A key the cache does not hold is loaded within the bound on
// lookups, or answered ErrBusy.
func (c *Cache[V]) Get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	now := c.cfg.Clock()
	c.mu.RLock()
	e, held := c.m[key]
	c.mu.RUnlock()
	if held && now.Before(e.expires) {
		return e.v, nil
	}
	var zero V
	if !held {
		if err := c.acquire(ctx); err != nil {
			return zero, err
		}
		defer c.release()
	}
	v, err := load(ctx)
	if err != nil {
		if held && errors.Is(err, daodian.ErrNotFound) {
			// Deleted: its key is now as unknown as a random one.
			c.mu.Lock()
			delete(c.m, key)
			c.mu.Unlock()
		}
		return zero, err
	}
	c.mu.Lock()
	if len(c.m) >= c.cfg.MaxEntries {
		c.m = make(map[string]entry[V])
	}
	c.m[key] = entry[V]{v: v, expires: now.Add(c.cfg.TTL)}
	c.mu.Unlock()
	return v, nil
}

// acquire takes one of the lookups, waiting at most LookupWait.
func (c *Cache[V]) acquire(ctx context.Context) error {
	select {
	case c.lookups <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(c.cfg.LookupWait)
	defer t.Stop()
	select {
	case c.lookups <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done(): // the client left; nobody reads the answer
		return ErrBusy
	}
}

func (c *Cache[V]) release() { <-c.lookups }
