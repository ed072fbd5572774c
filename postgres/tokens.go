package postgres

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/daodian/daodian"
)

// Admin tokens (daodian/tokens.go): a small table written by admin commands and
// read by the admin API, which caches what it reads.

const (
	tokenCols = `id, hash, name, merchant_id, created_at, revoked_at`

	sqlInsertToken = `INSERT INTO admin_tokens (` + tokenCols + `) VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT DO NOTHING`
	// The first revocation stands.
	sqlRevokeToken = `UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`
	sqlTokenByID   = `SELECT ` + tokenCols + ` FROM admin_tokens WHERE id = $1`
	sqlTokenByHash = `SELECT ` + tokenCols + ` FROM admin_tokens WHERE hash = $1`
)

var sqlTokens = `SELECT ` + tokenCols + ` FROM admin_tokens ORDER BY id LIMIT ` + strconv.Itoa(daodian.MaxAdminTokens)

func scanToken(r rowScanner, t *daodian.AdminToken) error {
	var created, revoked pgtype.Timestamptz
	if err := r.Scan(&t.ID, &t.Hash, &t.Name, &t.MerchantID, &created, &revoked); err != nil {
		return err
	}
	for _, p := range []*string{&t.ID, &t.Hash, &t.Name, &t.MerchantID} {
		*p = unesc(*p)
	}
	t.CreatedAt, t.RevokedAt = fromTS(created), fromTS(revoked)
	return nil
}

// AdminTokens returns the admin tokens in id order.
func (t *pgTx) AdminTokens(ctx context.Context) ([]daodian.AdminToken, error) {
	rows, err := t.query(ctx, sqlTokens)
	if err != nil {
		return nil, wrapErr("admin tokens", err)
	}
	defer rows.Close()
	var tokens []daodian.AdminToken
	for rows.Next() {
		var tok daodian.AdminToken
		if err := scanToken(rows, &tok); err != nil {
			return nil, wrapErr("admin tokens", err)
		}
		tokens = append(tokens, tok)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrapErr("admin tokens", err)
	}
	return tokens, nil
}

// AdminToken returns an admin token by id, or ErrNotFound.
func (t *pgTx) AdminToken(ctx context.Context, id string) (*daodian.AdminToken, error) {
	return t.adminToken(ctx, sqlTokenByID, id)
}

// AdminTokenByHash returns the admin token with the hash, or ErrNotFound.
func (t *pgTx) AdminTokenByHash(ctx context.Context, hash string) (*daodian.AdminToken, error) {
	return t.adminToken(ctx, sqlTokenByHash, hash)
}

func (t *pgTx) adminToken(ctx context.Context, sql, key string) (*daodian.AdminToken, error) {
	tok := new(daodian.AdminToken)
	if err := scanToken(t.queryRow(ctx, sql, esc(key)), tok); err != nil {
		return nil, rowErr("admin token", err)
	}
	return tok, nil
}

// InsertAdminToken stores a new admin token; ErrDuplicate on a repeated id or hash.
func (t *pgTx) InsertAdminToken(ctx context.Context, tok *daodian.AdminToken) error {
	tag, err := t.exec(ctx, sqlInsertToken, esc(tok.ID), esc(tok.Hash), esc(tok.Name), esc(tok.MerchantID),
		ts(tok.CreatedAt), ts(tok.RevokedAt))
	return insertErr("insert admin token", tag, err)
}

// RevokeAdminToken revokes a token unless it is revoked already.
func (t *pgTx) RevokeAdminToken(ctx context.Context, id string, at time.Time) error {
	tag, err := t.exec(ctx, sqlRevokeToken, esc(id), ts(at))
	if err != nil {
		return wrapErr("revoke admin token", err)
	}
	if tag.RowsAffected() == 0 {
		return daodian.ErrNotFound
	}
	return nil
}
