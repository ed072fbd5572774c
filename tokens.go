package daodian

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Admin tokens (SPEC §10) authenticate the admin API. A token is shown once, when
// it is created; the store keeps only its SHA-256 hash, so a copy of the database
// (a backup, a SELECT) lets nobody call the admin API. A token is 256 random bits,
// so a plain hash is enough: there is nothing to guess that a slow hash would
// protect.

// AdminTokenPrefix starts every admin token, so that one found in a log, a shell
// history or a repository is recognised for what it is.
const AdminTokenPrefix = "dd_"

// adminTokenBytes is the randomness of a token: 256 bits.
const adminTokenBytes = 32

// AdminTokenLen is the length of a token: the prefix and the unpadded base64url
// text of its random bytes (43 characters for 32 bytes).
const AdminTokenLen = len(AdminTokenPrefix) + (adminTokenBytes*8+5)/6

// MaxAdminTokens bounds the admin tokens of a store, revoked ones included (they
// stay listed, to tell who had access until when).
const MaxAdminTokens = 10_000

// AdminToken is an admin token as the store keeps it: never the token itself.
type AdminToken struct {
	// ID is a fresh 19-digit identifier: what lists, logs and revoke name.
	ID   string
	Name string
	// MerchantID is the one merchant the token sees; empty for every merchant.
	MerchantID string
	// Hash is the lower-case hex SHA-256 of the token (HashAdminToken).
	Hash      string
	CreatedAt time.Time
	// RevokedAt is when the token was revoked; zero while it is valid.
	RevokedAt time.Time
}

// Revoked reports whether the token has been revoked.
func (t *AdminToken) Revoked() bool { return !t.RevokedAt.IsZero() }

// Sees reports whether the token may see the merchant's data.
func (t *AdminToken) Sees(merchantID string) bool {
	return t.MerchantID == "" || t.MerchantID == merchantID
}

// HashAdminToken returns the hash under which a token is stored and looked up.
func HashAdminToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// WellFormedAdminToken reports whether s has the form of an admin token (the
// prefix and AdminTokenLen characters of base64url), so that anything else is
// refused without a store read.
func WellFormedAdminToken(s string) bool {
	if len(s) != AdminTokenLen || s[:len(AdminTokenPrefix)] != AdminTokenPrefix {
		return false
	}
	for i := len(AdminTokenPrefix); i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// newAdminToken returns a fresh random token.
func newAdminToken() (string, error) {
	b := make([]byte, adminTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return AdminTokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// ErrTooManyAdminTokens is returned by CreateAdminToken when the store holds
// MaxAdminTokens tokens.
var ErrTooManyAdminTokens = fmt.Errorf("too many admin tokens (at most %d, revoked ones included)", MaxAdminTokens)

// CreateAdminToken stores a new admin token named name, scoped to merchantID
// ("" for every merchant), and returns it with the token itself, which exists
// nowhere else: the caller shows it once. A scoped token's merchant must exist
// (a typo would otherwise make a token that sees nothing).
func (l *Ledger) CreateAdminToken(ctx context.Context, name, merchantID string) (*AdminToken, string, error) {
	if err := checkText("name", name, true, MaxNameLen); err != nil {
		return nil, "", err
	}
	if err := checkText("merchant", merchantID, false, MaxNameLen); err != nil {
		return nil, "", err
	}
	token, err := newAdminToken()
	if err != nil {
		return nil, "", err
	}
	t := AdminToken{Name: name, MerchantID: merchantID, Hash: HashAdminToken(token), CreatedAt: l.cfg.Clock()}
	err = l.store.Update(ctx, func(tx Tx) error {
		if merchantID != "" {
			if _, err := tx.Merchant(ctx, merchantID); errors.Is(err, ErrNotFound) {
				return invalid("merchant", strconv.Quote(merchantID)+" names no merchant (create it first: app create or shop add)")
			} else if err != nil {
				return err
			}
		}
		tokens, err := tx.AdminTokens(ctx)
		if err != nil {
			return err
		}
		if len(tokens) >= MaxAdminTokens {
			return ErrTooManyAdminTokens
		}
		if t.ID, err = tx.NewID(ctx); err != nil {
			return err
		}
		return tx.InsertAdminToken(ctx, &t)
	})
	if err != nil {
		return nil, "", err
	}
	return &t, token, nil
}

// AdminTokens returns every admin token, revoked ones included, in the order
// they were created.
func (l *Ledger) AdminTokens(ctx context.Context) ([]AdminToken, error) {
	var tokens []AdminToken
	err := l.store.View(ctx, func(tx ReadTx) error {
		var err error
		tokens, err = tx.AdminTokens(ctx)
		return err
	})
	return tokens, err
}

// AdminTokenByHash returns the admin token with the hash (HashAdminToken),
// revoked or not, or ErrNotFound.
func (l *Ledger) AdminTokenByHash(ctx context.Context, hash string) (*AdminToken, error) {
	var t *AdminToken
	err := l.store.View(ctx, func(tx ReadTx) error {
		var err error
		t, err = tx.AdminTokenByHash(ctx, hash)
		return err
	})
	return t, err
}

// RevokeAdminToken revokes the token with the id and returns it as stored.
// Revoking a revoked token changes nothing (its first revocation time stands);
// an unknown id is ErrNotFound.
func (l *Ledger) RevokeAdminToken(ctx context.Context, id string) (*AdminToken, error) {
	if err := checkDigits("id", id, true); err != nil {
		return nil, err
	}
	now := l.cfg.Clock()
	var t *AdminToken
	err := l.store.Update(ctx, func(tx Tx) error {
		if err := tx.RevokeAdminToken(ctx, id, now); err != nil {
			return err
		}
		var err error
		t, err = tx.AdminToken(ctx, id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("admin token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}
