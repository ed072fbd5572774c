// Package traceid makes the per-request trace ids of the gateway (SPEC §3.4)
// and the admin API: random, so that consecutive ids tell a caller nothing
// about how many requests the server answered in between.
package traceid

import (
	"crypto/rand"
	"encoding/base32"
)

// idBytes is the randomness of a trace id: 80 bits, so that ids are unique
// without coordination between processes (a collision is expected after about
// 2^40 ids) and 16 characters long.
const idBytes = 10

// encoding writes trace ids in lower-case base32 (digits, then a to v): no
// padding, nothing to escape in a log line, a URL or a file name.
var encoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// New returns a trace id drawn from crypto/rand, which costs well under a
// microsecond per id (gateway's BenchmarkNewRequestID), a small part of any
// request.
func New() string {
	var b [idBytes]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand.Read's contract)
	var out [16]byte
	encoding.Encode(out[:], b[:])
	return string(out[:])
}
