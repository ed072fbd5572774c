// Package seal keeps app and webhook secrets sealed at rest (SPEC §5.4): AES-256-GCM under a
// master key that lives in a file of its own, never in the database, so that a
// copy of the database alone (a backup, a disk image, a SELECT) reveals no
// secret. Both stores use it; the domain keeps secrets in plain text in memory
// only.
//
// A sealed value is Prefix followed by the unpadded URL-safe base64 of the
// 12-byte random nonce and the ciphertext with its 16-byte tag. The additional
// data binds it to its place (the app key and the column), so a sealed value
// copied onto another app, or from one column into the other, does not open.
// The version in Prefix lets a later format, and a plain-text value written
// before sealing existed, be told apart.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/daodian/daodian"
)

// Prefix starts every sealed value. Plain-text secrets (random hex) never do.
const Prefix = "sealed:v1:"

// KeyLen is the length of a master key in bytes (AES-256).
const KeyLen = 32

// Key is a master key, ready to seal and open. It is safe for concurrent use.
type Key struct {
	aead cipher.AEAD
}

// NewKey returns the Key of raw, which must be KeyLen bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeyLen {
		return nil, fmt.Errorf("seal: a key is %d bytes, not %d", KeyLen, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{aead: aead}, nil
}

// IsSealed reports whether a stored value is sealed (rather than a plain-text
// value written before sealing existed, or the empty "no secret").
func IsSealed(stored string) bool { return strings.HasPrefix(stored, Prefix) }

// Seal returns plain sealed under the key, bound to ad. Each call draws a fresh
// random nonce, so sealing one value twice gives two different results.
func (k *Key) Seal(plain, ad string) string {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (it aborts the program instead)
	out := k.aead.Seal(nonce, nonce, []byte(plain), []byte(ad))
	return Prefix + base64.RawURLEncoding.EncodeToString(out)
}

// ErrOpen is returned by Open for a value that does not open under the key with
// this additional data: another key sealed it, it was moved from elsewhere, or
// it was altered.
var ErrOpen = errors.New("seal: the sealed value does not open with this key (sealed by another key, copied from another app, or altered)")

// Open returns the plain text of a value Seal returned with the same ad. A
// value without Prefix is an error: once a database is sealed, a plain value in
// it was not written by daodian.
func (k *Key) Open(stored, ad string) (string, error) {
	if !IsSealed(stored) {
		return "", errors.New("seal: the stored value is not sealed")
	}
	raw, err := base64.RawURLEncoding.DecodeString(stored[len(Prefix):])
	if err != nil || len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
		return "", ErrOpen
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(ad))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}

// The additional data of the two secret columns of an app.
func secretAD(appKey string) string   { return "apps.secret\x00" + appKey }
func previousAD(appKey string) string { return "apps.previous_secret\x00" + appKey }

// SealApp returns the stored forms of a's Secret and PreviousSecret. An empty
// value stays empty: it means "none", and hides nothing.
func (k *Key) SealApp(a *daodian.App) (secret, previous string) {
	return k.sealNonEmpty(a.Secret, secretAD(a.Key)), k.sealNonEmpty(a.PreviousSecret, previousAD(a.Key))
}

func (k *Key) sealNonEmpty(plain, ad string) string {
	if plain == "" {
		return ""
	}
	return k.Seal(plain, ad)
}

// OpenApp replaces a's Secret and PreviousSecret, as read from a store, by their
// plain text. The error names the app, never a secret.
func (k *Key) OpenApp(a *daodian.App) error {
	for _, f := range []struct {
		v  *string
		ad string
	}{{&a.Secret, secretAD(a.Key)}, {&a.PreviousSecret, previousAD(a.Key)}} {
		if *f.v == "" {
			continue
		}
		p, err := k.Open(*f.v, f.ad)
		if err != nil {
			*f.v = ""
			return fmt.Errorf("app %q: its stored secret cannot be unsealed: %w", a.Key, err)
		}
		*f.v = p
	}
	return nil
}

// webhookAD is the additional data of a webhook's secret.
func webhookAD(id string) string { return "webhooks.secret\x00" + id }

// SealWebhook returns the stored form of a webhook's secret (SPEC §9: sealed
// like app secrets, under the same key).
func (k *Key) SealWebhook(w *daodian.Webhook) string { return k.Seal(w.Secret, webhookAD(w.ID)) }

// OpenWebhook replaces w's Secret, as read from a store, by its plain text.
// The error names the webhook, never a secret.
func (k *Key) OpenWebhook(w *daodian.Webhook) error {
	p, err := k.Open(w.Secret, webhookAD(w.ID))
	if err != nil {
		w.Secret = ""
		return fmt.Errorf("webhook %s: its stored secret cannot be unsealed: %w", w.ID, err)
	}
	w.Secret = p
	return nil
}

// The key check is a known text sealed under the key and kept in the
// database: a database remembers which key its secrets are sealed with, so a
// wrong key file is refused when the store opens, not discovered as an invalid
// signature on every call.
const (
	checkText = "daodian secret key check"
	checkAD   = "meta.secret_key_check"
)

// check returns a new key check value for the database.
func (k *Key) check() string { return k.Seal(checkText, checkAD) }

// matches reports whether check was made by this key.
func (k *Key) matches(check string) bool {
	p, err := k.Open(check, checkAD)
	return err == nil && p == checkText
}

// SealPlain returns the stored forms of the secrets of a, as read from a
// database written before sealing existed: plain values are sealed, sealed ones
// kept as they are.
func (k *Key) SealPlain(a *daodian.App) (secret, previous string) {
	secret, previous = a.Secret, a.PreviousSecret
	if !IsSealed(secret) {
		secret = k.sealNonEmpty(secret, secretAD(a.Key))
	}
	if !IsSealed(previous) {
		previous = k.sealNonEmpty(previous, previousAD(a.Key))
	}
	return secret, previous
}
