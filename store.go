package daodian

import (
	"context"
	"time"
)

// Store is a durable home for the ledger. The business rules live in Ledger and are
// the same for every store; a store only reads and writes rows, and makes each
// transaction atomic, isolated and durable.
type Store interface {
	// Update runs fn in one read-write transaction and returns only once the
	// transaction is durable (fsync'd or synchronously committed). If fn returns an
	// error, nothing fn wrote is kept and that error is returned. fn may run more than
	// once (a store retries serialisation failures and ErrDuplicate), so it must not
	// have effects outside tx other than setting its own result variables.
	// Failures that may pass on retry are returned wrapped with ErrTransient.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn on a consistent read-only snapshot.
	View(ctx context.Context, fn func(tx ReadTx) error) error
	// Ping reports whether the store can serve: reachable, and able to take
	// Updates (a PostgreSQL standby cannot). It backs GET /readyz.
	Ping(ctx context.Context) error
	// Close releases the store; pending Updates fail or finish first.
	Close() error
}

// ReadTx reads the ledger. Inside an Update, the row-returning methods on tickets
// and App lock the rows they return until the transaction ends, so that two
// transactions on one ticket (or on one app's secrets) are serialised by the store
// itself (row locks on PostgreSQL, the single writer on the embedded store).
type ReadTx interface {
	// Idem returns the recorded answer of a request, or ErrNotFound.
	Idem(ctx context.Context, key IdemKey) (*IdemRecord, error)
	// Ticket returns a ticket by id, or ErrNotFound.
	Ticket(ctx context.Context, id string) (*Ticket, error)
	// TicketByCode returns a ticket by its code, or ErrNotFound.
	TicketByCode(ctx context.Context, code string) (*Ticket, error)
	// TicketMerchant returns the merchant of a ticket, or ErrNotFound. It never
	// locks the ticket, even inside Update: an Update locks one ticket only (a
	// second ticket's lock could deadlock on PostgreSQL), yet must sometimes learn
	// whether a row of another ticket is visible to the app. A ticket's merchant
	// never changes, so the unlocked read cannot be stale.
	TicketMerchant(ctx context.Context, ticketID string) (string, error)
	// SubOrderTickets returns the tickets of a sub-order ordered by id (at most
	// MaxTicketsPerOrder).
	SubOrderTickets(ctx context.Context, subOrderNo string) ([]Ticket, error)
	// TicketForUse returns the ticket with the code (with code "", the id), or
	// ErrNotFound. Inside an Update, a store whose transactions lock rows
	// (PostgreSQL) locks that ticket alone, and the siblings a use takes units
	// from are locked without waiting (UseSiblings); when the use must wait
	// for siblings after all (ErrSubOrderBusy), the store runs it again with
	// every ticket of the sub-order locked here, in id order, in one
	// statement. A transaction then waits for a lock while holding another
	// only in id order, so two uses cannot deadlock. The embedded store's
	// single writer takes no locks.
	TicketForUse(ctx context.Context, code, id string) (*Ticket, error)
	// Order returns an order by its sub-order number, or ErrNotFound.
	Order(ctx context.Context, subOrderNo string) (*Order, error)
	// Use returns a use by its own transaction id, or ErrNotFound.
	Use(ctx context.Context, transID string) (*Use, error)
	// GroupUse returns the use of ticketID made by the group-buy use groupTransID,
	// or ErrNotFound.
	GroupUse(ctx context.Context, groupTransID, ticketID string) (*Use, error)
	// LatestActiveUse returns the most recent unreversed use of the ticket made by
	// the app (refunded uses included), or ErrNotFound.
	LatestActiveUse(ctx context.Context, ticketID, appKey string) (*Use, error)
	// ActiveUnits returns the sum of the units of the ticket's unreversed uses.
	ActiveUnits(ctx context.Context, ticketID string) (int, error)
	// Fence returns the fence of (ticket, app), or ErrNotFound.
	Fence(ctx context.Context, ticketID, appKey string) (*Fence, error)

	// Records returns at most q.Limit records of q.MerchantID that match q, with
	// a record_id after q.AfterID, in record_id order (SPEC §8). A store that
	// numbers records after their commit (RecordSequencer) lists numbered
	// records only.
	Records(ctx context.Context, q RecordQuery) ([]Record, error)
	// TicketRecords returns the records of a ticket in record_id order (at most
	// MaxTimeline). Here and in EachDayUse and EachRecord, the records a
	// RecordSequencer has not numbered yet come after the numbered ones, in the
	// order they were appended, with an empty ID.
	TicketRecords(ctx context.Context, ticketID string) ([]Record, error)
	// DayTotals returns a merchant's records of a business day (YYYYMMDD, see
	// Day) summed by shop and kind; a non-empty shopID keeps that shop only.
	DayTotals(ctx context.Context, merchantID string, day int, shopID string) ([]DayTotal, error)
	// EachDayUse calls fn for every use record of a merchant's business day, in
	// record_id order, with the use's current state; fn's error stops the walk.
	EachDayUse(ctx context.Context, merchantID string, day int, fn func(*DayUse) error) error
	// Shop returns a shop of a merchant, or ErrNotFound.
	Shop(ctx context.Context, merchantID, shopID string) (*Shop, error)
	// App returns an app by key, or ErrNotFound.
	App(ctx context.Context, key string) (*App, error)
	// Merchant returns a merchant, or ErrNotFound.
	Merchant(ctx context.Context, id string) (*Merchant, error)
	// Merchants returns at most limit merchants in id order (byte order).
	Merchants(ctx context.Context, limit int) ([]Merchant, error)
	// Shops returns at most limit shops of a merchant in shop id order (byte
	// order).
	Shops(ctx context.Context, merchantID string, limit int) ([]Shop, error)
	// Apps returns at most limit apps bound to merchantID ("" for any) in key
	// order (byte order), without their secrets: Secret and PreviousSecret are
	// empty (PreviousSecretUntil is set). A listing never unseals a secret.
	Apps(ctx context.Context, merchantID string, limit int) ([]App, error)

	// EachTicket calls fn for every ticket in id order; fn's error stops the walk.
	EachTicket(ctx context.Context, fn func(*Ticket) error) error
	// EachUse calls fn for every use in transaction id order.
	EachUse(ctx context.Context, fn func(*Use) error) error
	// EachRecord calls fn for every record in record_id order.
	EachRecord(ctx context.Context, fn func(*Record) error) error
	// EachIdem calls fn for every idempotency record.
	EachIdem(ctx context.Context, fn func(*IdemRecord) error) error
	// Counts returns the number of rows of the main tables, for tests and metrics.
	Counts(ctx context.Context) (Counts, error)
	// FaultRules returns the fault rules (faults.go) in id order, at most
	// MaxFaultRules.
	FaultRules(ctx context.Context) ([]FaultRule, error)

	// AdminToken returns an admin token (tokens.go) by id, or ErrNotFound.
	AdminToken(ctx context.Context, id string) (*AdminToken, error)
	// AdminTokenByHash returns the admin token with the hash, or ErrNotFound.
	AdminTokenByHash(ctx context.Context, hash string) (*AdminToken, error)
	// AdminTokens returns the admin tokens in id order, at most MaxAdminTokens.
	AdminTokens(ctx context.Context) ([]AdminToken, error)

	// WebhookReader reads webhooks and their deliveries (webhooks.go).
	WebhookReader
}

