package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/daodian/daodian"
)

// The writer's memory of the hot rows (SPEC §6: decide in memory, write the
// store as a log).
//
// A Store that owns its file (not Shared) keeps the rows every use, reversal and
// refund reads — a ticket with its unreversed uses and its fences, the
// idempotency records, the shops — in memory, so that an Update decides from
// memory and the only statements it costs are the reads of what memory does not
// hold (a ticket the first time it is touched, and the lookup of an idempotency
// key not seen before). Its writes are staged: kept per Update, merged into the
// batch's pending writes when the Update succeeds (dropped when it fails), and
// written to SQLite once per batch, just before COMMIT, as multi-row statements
// (flush.go). SQLite's file stays the truth: memory only ever holds rows as the
// file has them after the last commit plus the batch's own writes, is reloaded on
// a miss, and is dropped whole
//   - when a batch fails to commit (memory may hold writes the file does not),
//   - when another process has written the file (PRAGMA data_version, read at
//     the start of every batch under the write lock: admin commands run beside
//     the server write the file directly),
//   - when it grows past its bound: tickets are kept in two generations of at
//     most Options.MemoryTickets each; the older is dropped when the newer
//     fills up, between batches, so that a row written by the batch is never
//     dropped before it is written.
//
// A crash loses memory and nothing else: every answer was given after its batch
// was durable in the file, and a restarted Store starts from the file.
//
// Memory bound: 2 × MemoryTickets tickets with their unreversed uses and fences
// (a few hundred bytes for a single-use ticket), the same number of idempotency
// records, and the shops. A miss costs three indexed reads (the ticket, its
// unreversed uses, its fences).

// memTicket is a ticket as memory holds it: the row, its unreversed uses (refunded
// ones included) in transaction id order, and its fences by app.
type memTicket struct {
	t      daodian.Ticket
	active []*daodian.Use
	fences map[string]daodian.Fence
}

// clone returns a copy an Update may change: the slice and map are its own; the
// uses are shared until replaced (a use is never changed in place).
func (m *memTicket) clone() *memTicket {
	c := &memTicket{t: m.t, active: slices.Clone(m.active), fences: make(map[string]daodian.Fence, len(m.fences))}
	for k, v := range m.fences {
		c.fences[k] = v
	}
	return c
}

func (m *memTicket) activeUse(transID string) (int, *daodian.Use) {
	for i, u := range m.active {
		if u.TransID == transID {
			return i, u
		}
	}
	return -1, nil
}

// mem is the writer's memory. Only the writer goroutine touches it.
type mem struct {
	max int // tickets (and idempotency records) per generation

	cur, prev map[string]*memTicket // by ticket id
	byCode    map[string]string     // ticket code → id, for held tickets
	// useTicket maps the transaction id of a held ticket's unreversed use to
	// the ticket; an entry may outlive its use's activity (a lookup checks).
	useTicket map[string]string

	idemCur, idemPrev map[daodian.IdemKey]*daodian.IdemRecord
	shops             map[[2]string]daodian.Shop

	// nextRecord is the id the next record gets; 0 when not yet read from the
	// file.
	nextRecord int64
	// version is the file's data_version when memory last matched it; -1 when
	// unknown (memory empty).
	version int64

	pend pending // the batch's writes, not yet in the file
}

func newMem(max int) *mem {
	m := &mem{max: max}
	m.reset()
	return m
}

// reset forgets everything: the next read of each row goes to the file.
func (m *mem) reset() {
	m.cur, m.prev = make(map[string]*memTicket), nil
	m.byCode, m.useTicket = make(map[string]string), make(map[string]string)
	m.idemCur, m.idemPrev = make(map[daodian.IdemKey]*daodian.IdemRecord), nil
	m.shops = make(map[[2]string]daodian.Shop)
	m.nextRecord = 0
	m.version = -1
	m.pend.reset()
}

