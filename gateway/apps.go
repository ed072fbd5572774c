package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/keycache"
	"github.com/daodian/daodian/top"
	"golang.org/x/time/rate"
)

// appCache keeps apps read from the store for a short time: the signature check
// needs the secret on every request, and a store read per request would put the
// store on the hot path of requests that never touch the ledger.
type appCache struct {
	read func(ctx context.Context, key string) (*daodian.App, error) // Ledger.App
	c    *keycache.Cache[*cachedApp]
}

// cachedApp is an app as the cache holds it, with its secrets prepared for
// verifying signatures: the keyed HMAC states live as long as the entry, and
// a rotated secret gets new ones when the entry is read again.
type cachedApp struct {
	*daodian.App
	key      *top.Key
	previous *top.Key // nil without a previous secret
}

// maxCachedApps bounds the cache; beyond it the cache is dropped and refilled.
const maxCachedApps = 100_000

// Bounds on the store reads of app keys the cache does not hold. The app is
// looked up before the signature can be checked, so any client can make the
// gateway look up random keys; these reads must not take the store's
// connections from signed requests. A key the cache holds, even expired, is
// read again without this bound: only apps that exist get there.
const (
	// maxAppLookups is the most such reads at once: half the smallest read
	// capacity of either store (the embedded store's 4 read sessions on a small
	// machine; PostgreSQL's pool is at least 4), so that reads for signed
	// requests always find a connection.
	maxAppLookups = 2
	// appLookupWait is the longest a request waits for one; after it, the
	// answer is code 15 isp.server-busy. Generous for a burst of genuine new
	// keys (a read takes well under a millisecond), short for a flood.
	appLookupWait = time.Second
)

// errLookupBusy: a key the cache does not hold could not be looked up within
// appLookupWait.
var errLookupBusy = keycache.ErrBusy

func newAppCache(read func(ctx context.Context, key string) (*daodian.App, error), ttl time.Duration, clock func() time.Time) *appCache {
	return &appCache{read: read, c: keycache.New[*cachedApp](keycache.Config{
		TTL: ttl, Clock: clock, MaxEntries: maxCachedApps, MaxLookups: maxAppLookups, LookupWait: appLookupWait,
	})}
}

// get returns the app, daodian.ErrNotFound, or errLookupBusy. Unknown keys are
// not cached, so a client cannot fill memory with random keys, and their store
// reads are bounded (maxAppLookups).
func (c *appCache) get(ctx context.Context, key string) (*cachedApp, error) {
	return c.c.Get(ctx, key, func(ctx context.Context) (*cachedApp, error) {
		app, err := c.read(ctx, key)
		if err != nil {
			return nil, err
		}
		a := &cachedApp{App: app, key: top.NewKey(app.Secret)}
		if app.PreviousSecret != "" {
			a.previous = top.NewKey(app.PreviousSecret)
		}
		return a, nil
	})
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
