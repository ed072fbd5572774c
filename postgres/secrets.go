package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/seal"
)

// metaSecretKeyCheck is the meta row telling which key the app secrets are
// sealed with (seal.Setup).
const metaSecretKeyCheck = "secret_key_check"

// prepareSecrets finds the key the app secrets are sealed with (seal.Setup),
// recording its check in a database that has none, and seals in place the
// secrets of a database written before sealing existed. It holds the migration
// lock, so that processes starting at once agree on one key: the first records
// its check, and the others must have the same key.
func (s *Store) prepareSecrets(ctx context.Context) (*seal.Key, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	var key *seal.Key
	var keyErr error // a refusal of the key file, returned as it is
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		// The lock may be held by a process migrating a large table.
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return err
		}
		var check string
		err := tx.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", metaSecretKeyCheck).Scan(&check)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		k, newCheck, err := seal.Setup(s.opts.SecretKeyFile, check)
		if err != nil {
			keyErr = err
			return err
		}
		if newCheck != "" {
			if _, err := tx.Exec(ctx, "INSERT INTO meta (key, value) VALUES ($1, $2)", metaSecretKeyCheck, newCheck); err != nil {
				return err
			}
		}
		n := len(seal.Prefix)
		rows, err := tx.Query(ctx, `SELECT key, secret, previous_secret FROM apps
			WHERE (secret <> '' AND left(secret, $1) <> $2) OR (previous_secret <> '' AND left(previous_secret, $1) <> $2)
			FOR UPDATE`, n, seal.Prefix)
		if err != nil {
			return err
		}
		plain, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (daodian.App, error) {
			var a daodian.App
			err := r.Scan(&a.Key, &a.Secret, &a.PreviousSecret)
			a.Key, a.Secret, a.PreviousSecret = unesc(a.Key), unesc(a.Secret), unesc(a.PreviousSecret)
			return a, err
		})
		if err != nil {
			return err
		}
		for i := range plain {
			secret, previous := k.SealPlain(&plain[i])
			if _, err := tx.Exec(ctx, "UPDATE apps SET secret = $2, previous_secret = $3 WHERE key = $1",
				esc(plain[i].Key), esc(secret), esc(previous)); err != nil {
				return fmt.Errorf("seal the secret of app %q: %w", plain[i].Key, err)
			}
		}
		key = k
		return nil
	})
	if keyErr != nil {
		return nil, keyErr
	}
	if err != nil {
		return nil, wrapErr("prepare the app secrets", err)
	}
	return key, nil
}
