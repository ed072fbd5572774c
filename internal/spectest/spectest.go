// Package spectest holds test helpers written from the specification rather than
// from the project's own code, so that tests check the code against SPEC and not
// against itself.
package spectest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sort"
	"strings"
)

// Sign is the signature of SPEC §3.3: every parameter but `sign` with a non-empty
// value, sorted by name in byte order, concatenated name+value, then md5 with the
// secret on both sides, or HMAC-MD5 / HMAC-SHA256 keyed by the secret; upper-case
// hex. An unknown method gives "".
func Sign(params map[string]string, secret, method string) string {
	return sign(params, secret, method, false)
}

// SignEmptiesKept is the other signature SPEC §3.3 accepts, the one the official
// Node and Python SDKs compute: Sign with the empty-valued parameters kept, each
// as its name followed by nothing.
func SignEmptiesKept(params map[string]string, secret, method string) string {
	return sign(params, secret, method, true)
}

func sign(params map[string]string, secret, method string, keepEmpty bool) string {
	names := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && (keepEmpty || v != "") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var s strings.Builder
	for _, k := range names {
		s.WriteString(k)
		s.WriteString(params[k])
	}
	var sum []byte
	switch method {
	case "md5":
		d := md5.Sum([]byte(secret + s.String() + secret))
		sum = d[:]
	case "hmac", "hmac-sha256":
		var fn func() hash.Hash = md5.New
		if method == "hmac-sha256" {
			fn = sha256.New
		}
		mac := hmac.New(fn, []byte(secret))
		mac.Write([]byte(s.String()))
		sum = mac.Sum(nil)
	default:
		return ""
	}
	return strings.ToUpper(hex.EncodeToString(sum))
}
