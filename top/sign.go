package top

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"hash"
	"sync"
)

// Signature methods of the sign_method parameter (SPEC §3.3).
const (
	// SignMD5 is md5(secret + S + secret).
	SignMD5 = "md5"
	// SignHMAC is HMAC-MD5 keyed by the secret.
	SignHMAC = "hmac"
	// SignHMACSHA256 is HMAC-SHA256 keyed by the secret.
	SignHMACSHA256 = "hmac-sha256"
)

// ErrUnknownSignMethod is returned by Sign for a sign_method it does not implement.
var ErrUnknownSignMethod = errors.New("top: unknown sign_method")

// maxDigestHex is the longest signature: hex of a SHA-256 digest.
const maxDigestHex = 2 * sha256.Size

// signBufPool recycles the buffer holding the string to sign. Requests carry a
// JSON business object of a few hundred bytes, so reusing the buffer saves an
// allocation per signature on the hot path.
var signBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledSignBuf keeps one huge request from pinning a huge buffer in the pool.
const maxPooledSignBuf = 64 << 10

// Sign computes the upper-case hex signature of p: every parameter except "sign",
// without empty values, in byte order of name, concatenated as name+value.
func Sign(p *Params, secret, signMethod string) (string, error) {
	var dst [maxDigestHex]byte
	n, _, ok := signInto(&dst, p, secret, nil, signMethod, false)
	if !ok {
		return "", ErrUnknownSignMethod
	}
	return string(dst[:n]), nil
}

// SignMap is Sign over a plain map, for clients building a request.
func SignMap(m map[string]string, secret, signMethod string) (string, error) {
	return Sign(NewParams(m), secret, signMethod)
}

// VerifySign reports whether sign is the signature of p under secret, computed
// either as SPEC §3.3 says (empty values dropped) or, as the official Node and
// Python SDKs do, with empty-valued parameters kept (name followed by nothing).
// The second form is computed only when the first does not match and p has an
// empty-valued parameter, so that the common request pays for one digest. The
// comparison ignores case, because clients differ in the hex case they send, and
// takes constant time in the expected value, so that timing does not reveal how
// much of a forged sign matched; whether a second digest was computed depends only
// on the request itself. It is false for an unknown sign method.
func VerifySign(p *Params, secret, signMethod, sign string) bool {
	return verify(p, secret, nil, signMethod, sign)
}

// Key is a secret prepared for verifying many signatures (Key.Verify): it keeps
// the secret's keyed HMAC states and reuses them, so that checking an HMAC
// signature neither allocates nor hashes the key again, as hmac.New would on
// every request. What it keeps is bounded by the requests verifying at once,
// and dropped by the garbage collector (sync.Pool). Safe for concurrent use.
type Key struct {
	secret string
	// macs holds *keyedMAC in their keyed state: [0] HMAC-MD5, [1] HMAC-SHA256.
	macs [2]sync.Pool
}

// keyedMAC is one HMAC state with room for its digest (which, passed through
// the hash.Hash interface, would otherwise escape to the heap).
type keyedMAC struct {
	h   hash.Hash
	out [sha256.Size]byte
}

// NewKey returns secret prepared for Key.Verify.
func NewKey(secret string) *Key { return &Key{secret: secret} }

// Verify is VerifySign under k's secret.
func (k *Key) Verify(p *Params, signMethod, sign string) bool {
	return verify(p, k.secret, k, signMethod, sign)
}

// mac writes the HMAC of msg under k into dst as upper-case hex, with a kept
// state: i and h name the hash (Key.macs).
func (k *Key) mac(dst []byte, i int, h func() hash.Hash, msg []byte) int {
	m, _ := k.macs[i].Get().(*keyedMAC)
	if m == nil {
		m = &keyedMAC{h: hmac.New(h, []byte(k.secret))}
	}
	m.h.Write(msg)
	n := hexUpper(dst, m.h.Sum(m.out[:0]))
	// Back to the keyed state: hmac restores it from a copy it keeps, without
	// hashing the key again.
	m.h.Reset()
	k.macs[i].Put(m)
	return n
}

// verify is VerifySign with the secret's keyed states, when k is not nil.
func verify(p *Params, secret string, k *Key, signMethod, sign string) bool {
	var want [maxDigestHex]byte
	n, hasEmpty, ok := signInto(&want, p, secret, k, signMethod, false)
	if !ok || len(sign) != n {
		// The length of a valid signature is public, so leaving early reveals nothing.
		return false
	}
	var got [maxDigestHex]byte
	for i := 0; i < n; i++ {
		c := sign[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		got[i] = c
	}
	if subtle.ConstantTimeCompare(got[:n], want[:n]) == 1 {
		return true
	}
	if !hasEmpty {
		return false
	}
	signInto(&want, p, secret, k, signMethod, true)
	return subtle.ConstantTimeCompare(got[:n], want[:n]) == 1
}

// signInto writes the upper-case hex signature into dst and returns its length and
// whether p has a parameter (other than sign) with an empty value. keepEmpty signs
// those as name+"" instead of dropping them. k, if not nil, is secret prepared:
// its keyed HMAC states are used.
func signInto(dst *[maxDigestHex]byte, p *Params, secret string, k *Key, method string, keepEmpty bool) (n int, hasEmpty, ok bool) {
	switch method {
	case SignMD5, SignHMAC, SignHMACSHA256:
	default:
		return 0, false, false
	}
	bp := signBufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if method == SignMD5 {
		buf = append(buf, secret...)
	}
	if p != nil {
		for _, kv := range p.kvs {
			if kv.name == "sign" {
				continue
			}
			if kv.value == "" {
				hasEmpty = true
				if !keepEmpty {
					continue
				}
			}
			buf = append(buf, kv.name...)
			buf = append(buf, kv.value...)
		}
	}
	switch method {
	case SignMD5:
		buf = append(buf, secret...)
		sum := md5.Sum(buf)
		n = hexUpper(dst[:], sum[:])
	default:
		i, h := 1, sha256.New
		if method == SignHMAC {
			i, h = 0, md5.New
		}
		if k != nil {
			n = k.mac(dst[:], i, h, buf)
		} else {
			var out [sha256.Size]byte
			n = hexUpper(dst[:], macSum(h, secret, buf, &out))
		}
	}
	if cap(buf) <= maxPooledSignBuf {
		*bp = buf
		signBufPool.Put(bp)
	}
	return n, hasEmpty, true
}

// macSum returns the HMAC of msg keyed by secret, in out's storage.
func macSum(h func() hash.Hash, secret string, msg []byte, out *[sha256.Size]byte) []byte {
	mac := hmac.New(h, []byte(secret))
	mac.Write(msg)
	return mac.Sum(out[:0])
}

const hexDigitsUpper = "0123456789ABCDEF"

// hexUpper writes src as upper-case hex into dst, which must be long enough.
func hexUpper(dst, src []byte) int {
	for i, b := range src {
		dst[2*i] = hexDigitsUpper[b>>4]
		dst[2*i+1] = hexDigitsUpper[b&0x0f]
	}
	return 2 * len(src)
}