// Counts is the number of rows of each ledger table.
type Counts struct {
	Apps, Merchants, Shops, Orders, Tickets, Uses, Fences, Idem, Records int
}

// Tx reads and writes the ledger inside Store.Update.
//
// A write's failure is reported by the write itself or, on a store that
// pipelines writes (PostgreSQL holds back the writes of uses and reversals to
// send them with the next statement), by a later call of the same transaction
// or by Update. Either way the transaction does not commit: after a failed
// write, fn must return an error.
type Tx interface {
	ReadTx
	// PutIdem records a final answer; ErrDuplicate if the key already has one.
	PutIdem(ctx context.Context, rec *IdemRecord) error
	// SetAvailable stores a ticket's available units.
	SetAvailable(ctx context.Context, ticketID string, available int) error
	// InsertUse records a new use; ErrDuplicate on a repeated transaction id.
	InsertUse(ctx context.Context, u *Use) error
	// MarkReversed stores the reversal fields of a use.
	MarkReversed(ctx context.Context, u *Use) error
	// MarkRefunded stores the refund fields of a use.
	MarkRefunded(ctx context.Context, u *Use) error
	// AppendRecord appends a record of a change made in this transaction and
	// sets r.ID to the record_id the store assigned (SPEC §8), or to "" on a
	// store that numbers records after their commit (RecordSequencer).
	AppendRecord(ctx context.Context, r *Record) error
	// PutFence creates or replaces the fence of (ticket, app).
	PutFence(ctx context.Context, f *Fence) error
	// UseSiblings returns tickets of t's sub-order in id order for a use
	// short of need units to take units from: every one other than t with
	// units left and VALID, unless complete is false (a store may return
	// more, t included; the rule filters). Inside an Update on a store whose transactions
	// lock rows (PostgreSQL), it locks at most need of them and skips those
	// another transaction holds, so concurrent uses of one sub-order take
	// different tickets without waiting; complete then says none was left
	// out. A use whose returned siblings fall short while complete is false
	// fails with ErrSubOrderBusy, and the store runs it again with the whole
	// sub-order locked (TicketForUse), when this returns every sibling.
	UseSiblings(ctx context.Context, t *Ticket, need int) (siblings []Ticket, complete bool, err error)
	// NewID returns a fresh 19-digit identifier (from 2100000000000000000, and
	// increasing within a transaction), unique among all identifiers the
	// store ever handed out, never reused even if the transaction aborts.
	NewID(ctx context.Context) (string, error)

	// PutMerchant creates a merchant or updates its name.
	PutMerchant(ctx context.Context, m *Merchant) error
	// InsertShop registers a shop; ErrDuplicate if (merchant, shop id) exists.
	InsertShop(ctx context.Context, s *Shop) error
	// InsertApp creates an app; ErrDuplicate on a repeated key.
	InsertApp(ctx context.Context, a *App) error
	// UpdateApp replaces an app's mutable fields (name, merchants, enabled,
	// methods, rate limit); never its secrets.
	UpdateApp(ctx context.Context, a *App) error
	// SetAppSecrets replaces an app's Secret, PreviousSecret and
	// PreviousSecretUntil, and nothing else; ErrNotFound for an unknown key.
	SetAppSecrets(ctx context.Context, a *App) error
	// InsertOrder records an order; ErrDuplicate on a repeated sub-order number.
	InsertOrder(ctx context.Context, o *Order) error
	// InsertTicket records a ticket; ErrDuplicate on a repeated id or code.
	InsertTicket(ctx context.Context, t *Ticket) error

	// The bulk writes of issuing, for a store that writes many rows faster
	// together than one by one (PostgreSQL's COPY). Each takes at most
	// MaxBulkRows rows.

	// NewIDs returns n fresh identifiers (1 ≤ n ≤ MaxBulkRows), increasing, as
	// n calls of NewID would.
	NewIDs(ctx context.Context, n int) ([]string, error)
	// InsertOrders records orders; ErrDuplicate on a sub-order number that is
	// stored already or repeated in os (a failed write: fn must then return
	// an error).
	InsertOrders(ctx context.Context, os []Order) error
	// InsertTickets records tickets whose ids are fresh. A ticket whose code is
	// taken — by a stored ticket, or by one earlier in ts — is not written: its
	// index in ts is in taken (ascending), and the transaction goes on, as
	// after InsertTicket's ErrDuplicate for a taken code. A repeated id is
	// ErrDuplicate (a failed write, like InsertOrders').
	InsertTickets(ctx context.Context, ts []Ticket) (taken []int, err error)
	// AppendRecords appends records as AppendRecord would each, in order,
	// setting their IDs.
	AppendRecords(ctx context.Context, rs []Record) error

	// PutFaultRule stores a new fault rule; ErrDuplicate on a repeated id.
	PutFaultRule(ctx context.Context, r *FaultRule) error
	// DeleteFaultRules deletes the fault rules of appKey with id ("" matches any
	// app, any id) and returns how many it deleted.
	DeleteFaultRules(ctx context.Context, appKey, id string) (int, error)
	// ConsumeFaultRule takes one injection from a fault rule: a counted rule's
	// count goes down by one, and the rule is deleted when it reaches zero. It
	// reports false, changing nothing, when the rule does not exist; an
	// unlimited rule (count 0) is left as it is and reports true.
	ConsumeFaultRule(ctx context.Context, id string) (bool, error)

	// InsertAdminToken stores a new admin token; ErrDuplicate on a repeated id
	// or hash.
	InsertAdminToken(ctx context.Context, t *AdminToken) error
	// RevokeAdminToken sets the revocation time of the token to at, unless it
	// is revoked already (the first revocation stands); ErrNotFound for an
	// unknown id.
	RevokeAdminToken(ctx context.Context, id string, at time.Time) error

	// WebhookWriter writes webhooks and their deliveries (webhooks.go).
	WebhookWriter
}

// RecordSequencer is implemented by a store that gives records their record_id
// after they commit rather than in their transaction: PostgreSQL, where several
// processes commit at once and ids handed out inside transactions would not
// follow commit order (see that store's records.go). SequenceRecords numbers
// every record committed before it was called and returns how many it
// numbered. The history reads that list records by id run it first, so that
// they list everything committed before them.
type RecordSequencer interface {
	SequenceRecords(ctx context.Context) (int, error)
}

// Clock returns the current time. Tests replace it to move through reversal windows.
type Clock func() time.Time
