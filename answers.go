package daodian

import "sync"

// answerCache remembers the final answers this process recorded, so that a replay
// — what a POS sends after a lost response, often in bursts — is answered without
// touching the store. It is safe because a recorded answer is written once, never
// changes, and enters the cache only after its transaction is durable. A miss
// proves nothing (the answer may be older than the cache, or recorded by another
// process on the same database): the caller then takes the write path, which
// reads the record inside the transaction and decides for sure.
//
// Memory is bounded by two generations of at most maxAnswers entries each: when
// the current one fills up it becomes the previous one and the oldest generation
// is dropped, so recent answers — the ones replays ask for — stay.
type answerCache struct {
	mu        sync.RWMutex
	cur, prev map[IdemKey]cachedAnswer
	max       int
}

type cachedAnswer struct {
	fingerprint string
	answer      any // ReverseResult, UseResult, RefundResult or Refusal; never mutated
}

// maxAnswers bounds each generation of the answer cache. An entry is a few hundred
// bytes, so two full generations are tens of megabytes.
const maxAnswers = 100_000

func newAnswerCache(max int) *answerCache {
	return &answerCache{cur: make(map[IdemKey]cachedAnswer), max: max}
}

func (c *answerCache) get(k IdemKey) (cachedAnswer, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if a, ok := c.cur[k]; ok {
		return a, true
	}
	a, ok := c.prev[k]
	return a, ok
}

func (c *answerCache) put(k IdemKey, fingerprint string, answer any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.max {
		c.prev, c.cur = c.cur, make(map[IdemKey]cachedAnswer, c.max)
	}
	c.cur[k] = cachedAnswer{fingerprint: fingerprint, answer: answer}
}
