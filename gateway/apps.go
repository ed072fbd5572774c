package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/daodian/daodian"
	"golang.org/x/time/rate"
)

// appCache keeps apps read from the store for a short time: the signature check
// needs the secret on every request, and a store read per request would put the
// store on the hot path of requests that never touch the ledger.
type appCache struct {
	store daodian.Store
	ttl   time.Duration
	clock func() time.Time

	mu sync.RWMutex
	m  map[string]cachedApp
}

type cachedApp struct {
	app     *daodian.App
	expires time.Time
}

// maxCachedApps bounds the cache; beyond it the cache is dropped and refilled.
const maxCachedApps = 100_000

func newAppCache(s daodian.Store, ttl time.Duration, clock func() time.Time) *appCache {
	return &appCache{store: s, ttl: ttl, clock: clock, m: make(map[string]cachedApp)}
}

// get returns the app or daodian.ErrNotFound. Unknown keys are not cached, so a
// client cannot fill memory with random keys.
func (c *appCache) get(ctx context.Context, key string) (*daodian.App, error) {
	now := c.clock()
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.app, nil
	}
	var app *daodian.App
	err := c.store.View(ctx, func(tx daodian.ReadTx) error {
		var err error
		app, err = tx.App(ctx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedApps {
		c.m = make(map[string]cachedApp)
	}
	c.m[key] = cachedApp{app: app, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return app, nil
}

// limiter holds one token bucket per app. The limit is per process: several
// gateways on one database each allow the app's rate.
type limiter struct {
	mu sync.Mutex
	m  map[string]*appLimit
}

type appLimit struct {
	perS int
	l    *rate.Limiter
}

func newLimiter() *limiter { return &limiter{m: make(map[string]*appLimit)} }

// allow reports whether the app may make a call now, and if not how long until it
// may. perS ≤ 0 means unlimited.
func (l *limiter) allow(key string, perS int, now time.Time) (bool, time.Duration) {
	if perS <= 0 {
		return true, 0
	}
	l.mu.Lock()
	a, ok := l.m[key]
	if !ok || a.perS != perS {
		if len(l.m) >= maxCachedApps {
			l.m = make(map[string]*appLimit)
		}
		a = &appLimit{perS: perS, l: rate.NewLimiter(rate.Limit(perS), perS)}
		l.m[key] = a
	}
	l.mu.Unlock()
	r := a.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
