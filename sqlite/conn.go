package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/daodian/daodian/seal"
)

// The hot path talks to the driver below database/sql: a whole batch (or a
// whole View) runs inside one sql.Conn.Raw call, with statements prepared once
// per connection. Measured on modernc.org/sqlite, database/sql's QueryRow plus
// Scan costs about 11 µs for a two-column point lookup that the driver answers
// in 4.5 µs; with ~8 statements per reversal that difference is the writer's
// whole budget. database/sql still owns opening, pooling and closing.

// bg is the context of hot-path statements. The driver starts a goroutine per
// statement to watch a cancellable context, which would cost more than the
// point lookups themselves; Update checks its caller's context before running
// fn, and walks check it between rows.
var bg = context.Background()

// stmt is a statement prepared on one connection.
type stmt struct {
	s driver.Stmt
	q driver.StmtQueryContext
	e driver.StmtExecContext
}

// session is one connection's state: its prepared statements and reusable
// buffers. It is used by one goroutine at a time (the writer, or the View that
// holds the connection), and dc is set only inside a Raw call.
type session struct {
	conn *sql.Conn
	dc   driver.Conn
	args []driver.NamedValue
	dest [9]driver.Value
	buf  []byte // scratch for doc encoding
	key  *seal.Key

	stmts []*stmt // all prepared statements, to close them
	r     readStmts
	w     *writeStmts // nil on read connections

	viewBegin, viewEnd *stmt // read connections only
	checkpoint         *stmt // writer and checkpointer connections only

	// broken is set, on the writer, by an error after which the transaction may
	// no longer be open (SQLite rolls back the whole transaction on I/O errors,
	// SQLITE_FULL, interrupts...). Every later statement of the batch is refused
	// so that nothing runs in autocommit mode, and the batch is aborted.
	broken error
}

// errNoRow is the internal "no row" of queryRow.
var errNoRow = errors.New("sqlite: no row")

// prepare prepares a statement kept for the life of the connection.
func (s *session) prepare(ctx context.Context, text string) (*stmt, error) {
	st, err := s.prepareOnce(ctx, text)
	if err != nil {
		return nil, err
	}
	s.stmts = append(s.stmts, st)
	return st, nil
}

// prepareOnce prepares a statement that the caller closes (walks, which may
// nest: one prepared statement cannot serve two open cursors).
func (s *session) prepareOnce(ctx context.Context, text string) (*stmt, error) {
	p, ok := s.dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, errors.New("sqlite: driver connection cannot prepare with a context")
	}
	ds, err := p.PrepareContext(ctx, text)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare %q: %w", text, err)
	}
	q, okq := ds.(driver.StmtQueryContext)
	e, oke := ds.(driver.StmtExecContext)
	if !okq || !oke {
		_ = ds.Close()
		return nil, errors.New("sqlite: driver statement lacks context methods")
	}
	return &stmt{s: ds, q: q, e: e}, nil
}

// raw runs f with the session's driver connection.
func (s *session) raw(f func() error) error {
	var ferr error
	err := s.conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("sqlite: unexpected driver connection %T", dc)
		}
		s.dc = c
		defer func() { s.dc = nil }()
		ferr = f()
		// Never hand f's error to database/sql: driver.ErrBadConn would make it
		// close the connection under us.
		return nil
	})
	if err != nil {
		return err
	}
	return ferr
}

// closeStmts finalises every prepared statement; call it inside raw.
func (s *session) closeStmts() error {
	var errs []error
	for _, st := range s.stmts {
		if err := st.s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.stmts = nil
	return errors.Join(errs...)
}

func (s *session) setArgs(args []any) {
	s.args = s.args[:0]
	for i, a := range args {
		s.args = append(s.args, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
}

// exec runs a statement that returns no rows and reports the rows it changed.
func (s *session) exec(st *stmt, args ...any) (int64, error) {
	if s.broken != nil {
		return 0, s.broken
	}
	s.setArgs(args)
	res, err := st.e.ExecContext(bg, s.args)
	clear(s.args) // drop references to the caller's values
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryRow runs a statement and returns its first row in the session's dest
// buffer (valid until the next statement), or errNoRow.
func (s *session) queryRow(st *stmt, ncol int, args ...any) ([]driver.Value, error) {
	if s.broken != nil {
		return nil, s.broken
	}
	s.setArgs(args)
	rows, err := st.q.QueryContext(bg, s.args)
	clear(s.args)
	if err != nil {
		return nil, err
	}
	dest := s.dest[:ncol]
	err = rows.Next(dest)
	cerr := rows.Close()
	switch {
	case err == io.EOF:
		if cerr != nil {
			return nil, cerr
		}
		return nil, errNoRow
	case err != nil:
		return nil, err
	case cerr != nil:
		return nil, cerr
	}
	return dest, nil
}

// query runs a statement and calls fn for each row, at most limit rows when
// limit > 0 (more is an error). The row slice is reused between calls.
func (s *session) query(ctx context.Context, st *stmt, ncol int, limit int, fn func([]driver.Value) error, args ...any) (err error) {
	if s.broken != nil {
		return s.broken
	}
	s.setArgs(args)
	rows, err := st.q.QueryContext(ctx, s.args)
	clear(s.args)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	dest := make([]driver.Value, ncol)
	for n := 0; ; n++ {
		if n&255 == 255 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := rows.Next(dest); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if limit > 0 && n == limit {
			return errTooMany
		}
		if err := fn(dest); err != nil {
			return err
		}
	}
}

var errTooMany = errors.New("sqlite: more rows than the limit")

// Typed accessors of driver values. The schema declares every column NOT NULL
// with a fixed type, so a mismatch is a corrupt or foreign database.

func asInt(v driver.Value) int64 {
	i, _ := v.(int64)
	return i
}

func asStr(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func asBytes(v driver.Value) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return nil
}