// rotate drops the older generation when the newer is full. It runs between
// batches, when nothing is pending.
func (m *mem) rotate() {
	if len(m.cur) >= m.max {
		m.prev, m.cur = m.cur, make(map[string]*memTicket, m.max)
		m.byCode, m.useTicket = make(map[string]string, len(m.prev)), make(map[string]string, len(m.prev))
		for id, mt := range m.prev {
			m.byCode[mt.t.Code] = id
			for _, u := range mt.active {
				m.useTicket[u.TransID] = id
			}
		}
	}
	if len(m.idemCur) >= m.max {
		m.idemPrev, m.idemCur = m.idemCur, make(map[daodian.IdemKey]*daodian.IdemRecord, m.max)
	}
	if len(m.shops) > m.max {
		m.shops = make(map[[2]string]daodian.Shop)
	}
}

// held returns a held ticket, promoting it to the newer generation.
func (m *mem) held(id string) *memTicket {
	if mt := m.cur[id]; mt != nil {
		return mt
	}
	if mt := m.prev[id]; mt != nil {
		delete(m.prev, id)
		m.cur[id] = mt
		return mt
	}
	return nil
}

// put holds mt as its ticket's current state.
func (m *mem) put(mt *memTicket) {
	delete(m.prev, mt.t.ID)
	m.cur[mt.t.ID] = mt
	m.byCode[mt.t.Code] = mt.t.ID
	for _, u := range mt.active {
		m.useTicket[u.TransID] = mt.t.ID
	}
}

func (m *mem) idem(k daodian.IdemKey) *daodian.IdemRecord {
	if r := m.idemCur[k]; r != nil {
		return r
	}
	return m.idemPrev[k]
}

// pending are writes not yet in the file: an Update's (its stage) or a batch's.
// Each row appears once, in its final state, except records and idempotency
// records, which are only inserted.
type pending struct {
	available map[string]int          // ticket id → available
	uses      map[string]*daodian.Use // trans id → the use as it must be written
	newUses   map[string]bool         // the uses of uses that are new rows
	useOrder  []string                // trans ids in the order first touched
	fences    map[[2]string]daodian.Fence
	idem      []*daodian.IdemRecord
	records   []daodian.Record
}

// reset empties p, keeping its maps and slices for the next writes: the
// writer resets one per Update and per batch.
func (p *pending) reset() {
	if p.available == nil {
		p.available = make(map[string]int)
		p.uses = make(map[string]*daodian.Use)
		p.newUses = make(map[string]bool)
		p.fences = make(map[[2]string]daodian.Fence)
	}
	clear(p.available)
	clear(p.uses)
	clear(p.newUses)
	clear(p.fences)
	clear(p.useOrder) // drop the references to the rows
	p.useOrder = p.useOrder[:0]
	clear(p.idem)
	p.idem = p.idem[:0]
	clear(p.records)
	p.records = p.records[:0]
}

func (p *pending) empty() bool {
	return len(p.available) == 0 && len(p.uses) == 0 && len(p.fences) == 0 && len(p.idem) == 0 && len(p.records) == 0
}

func (p *pending) putUse(u *daodian.Use, isNew bool) {
	if _, ok := p.uses[u.TransID]; !ok {
		p.useOrder = append(p.useOrder, u.TransID)
	}
	p.uses[u.TransID] = u
	if isNew {
		p.newUses[u.TransID] = true
	}
}

// merge adds the writes of an Update that succeeded.
func (p *pending) merge(o *pending) {
	for id, a := range o.available {
		p.available[id] = a
	}
	for _, id := range o.useOrder {
		p.putUse(o.uses[id], o.newUses[id])
	}
	for k, f := range o.fences {
		p.fences[k] = f
	}
	p.idem = append(p.idem, o.idem...)
	p.records = append(p.records, o.records...)
}

// stage is one Update's view of memory: the tickets it touched (clones) and its
// writes. It becomes the batch's when the Update succeeds.
//
// Everything an Update reads from the file is kept in its stage too, not in
// memory, until the Update succeeds: a row it wrote itself through a statement
// (a ticket it inserted, say) is undone with it if it fails, and must not outlive
// it in memory.
type stage struct {
	tickets map[string]*memTicket // loaded or cloned: the Update's own
	idem    map[daodian.IdemKey]*daodian.IdemRecord
	// noIdem are keys this Update found in neither memory nor the file.
	noIdem map[daodian.IdemKey]bool
	shops  map[[2]string]daodian.Shop
	pend   pending
}

