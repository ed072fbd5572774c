package webhook

import "time"

// Clock is the deliverer's time: when attempts happen, how long a retry waits,
// and the signatures' timestamps. Tests replace it to walk through a day of
// retries in milliseconds.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
