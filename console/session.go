package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sessions. Signing in with an admin token makes a session: an opaque random
// id in a cookie (never the token), mapped in this process's memory to the
// token's hash and id. The map is keyed by the SHA-256 of the id, so that
// neither a memory dump nor a timing of the map's lookup yields a usable
// cookie. Every request re-checks the token through the admin API's token
// cache, so that revoking the token ends its sessions within 2 s. A session
// ends when it has been idle for Config.IdleTimeout, at Config.MaxAge after
// sign-in, at sign-out, or when the store of sessions is full and it is the
// one seen least recently. A restart ends every session.

// Cookie names. The session cookie is scoped to the console's path; the
// sign-in cookie is the sign-in form's CSRF token (a double submit: there is
// no session to hold it yet).
const (
	sessionCookie = "daodian_session"
	loginCookie   = "daodian_login"
)

// session is a signed-in browser.
type session struct {
	key       string // SHA-256 of the cookie's id
	tokenHash string
	tokenID   string
	// csrf is the token every form of the session carries.
	csrf    string
	created time.Time
	seen    time.Time
	// flash is a one-time message for the next page (after a redirect).
	flash *flash
}

// flash is a message shown once.
type flash struct {
	Error bool
	Text  string
}

type sessions struct {
	mu     sync.Mutex
	m      map[string]*session
	max    int
	idle   time.Duration
	maxAge time.Duration
	clock  func() time.Time
}

// randomText returns n random bytes as unpadded base64url text.
func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return string(sum[:])
}

// create makes a session for a token and returns its cookie's id.
func (s *sessions) create(tokenHash, tokenID string) (string, *session) {
	id := randomText(32)
	now := s.clock()
	ss := &session{key: sessionKey(id), tokenHash: tokenHash, tokenID: tokenID, csrf: randomText(32), created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		s.evict(now)
	}
	s.m[ss.key] = ss
	return id, ss
}

// evict drops the expired sessions and, if that freed none, the one seen
// least recently.
func (s *sessions) evict(now time.Time) {
	var oldest *session
	for k, ss := range s.m {
		if s.expired(ss, now) {
			delete(s.m, k)
			continue
		}
		if oldest == nil || ss.seen.Before(oldest.seen) {
			oldest = ss
		}
	}
	if len(s.m) >= s.max && oldest != nil {
		delete(s.m, oldest.key)
	}
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.seen) >= s.idle || now.Sub(ss.created) >= s.maxAge
}

// get returns the live session of a cookie's id and marks it seen; an
// expired one is dropped.
func (s *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	key := sessionKey(id)
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[key]
	if ss == nil {
		return nil
	}
	if s.expired(ss, now) {
		delete(s.m, key)
		return nil
	}
	ss.seen = now
	return ss
}

func (s *sessions) drop(ss *session) {
	s.mu.Lock()
	delete(s.m, ss.key)
	s.mu.Unlock()
}

// setFlash and takeFlash pass a message to the session's next page.
func (s *sessions) setFlash(ss *session, f *flash) {
	s.mu.Lock()
	ss.flash = f
	s.mu.Unlock()
}

func (s *sessions) takeFlash(ss *session) *flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := ss.flash
	ss.flash = nil
	return f
}

// sameToken compares two secrets in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// throttle bounds failed sign-ins per client address: Config.LoginBurst at
// once, then one per Config.LoginEvery. Only failures spend; a client over
// the bound is refused (429) before its token is even checked. The map of
// addresses is bounded: when full it starts afresh (a client flooding
// addresses gets no more tries per address than any other).
type throttle struct {
	mu    sync.Mutex
	m     map[string]*rate.Limiter
	max   int
	every time.Duration
	burst int
}

func (t *throttle) limiter(addr string) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[addr]
	if l == nil {
		if len(t.m) >= t.max {
			t.m = make(map[string]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Every(t.every), t.burst)
		t.m[addr] = l
	}
	return l
}

// allowed reports whether addr may try to sign in at now, and if not, how
// long it must wait.
func (t *throttle) allowed(addr string, now time.Time) (bool, time.Duration) {
	l := t.limiter(addr)
	if l.TokensAt(now) >= 1 {
		return true, 0
	}
	r := l.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// failed spends one try of addr.
func (t *throttle) failed(addr string, now time.Time) {
	t.limiter(addr).AllowN(now, 1)
}

// clientAddr is the address a request came from: the connection's peer, or
// with trustProxy the address the proxy in front appended last to
// X-Forwarded-For (the ones before it are the client's to write).
func clientAddr(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if v := r.Header.Values("X-Forwarded-For"); len(v) > 0 {
			last := v[len(v)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a := strings.TrimSpace(last); a != "" {
				return a
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// secure reports whether the browser reached the console over TLS: directly,
// or with trustProxy through a proxy that says so in X-Forwarded-Proto.
func secure(r *http.Request, trustProxy bool) bool {
	if r.TLS != nil {
		return true
	}
	return trustProxy && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
}