func newStage() *stage {
	st := &stage{
		tickets: make(map[string]*memTicket),
		idem:    make(map[daodian.IdemKey]*daodian.IdemRecord),
		noIdem:  make(map[daodian.IdemKey]bool),
		shops:   make(map[[2]string]daodian.Shop),
	}
	st.pend.reset()
	return st
}

// reset empties the stage for the next Update: the writer keeps one, as it
// runs one Update at a time.
func (st *stage) reset() {
	clear(st.tickets)
	clear(st.idem)
	clear(st.noIdem)
	clear(st.shops)
	st.pend.reset()
}

// commitStage makes a succeeded Update's stage part of memory and of the
// batch's pending writes.
func (m *mem) commitStage(st *stage) {
	for _, mt := range st.tickets {
		m.put(mt)
	}
	for k, r := range st.idem {
		delete(m.idemPrev, k)
		m.idemCur[k] = r
	}
	for k, sh := range st.shops {
		m.shops[k] = sh
	}
	m.pend.merge(&st.pend)
}

// --- the Tx methods on memory (writeTx with a stage) ---

// memTicket returns the ticket as this Update sees it, loading it from the file
// on a miss; nil when it does not exist.
func (t *writeTx) memTicket(id string) (*memTicket, error) {
	if mt := t.st.tickets[id]; mt != nil {
		return mt, nil
	}
	if mt := t.w.mem.held(id); mt != nil {
		return mt, nil
	}
	mt, err := t.loadTicket(t.s.r.ticket, id)
	if err != nil || mt == nil {
		return nil, err
	}
	t.st.tickets[id] = mt
	return mt, nil
}

// touch returns this Update's own copy of a ticket, for a write.
func (t *writeTx) touch(id string) (*memTicket, error) {
	if mt := t.st.tickets[id]; mt != nil {
		return mt, nil // loaded or cloned by this Update: its own
	}
	mt, err := t.memTicket(id)
	if err != nil || mt == nil {
		if err == nil {
			err = daodian.ErrNotFound
		}
		return nil, err
	}
	if t.st.tickets[id] == mt {
		return mt, nil // just loaded
	}
	c := mt.clone()
	t.st.tickets[id] = c
	return c, nil
}

