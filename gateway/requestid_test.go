package gateway_test

import (
	"strings"
	"testing"

	"github.com/daodian/daodian/gateway"
)

// TestRequestIDsAreRandom (SPEC §3.4): trace ids are unique, short, made of
// log-friendly characters, and random: consecutive ids share no prefix longer
// than chance allows, and every character position takes every value about
// equally often, so that no part of an id counts requests.
func TestRequestIDsAreRandom(t *testing.T) {
	const n = 100_000
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	seen := make(map[string]bool, n)
	var counts [16][32]int
	prev := ""
	longShared := 0
	for range n {
		id := gateway.NewRequestID()
		if len(id) != 16 {
			t.Fatalf("id %q: %d characters, want 16", id, len(id))
		}
		if seen[id] {
			t.Fatalf("id %q twice in %d", id, n)
		}
		seen[id] = true
		for i := range len(id) {
			k := strings.IndexByte(alphabet, id[i])
			if k < 0 {
				t.Fatalf("id %q has %q", id, id[i])
			}
			counts[i][k]++
		}
		// Two random ids share a 3-character prefix with probability 32^-3.
		if len(prev) == 16 && id[:3] == prev[:3] {
			longShared++
		}
		prev = id
	}
	if longShared > 20 { // about 3 expected in 100 000
		t.Fatalf("%d consecutive ids share a 3-character prefix", longShared)
	}
	// 80 random bits fill all 16 positions: each value of each position about
	// n/32 times (3125, standard deviation about 55).
	for i, c := range counts {
		for k, m := range c {
			if m < 2700 || m > 3550 {
				t.Fatalf("position %d has %q %d times in %d ids, want about %d", i, alphabet[k], m, n, n/32)
			}
		}
	}
}

// TestRequestIDsInAnswers: the ids of consecutive answers are unrelated (an id
// is not the previous one plus one, nor shares its prefix).
func TestRequestIDsInAnswers(t *testing.T) {
	e := stdEnv(t, envOpts{})
	prev := ""
	for range 20 {
		te := e.expectError(e.get(with(e.timeGet(), "wrong secret")), want{code: 25})
		if prev != "" && te.RequestID[:4] == prev[:4] {
			t.Fatalf("consecutive ids %q and %q share a prefix", prev, te.RequestID)
		}
		prev = te.RequestID
	}
}

func BenchmarkNewRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = gateway.NewRequestID()
	}
}
