//go:build race

package top

// raceEnabled skips allocation counts: under the race detector sync.Pool drops items
// at random, so pooled paths allocate.
const raceEnabled = true