// loadTicket reads a ticket by id or code (st), its unreversed uses and its
// fences from the file. A held ticket is never read again: memory has what the
// file has, plus the batch's writes.
func (t *writeTx) loadTicket(st *stmt, key string) (*memTicket, error) {
	tk, err := t.readTx.ticket(st, key)
	if errors.Is(err, daodian.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	mt := &memTicket{t: *tk, fences: make(map[string]daodian.Fence)}
	err = t.s.query(bg, t.s.w.activeUses, 3, daodian.MaxQuantity+1, func(row []driver.Value) error {
		u, err := decodeUse(asBytes(row[0]), asBytes(row[1]), asBytes(row[2]))
		if err != nil {
			return &walkError{err}
		}
		mt.active = append(mt.active, u)
		return nil
	}, tk.ID)
	if errors.Is(err, errTooMany) {
		return nil, fmt.Errorf("sqlite: ticket %s has more than %d unreversed uses", tk.ID, daodian.MaxQuantity)
	}
	if err := t.s.walkResult(err); err != nil {
		return nil, err
	}
	err = t.s.query(bg, t.s.w.ticketFences, 4, 0, func(row []driver.Value) error {
		f := daodian.Fence{TicketID: tk.ID, AppKey: asStr(row[0]), At: fromMicros(asInt(row[1])),
			RequestID: asStr(row[2]), CreatedAt: fromMicros(asInt(row[3]))}
		mt.fences[f.AppKey] = f
		return nil
	}, tk.ID)
	if err := t.s.walkResult(err); err != nil {
		return nil, err
	}
	return mt, nil
}

func copyTicket(mt *memTicket) *daodian.Ticket {
	c := mt.t
	return &c
}

func copyUse(u *daodian.Use) *daodian.Use {
	c := *u
	return &c
}

func (t *writeTx) Ticket(ctx context.Context, id string) (*daodian.Ticket, error) {
	if t.st == nil {
		return t.readTx.Ticket(ctx, id)
	}
	if t.done {
		return nil, errTxDone
	}
	mt, err := t.memTicket(id)
	if err != nil {
		return nil, err
	}
	if mt == nil {
		return nil, daodian.ErrNotFound
	}
	return copyTicket(mt), nil
}

func (t *writeTx) TicketByCode(ctx context.Context, code string) (*daodian.Ticket, error) {
	if t.st == nil {
		return t.readTx.TicketByCode(ctx, code)
	}
	if t.done {
		return nil, errTxDone
	}
	for _, mt := range t.st.tickets {
		if mt.t.Code == code {
			return copyTicket(mt), nil
		}
	}
	if id, ok := t.w.mem.byCode[code]; ok {
		if mt := t.w.mem.held(id); mt != nil && mt.t.Code == code {
			return copyTicket(mt), nil
		}
	}
	mt, err := t.loadTicket(t.s.r.ticketByCode, code)
	if err != nil {
		return nil, err
	}
	if mt == nil {
		return nil, daodian.ErrNotFound
	}
	if held := t.w.mem.held(mt.t.ID); held != nil {
		// Held under its id but not under its code in the index: memory's
		// copy is the current one.
		return copyTicket(held), nil
	}
	t.st.tickets[mt.t.ID] = mt
	return copyTicket(mt), nil
}

// TicketForUse locks nothing: the single writer serialises every Update. It is
// readTx's, declared again so that Ticket and TicketByCode are memory's.
func (t *writeTx) TicketForUse(ctx context.Context, code, id string) (*daodian.Ticket, error) {
	if code == "" {
		return t.Ticket(ctx, id)
	}
	return t.TicketByCode(ctx, code)
}

// UseSiblings is every ticket of the sub-order: the single writer holds them
// all, so none is ever left out.
func (t *writeTx) UseSiblings(ctx context.Context, tk *daodian.Ticket, _ int) ([]daodian.Ticket, bool, error) {
	list, err := t.SubOrderTickets(ctx, tk.SubOrderNo)
	return list, true, err
}

func (t *writeTx) SubOrderTickets(ctx context.Context, subOrderNo string) ([]daodian.Ticket, error) {
	if t.st == nil {
		return t.readTx.SubOrderTickets(ctx, subOrderNo)
	}
	// The file says which tickets the sub-order has (that never changes);
	// memory says what state they are in.
	list, err := t.readTx.SubOrderTickets(ctx, subOrderNo)
	if err != nil {
		return nil, err
	}
	for i := range list {
		mt, err := t.memTicket(list[i].ID)
		if err != nil {
			return nil, err
		}
		if mt != nil {
			list[i] = mt.t
		}
	}
	return list, nil
}

func (t *writeTx) Idem(ctx context.Context, key daodian.IdemKey) (*daodian.IdemRecord, error) {
	if t.st == nil {
		return t.readTx.Idem(ctx, key)
	}
	if t.done {
		return nil, errTxDone
	}
	if r := t.st.idem[key]; r != nil {
		return r, nil
	}
	if r := t.w.mem.idem(key); r != nil {
		return r, nil
	}
	if t.st.noIdem[key] {
		return nil, daodian.ErrNotFound
	}
	// Not in memory: the file has it or nobody does (the batch's records are
	// all in memory).
	r, err := t.readTx.Idem(ctx, key)
	switch {
	case err == nil:
		t.st.idem[key] = r
	case errors.Is(err, daodian.ErrNotFound):
		t.st.noIdem[key] = true
	}
	return r, err
}

// use finds a use: an unreversed use of a held ticket, a use the batch wrote,
// or the file's row (which the batch has not touched).
func (t *writeTx) memUse(transID string) (*daodian.Use, error) {
	for _, mt := range t.st.tickets {
		if _, u := mt.activeUse(transID); u != nil {
			return u, nil
		}
	}
	if u := t.st.pend.uses[transID]; u != nil {
		return u, nil
	}
	if id, ok := t.w.mem.useTicket[transID]; ok {
		if mt := t.st.tickets[id]; mt != nil {
			if _, u := mt.activeUse(transID); u != nil {
				return u, nil
			}
		} else if mt := t.w.mem.held(id); mt != nil {
			if _, u := mt.activeUse(transID); u != nil {
				return u, nil
			}
		}
	}
	if u := t.w.mem.pend.uses[transID]; u != nil {
		return u, nil
	}
	u, err := t.readTx.Use(bg, transID)
	if err != nil {
		return nil, err
	}
	if !u.Reversed {
		// An unreversed use of a held ticket is in memory; if its ticket is
		// held, memory's copy is the current one.
		if mt := t.st.tickets[u.TicketID]; mt != nil {
			if _, mu := mt.activeUse(transID); mu != nil {
				return mu, nil
			}
		} else if mt := t.w.mem.held(u.TicketID); mt != nil {
			if _, mu := mt.activeUse(transID); mu != nil {
				return mu, nil
			}
		}
	}
	return u, nil
}

func (t *writeTx) Use(ctx context.Context, transID string) (*daodian.Use, error) {
	if t.st == nil {
		return t.readTx.Use(ctx, transID)
	}
	if t.done {
		return nil, errTxDone
	}
	u, err := t.memUse(transID)
	if err != nil {
		return nil, err
	}
	return copyUse(u), nil
}

func (t *writeTx) GroupUse(ctx context.Context, groupTransID, ticketID string) (*daodian.Use, error) {
	if t.st == nil {
		return t.readTx.GroupUse(ctx, groupTransID, ticketID)
	}
	if t.done {
		return nil, errTxDone
	}
	// The file knows the group's use of the ticket, reversed or not; memory
	// knows its current state.
	u, err := t.readTx.GroupUse(ctx, groupTransID, ticketID)
	if errors.Is(err, daodian.ErrNotFound) {
		// Written by this batch, not yet in the file?
		for _, p := range []*pending{&t.st.pend, &t.w.mem.pend} {
			for _, id := range p.useOrder {
				if pu := p.uses[id]; pu.GroupTransID == groupTransID && pu.TicketID == ticketID {
					return copyUse(pu), nil
				}
			}
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	mu, err := t.memUse(u.TransID)
	if err != nil {
		return nil, err
	}
	return copyUse(mu), nil
}

func (t *writeTx) LatestActiveUse(ctx context.Context, ticketID, appKey string) (*daodian.Use, error) {
	if t.st == nil {
		return t.readTx.LatestActiveUse(ctx, ticketID, appKey)
	}
	if t.done {
		return nil, errTxDone
	}
	mt, err := t.memTicket(ticketID)
	if err != nil {
		return nil, err
	}
	if mt != nil {
		for i := len(mt.active) - 1; i >= 0; i-- {
			if mt.active[i].AppKey == appKey {
				return copyUse(mt.active[i]), nil
			}
		}
	}
	return nil, daodian.ErrNotFound
}

func (t *writeTx) ActiveUnits(ctx context.Context, ticketID string) (int, error) {
	if t.st == nil {
		return t.readTx.ActiveUnits(ctx, ticketID)
	}
	if t.done {
		return 0, errTxDone
	}
	mt, err := t.memTicket(ticketID)
	if err != nil || mt == nil {
		return 0, err
	}
	n := 0
	for _, u := range mt.active {
		n += u.Units
	}
	return n, nil
}

func (t *writeTx) Fence(ctx context.Context, ticketID, appKey string) (*daodian.Fence, error) {
	if t.st == nil {
		return t.readTx.Fence(ctx, ticketID, appKey)
	}
	if t.done {
		return nil, errTxDone
	}
	mt, err := t.memTicket(ticketID)
	if err != nil {
		return nil, err
	}
	if mt != nil {
		if f, ok := mt.fences[appKey]; ok {
			return &f, nil
		}
	}
	return nil, daodian.ErrNotFound
}

func (t *writeTx) Shop(ctx context.Context, merchantID, shopID string) (*daodian.Shop, error) {
	if t.st == nil {
		return t.readTx.Shop(ctx, merchantID, shopID)
	}
	if t.done {
		return nil, errTxDone
	}
	k := [2]string{merchantID, shopID}
	if sh, ok := t.w.mem.shops[k]; ok {
		return &sh, nil
	}
	if sh, ok := t.st.shops[k]; ok {
		return &sh, nil
	}
	sh, err := t.readTx.Shop(ctx, merchantID, shopID)
	if err == nil {
		// Shops are never changed or deleted: a shop found stays true. One not
		// found is read again next time (it may be added meanwhile).
		t.st.shops[k] = *sh
	}
	return sh, err
}

// --- writes ---

func (t *writeTx) memSetAvailable(ticketID string, available int) error {
	mt, err := t.touch(ticketID)
	if err != nil {
		return err
	}
	if available < 0 || available > mt.t.Quantity {
		return &daodian.InvariantError{TicketID: ticketID, What: fmt.Sprintf("available %d outside [0, quantity]", available)}
	}
	mt.t.Available = available
	t.st.pend.available[ticketID] = available
	return nil
}

func (t *writeTx) memInsertUse(u *daodian.Use) error {
	// An id this writer handed out in this batch is new: no row has it. Any
	// other is looked up.
	if t.st.pend.uses[u.TransID] != nil || t.w.mem.pend.uses[u.TransID] != nil {
		return fmt.Errorf("sqlite: use %q: %w", u.TransID, daodian.ErrDuplicate)
	}
	if !t.w.issued[u.TransID] {
		if _, err := t.memUse(u.TransID); err == nil {
			return fmt.Errorf("sqlite: use %q: %w", u.TransID, daodian.ErrDuplicate)
		} else if !errors.Is(err, daodian.ErrNotFound) {
			return err
		}
	}
	mt, err := t.touch(u.TicketID)
	if errors.Is(err, daodian.ErrNotFound) {
		// A use of no ticket (the store's contract allows it; the ledger never
		// writes one): nothing of it is kept in memory.
		return t.sqlInsertUse(u)
	}
	if err != nil {
		return err
	}
	c := copyUse(u)
	if !c.Reversed {
		i, _ := slices.BinarySearchFunc(mt.active, c.TransID, func(a *daodian.Use, id string) int { return compareIDs(a.TransID, id) })
		mt.active = slices.Insert(mt.active, i, c)
	}
	t.st.pend.putUse(c, true)
	return nil
}

// compareIDs orders decimal ids numerically (a shorter one is smaller), as the
// file's text order does for the store's 19-digit ids.
func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// memMarkUse replaces a use's state: the reversal or refund fields of u.
func (t *writeTx) memMarkUse(u *daodian.Use, reversed bool) error {
	mt, err := t.touch(u.TicketID)
	if errors.Is(err, daodian.ErrNotFound) {
		return t.sqlMarkUse(u, reversed) // a use of no ticket: not in memory
	}
	if err != nil {
		return err
	}
	i, cur := mt.activeUse(u.TransID)
	if cur == nil {
		// Not an unreversed use: a reversed one, marked again (the store's
		// contract allows it; the ledger never does it). The batch may hold
		// its current state; else the file does.
		pu := t.st.pend.uses[u.TransID]
		if pu == nil {
			pu = t.w.mem.pend.uses[u.TransID]
		}
		if pu == nil {
			return t.sqlMarkUse(u, reversed)
		}
		cur, i = pu, -1
	}
	c := copyUse(cur)
	if reversed {
		c.Reversed, c.ReversedAt, c.ReversalAppKey, c.ReversalRequestID, c.ReversalBizDate =
			u.Reversed, u.ReversedAt, u.ReversalAppKey, u.ReversalRequestID, u.ReversalBizDate
	} else {
		c.Refunded, c.RefundedAt, c.RefundAppKey, c.RefundRequestID = u.Refunded, u.RefundedAt, u.RefundAppKey, u.RefundRequestID
	}
	switch {
	case i < 0:
	case c.Reversed:
		mt.active = slices.Delete(mt.active, i, i+1)
	default:
		mt.active[i] = c
	}
	t.st.pend.putUse(c, t.st.pend.newUses[c.TransID] || t.w.mem.pend.newUses[c.TransID])
	return nil
}

func (t *writeTx) memPutFence(f *daodian.Fence) error {
	mt, err := t.touch(f.TicketID)
	if errors.Is(err, daodian.ErrNotFound) {
		return t.sqlPutFence(f) // a fence of no ticket: not in memory
	}
	if err != nil {
		return err
	}
	mt.fences[f.AppKey] = *f
	t.st.pend.fences[[2]string{f.TicketID, f.AppKey}] = *f
	return nil
}

func (t *writeTx) memPutIdem(rec *daodian.IdemRecord) error {
	if _, err := t.Idem(bg, rec.IdemKey); err == nil {
		return fmt.Errorf("sqlite: idempotency record %s/%s/%s: %w", rec.AppKey, rec.Op, rec.RequestID, daodian.ErrDuplicate)
	} else if !errors.Is(err, daodian.ErrNotFound) {
		return err
	}
	c := *rec
	if c.Answer == nil {
		c.Answer = []byte{}
	}
	t.st.idem[rec.IdemKey] = &c
	t.st.pend.idem = append(t.st.pend.idem, &c)
	return nil
}

func (t *writeTx) memAppendRecord(r *daodian.Record) error {
	m := t.w.mem
	if m.nextRecord == 0 {
		row, err := t.s.queryRow(t.s.w.maxRecord, 1)
		if err != nil {
			return t.s.fail(err)
		}
		m.nextRecord = asInt(row[0]) + 1
	}
	r.ID = strconv.FormatInt(m.nextRecord, 10)
	// Taken even if the Update fails: ids only grow, a gap is harmless.
	m.nextRecord++
	t.st.pend.records = append(t.st.pend.records, *r)
	return nil
}

// The reads of whole tables or of records read the file: inside an Update with
// memory, the batch's pending writes go there first (syncFile), so that they
// see what the Updates before this one wrote. An Update's own writes to the
// rows memory keeps are staged until it succeeds, and are not among them.

func (t *writeTx) EachTicket(ctx context.Context, fn func(*daodian.Ticket) error) error {
	if err := t.syncFile(); err != nil {
		return err
	}
	return t.readTx.EachTicket(ctx, fn)
}

func (t *writeTx) EachUse(ctx context.Context, fn func(*daodian.Use) error) error {
	if err := t.syncFile(); err != nil {
		return err
	}
	return t.readTx.EachUse(ctx, fn)
}

func (t *writeTx) EachIdem(ctx context.Context, fn func(*daodian.IdemRecord) error) error {
	if err := t.syncFile(); err != nil {
		return err
	}
	return t.readTx.EachIdem(ctx, fn)
}

func (t *writeTx) EachRecord(ctx context.Context, fn func(*daodian.Record) error) error {
	if err := t.syncFile(); err != nil {
		return err
	}
	return t.readTx.EachRecord(ctx, fn)
}

func (t *writeTx) Counts(ctx context.Context) (daodian.Counts, error) {
	if err := t.syncFile(); err != nil {
		return daodian.Counts{}, err
	}
	return t.readTx.Counts(ctx)
}

func (t *writeTx) Records(ctx context.Context, q daodian.RecordQuery) ([]daodian.Record, error) {
	if err := t.syncFile(); err != nil {
		return nil, err
	}
	return t.readTx.Records(ctx, q)
}

func (t *writeTx) TicketRecords(ctx context.Context, ticketID string) ([]daodian.Record, error) {
	if err := t.syncFile(); err != nil {
		return nil, err
	}
	return t.readTx.TicketRecords(ctx, ticketID)
}

func (t *writeTx) DayTotals(ctx context.Context, merchantID string, day int, shopID string) ([]daodian.DayTotal, error) {
	if err := t.syncFile(); err != nil {
		return nil, err
	}
	return t.readTx.DayTotals(ctx, merchantID, day, shopID)
}

func (t *writeTx) EachDayUse(ctx context.Context, merchantID string, day int, fn func(*daodian.DayUse) error) error {
	if err := t.syncFile(); err != nil {
		return err
	}
	return t.readTx.EachDayUse(ctx, merchantID, day, fn)
}
