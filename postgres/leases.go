package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daodian/daodian"
)

// Webhook leases (SPEC §9: with several gateways, each event is delivered by
// one of them at a time). A lease is a session-level advisory lock keyed by
// the webhook's id, held on a connection of its own, outside any transaction:
//
//   - one holder at a time, whichever process asks (pg_try_advisory_lock
//     never waits: a gateway that cannot take a lease leaves that webhook to
//     its holder);
//   - a gateway that dies (kill -9 included) loses its connection, and the
//     server frees its locks at once: the next gateway to look takes them;
//   - nothing is written: a lease costs no WAL, no row, no vacuum.
//
// The session is checked every leasePing; when it has ended (the server
// restarted, failed over, or cut it) every lease is lost at once and Lost is
// closed, so that the holder stops delivering. Between the end of the session
// and that check another gateway may already deliver: a delivery may then be
// sent twice (at least once, as SPEC §9 allows), never lost.

// leasePing is how often the leases' session is checked, and leaseTimeout
// how long one of its statements may take: a server that does not answer
// within it is taken for gone (the leases are then lost, and taken again on
// a new session), rather than left to hang the holder.
const (
	leasePing    = time.Second
	leaseTimeout = 2 * time.Second
)

var errLeasesLost = errors.New("postgres: the session holding the webhook leases ended")

// WebhookLeases opens a connection for this process's webhook leases; it
// implements daodian.WebhookLeaser.
func (s *Store) WebhookLeases(ctx context.Context) (daodian.WebhookLeases, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	// The process id tells an operator (and a test) which gateway delivers.
	cfg.RuntimeParams["application_name"] = "daodian webhook leases pid " + strconv.Itoa(os.Getpid())
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, daodian.Transient(fmt.Errorf("postgres: connect for webhook leases: %w", err))
	}
	// A standby grants advisory locks too, but does not replicate them: a
	// lease taken there would not keep a gateway on the primary from holding
	// the same lease, and two would deliver one webhook at once. A URL that
	// lets a gateway reach the standby (no target_session_attrs=read-write)
	// does so while the primary is down; after a promotion the session would
	// even go on holding the lease on the new primary.
	if err := refuseStandby(ctx, c); err != nil {
		_ = c.Close(ctx)
		return nil, err
	}
	l := &leases{c: c, held: map[string]int64{}, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch()
	return l, nil
}

type leases struct {
	mu   sync.Mutex // one statement at a time on c
	c    *pgx.Conn
	held map[string]int64 // webhook id → lock key
	gone bool

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func (l *leases) Lost() <-chan struct{} { return l.lost }

// fail marks every lease lost (the session is gone, or in an unknown state)
// and closes the connection, which makes the server free whatever it still
// holds. Called with mu held.
func (l *leases) fail() {
	l.gone = true
	clear(l.held)
	l.lostOnce.Do(func() { close(l.lost) })
	cctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.c.Close(cctx)
}

// refuseStandby fails, transiently, unless c is on a primary.
func refuseStandby(ctx context.Context, c *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, leaseTimeout)
	defer cancel()
	var standby bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return daodian.Transient(fmt.Errorf("postgres: webhook leases: %w", err))
	}
	if standby {
		return daodian.Transient(errors.New("postgres: the server is a standby, where webhook leases would not exclude the primary's; list every host of the cluster in the URL with target_session_attrs=read-write"))
	}
	return nil
}

// Acquire takes a webhook's lease if it is free; holding it already is true.
func (l *leases) Acquire(ctx context.Context, webhookID string) (bool, error) {
	key, err := webhookLockKey(webhookID)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, leaseTimeout)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		return false, errLeasesLost
	}
	if _, ok := l.held[webhookID]; ok {
		return true, nil // a second lock would need a second unlock
	}
	var ok bool
	if err := l.c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		// Whether the lock was taken is unknown: give up the session.
		l.fail()
		return false, daodian.Transient(fmt.Errorf("postgres: take a webhook lease: %w", err))
	}
	if ok {
		l.held[webhookID] = key
	}
	return ok, nil
}

// Release gives a webhook's lease up.
func (l *leases) Release(ctx context.Context, webhookID string) error {
	ctx, cancel := context.WithTimeout(ctx, leaseTimeout)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	key, ok := l.held[webhookID]
	if !ok || l.gone {
		return nil
	}
	delete(l.held, webhookID)
	var released bool
	if err := l.c.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&released); err != nil {
		l.fail()
		return daodian.Transient(fmt.Errorf("postgres: release a webhook lease: %w", err))
	}
	return nil
}

// watch checks the session every leasePing until Close.
func (l *leases) watch() {
	defer close(l.done)
	t := time.NewTicker(leasePing)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.gone {
			l.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
		err := l.c.Ping(ctx)
		cancel()
		if err != nil {
			l.fail()
		}
		l.mu.Unlock()
	}
}

// Close releases every lease, then ends the session. Ending the session alone
// would free them too, but only once the server process has gone, a moment
// after the connection closes: unlocking first frees them before Close
// returns, so another gateway can take them over at once.
func (l *leases) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.gone {
		l.gone = true
		clear(l.held)
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A failure here leaves the leases to the session's end.
		_, _ = l.c.Exec(cctx, "SELECT pg_advisory_unlock_all()")
		return l.c.Close(cctx)
	}
	return nil
}
