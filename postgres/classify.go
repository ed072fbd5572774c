package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daodian/daodian"
)

// errClass says how a failure is handled.
type errClass int

const (
	// classPermanent failures are returned as they are: retrying cannot help.
	classPermanent errClass = iota
	// classTransient failures may pass later, but not within this call (its
	// context is done, a timeout already spent the time budget): returned wrapped
	// with daodian.Transient at once.
	classTransient
	// classRetry failures are retried inside Update after a backoff: contention
	// (serialisation failure, deadlock) or a connection lost before COMMIT.
	classRetry
	// classDuplicate is ErrDuplicate returned by fn: retried at once, since the
	// transaction that won the race has committed by the time the loser learns of it.
	classDuplicate
	// classContended is a use that met its sub-order held by other uses
	// (sqlStateContended from a function, daodian.ErrSubOrderBusy from the Go
	// rules): run again at once, locking the whole sub-order.
	classContended
)

// classify tells how a failure of the database or of the connection to it may be
// handled. Errors that carry no database failure are permanent.
func classify(err error) errClass {
	if err == nil {
		return classPermanent
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errUnreplicated) || errors.Is(err, errUnreachable) {
		return classTransient
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifyCode(pgErr.Code)
	}
	if pgconn.Timeout(err) {
		return classTransient
	}
	if isConnErr(err) {
		return classRetry
	}
	if errors.Is(err, daodian.ErrTransient) {
		return classTransient
	}
	return classPermanent
}

// classifyCode classifies a SQLSTATE (PostgreSQL manual, appendix A).
func classifyCode(code string) errClass {
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"57P01", // admin_shutdown: the backend was terminated
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: the server is starting or failing over
		"57P05", // idle_session_timeout
		"25P03", // idle_in_transaction_session_timeout
		"53300": // too_many_connections
		return classRetry
	case "57014", // query_canceled: statement_timeout, lock waits included
		"55P03", // lock_not_available: lock_timeout
		"25006", // read_only_sql_transaction: connected to a standby after a failover
		"58000", // system_error
		"58030": // io_error
		return classTransient
	}
	switch {
	case strings.HasPrefix(code, "08"): // connection_exception
		return classRetry
	case strings.HasPrefix(code, "53"): // insufficient_resources
		return classTransient
	}
	return classPermanent
}

// isConnErr reports whether err is the loss of, or the failure to open, a
// connection.
func isConnErr(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return pgconn.SafeToRetry(err) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

// isServerError reports whether the server answered with an ERROR, which ends the
// statement (and the transaction) but leaves the session usable. A FATAL or PANIC
// ends the session, and tells nothing certain about a COMMIT in flight.
func isServerError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	sev := pgErr.SeverityUnlocalized
	if sev == "" {
		sev = pgErr.Severity
	}
	return sev == "ERROR"
}

// wrapErr names the operation that failed and marks failures that may pass on retry
// with daodian.Transient.
func wrapErr(op string, err error) error {
	e := fmt.Errorf("postgres: %s: %w", op, err)
	if classify(err) != classPermanent {
		return daodian.Transient(e)
	}
	return e
}
