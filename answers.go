package daodian

import "sync"

// answerCache remembers the final decisions this process recorded for one kind of
// operation, so that a replay — what a POS sends after a lost response, often in
// bursts — is answered without touching the store. It is safe because a recorded
// decision is written once, never changes, and enters the cache only after its
// transaction is durable. A miss proves nothing (the decision may be older than the
// cache, or recorded by another process on the same database): the caller then
// takes the write path, which reads the record inside the transaction and decides
// for sure.
//
// Memory is bounded by two generations of at most max entries each: when the
// current one fills up it becomes the previous one and the oldest generation is
// dropped, so recent decisions — the ones replays ask for — stay.
type answerCache[A any] struct {
	mu        sync.RWMutex
	cur, prev map[IdemKey]cachedDecision[A]
	max       int
}

type cachedDecision[A any] struct {
	fingerprint string
	decision    decision[A] // never mutated
}

// maxAnswers bounds each generation of each operation's answer cache. An entry is
// a few hundred bytes, so the three caches, two full generations each, are tens of
// megabytes at most.
const maxAnswers = 100_000

func newAnswerCache[A any](max int) *answerCache[A] {
	return &answerCache[A]{cur: make(map[IdemKey]cachedDecision[A]), max: max}
}

func (c *answerCache[A]) get(k IdemKey) (cachedDecision[A], bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if a, ok := c.cur[k]; ok {
		return a, true
	}
	a, ok := c.prev[k]
	return a, ok
}

func (c *answerCache[A]) put(k IdemKey, fingerprint string, d decision[A]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.max {
		c.prev, c.cur = c.cur, make(map[IdemKey]cachedDecision[A], c.max)
	}
	c.cur[k] = cachedDecision[A]{fingerprint: fingerprint, decision: d}
}
