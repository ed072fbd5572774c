package sqlite

import (
	"context"
	"database/sql/driver"
	"strconv"
	"time"

	"github.com/daodian/daodian"
)

// Admin tokens (daodian/tokens.go) are written by admin commands and read by an
// admin API that caches them: like fault rules, their statements are prepared
// for each use rather than kept on every connection.

const (
	tokenCols = `id, hash, name, merchant_id, created_at, revoked_at`

	sqlInsertToken = `INSERT INTO admin_tokens (` + tokenCols + `) VALUES (?, ?, ?, ?, ?, ?)`
	// The first revocation stands.
	sqlRevokeToken = `UPDATE admin_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`
	sqlTokenByID   = `SELECT ` + tokenCols + ` FROM admin_tokens WHERE id = ?`
	sqlTokenByHash = `SELECT ` + tokenCols + ` FROM admin_tokens WHERE hash = ?`
)

var sqlTokens = `SELECT ` + tokenCols + ` FROM admin_tokens ORDER BY id LIMIT ` + strconv.Itoa(daodian.MaxAdminTokens)

func decodeToken(row []driver.Value) daodian.AdminToken {
	return daodian.AdminToken{
		ID:         asStr(row[0]),
		Hash:       asStr(row[1]),
		Name:       asStr(row[2]),
		MerchantID: asStr(row[3]),
		CreatedAt:  fromMicros(asInt(row[4])),
		RevokedAt:  fromMicros(asInt(row[5])),
	}
}

func (t *readTx) AdminTokens(ctx context.Context) ([]daodian.AdminToken, error) {
	var tokens []daodian.AdminToken
	err := t.queryEach(ctx, sqlTokens, 6, func(row []driver.Value) error {
		tokens = append(tokens, decodeToken(row))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tokens, nil
}

func (t *readTx) AdminToken(ctx context.Context, id string) (*daodian.AdminToken, error) {
	return t.adminToken(ctx, sqlTokenByID, id)
}

func (t *readTx) AdminTokenByHash(ctx context.Context, hash string) (*daodian.AdminToken, error) {
	return t.adminToken(ctx, sqlTokenByHash, hash)
}

func (t *readTx) adminToken(ctx context.Context, text, key string) (*daodian.AdminToken, error) {
	var tok *daodian.AdminToken
	err := t.queryEach(ctx, text, 6, func(row []driver.Value) error {
		v := decodeToken(row)
		tok = &v
		return nil
	}, key)
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, daodian.ErrNotFound
	}
	return tok, nil
}

func (t *writeTx) InsertAdminToken(ctx context.Context, tok *daodian.AdminToken) error {
	_, err := t.execOnce(sqlInsertToken, "admin token", tok.ID, tok.ID, tok.Hash, tok.Name, tok.MerchantID,
		micros(tok.CreatedAt), micros(tok.RevokedAt))
	return err
}

func (t *writeTx) RevokeAdminToken(ctx context.Context, id string, at time.Time) error {
	n, err := t.execOnce(sqlRevokeToken, "admin token", id, micros(at), id)
	if err != nil {
		return err
	}
	if n == 0 {
		return daodian.ErrNotFound
	}
	return nil
}
