package sqlite

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/daodian/daodian"
)

// Rows that the hot path reads whole (tickets, uses, orders, apps) keep their
// descriptive fields in one BLOB column, the "doc", encoded here. The driver
// spends about 0.6 µs per result column per query (column names and declared
// types are fetched on every query), so a 17-column ticket costs 14 µs to read
// against 5 µs for (available, doc). Columns that SQL has to see — keys, unique
// codes, indexed fields, the CHECK on available, and fields Tx methods change —
// stay ordinary columns; the doc holds a copy of the immutable ones so that one
// column rebuilds the whole value.
//
// Encoding: a version byte, then the fields in a fixed order; strings are a
// uvarint length and the bytes, integers zig-zag varints, times Unix
// microseconds (0 for the zero time), booleans one byte. A new field is appended
// at the end, and the decoder reads it only when the doc goes on (decoder.more),
// so old rows keep decoding; a change to existing fields needs a new version byte.

// docV1 is the current doc encoding.
const docV1 = 1

// errCorrupt reports a doc that does not decode.
var errCorrupt = errors.New("sqlite: corrupt row encoding")

type encoder struct{ b []byte }

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) int(v int64) { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) time(t time.Time) { e.int(micros(t)) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) strs(l []string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(l)))
	for _, s := range l {
		e.str(s)
	}
}

// decoder reads a doc from one string so that every string field it returns
// shares that single allocation.
type decoder struct {
	s   string
	bad bool
}

func newDecoder(b []byte) decoder {
	d := decoder{s: string(b)}
	if len(d.s) == 0 || d.s[0] != docV1 {
		d.bad = true
		return d
	}
	d.s = d.s[1:]
	return d
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	var shift uint
	for i := 0; i < len(d.s) && i < binary.MaxVarintLen64; i++ {
		c := d.s[i]
		if c < 0x80 {
			d.s = d.s[i+1:]
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	d.bad = true
	d.s = ""
	return 0
}

func (d *decoder) int() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.s)) {
		d.bad = true
		d.s = ""
		return ""
	}
	v := d.s[:n]
	d.s = d.s[n:]
	return v
}

func (d *decoder) time() time.Time { return fromMicros(d.int()) }

func (d *decoder) bool() bool {
	if len(d.s) == 0 {
		d.bad = true
		return false
	}
	v := d.s[0] != 0
	d.s = d.s[1:]
	return v
}

func (d *decoder) strs() []string {
	n := d.uvarint()
	if n > uint64(len(d.s)) { // each element takes at least one byte
		d.bad = true
		d.s = ""
		return nil
	}
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = d.str()
	}
	return l
}

// more reports whether fields remain: a doc of an older row ends before the
// fields appended to its encoding since.
func (d *decoder) more() bool { return !d.bad && len(d.s) != 0 }

func (d *decoder) err() error {
	if d.bad || len(d.s) != 0 {
		return errCorrupt
	}
	return nil
}

// micros stores a time as Unix microseconds; the zero time is 0, so a time at
// exactly the Unix epoch reads back as the zero time (no real timestamp of this
// ledger is 1970-01-01T00:00:00Z).
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros; times come back in UTC.
func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func ticketDoc(b []byte, t *daodian.Ticket) []byte {
	e := encoder{b: append(b, docV1)}
	e.str(t.ID)
	e.str(t.Code)
	e.str(t.MerchantID)
	e.str(t.OrderNo)
	e.str(t.SubOrderNo)
	e.str(t.ItemID)
	e.str(t.OutItemID)
	e.str(t.ItemName)
	e.int(int64(t.Quantity))
	e.int(t.OriginalPriceCents)
	e.int(t.TotalAmountCents)
	e.int(t.RealAmountCents)
	e.time(t.ValidFrom)
	e.time(t.ValidTo)
	e.str(string(t.Status))
	e.time(t.CreatedAt)
	return e.b
}

func decodeTicket(available int64, doc []byte) (*daodian.Ticket, error) {
	d := newDecoder(doc)
	t := &daodian.Ticket{
		ID:                 d.str(),
		Code:               d.str(),
		MerchantID:         d.str(),
		OrderNo:            d.str(),
		SubOrderNo:         d.str(),
		ItemID:             d.str(),
		OutItemID:          d.str(),
		ItemName:           d.str(),
		Quantity:           int(d.int()),
		Available:          int(available),
		OriginalPriceCents: d.int(),
		TotalAmountCents:   d.int(),
		RealAmountCents:    d.int(),
		ValidFrom:          d.time(),
		ValidTo:            d.time(),
		Status:             daodian.TicketStatus(d.str()),
		CreatedAt:          d.time(),
	}
	return t, d.err()
}

func useDoc(b []byte, u *daodian.Use) []byte {
	e := encoder{b: append(b, docV1)}
	e.str(u.TransID)
	e.str(u.GroupTransID)
	e.str(u.TicketID)
	e.str(u.AppKey)
	e.str(u.RequestID)
	e.str(u.ShopID)
	e.int(int64(u.Units))
	e.time(u.GmtBiz)
	e.time(u.CreatedAt)
	e.int(u.BuyerPayCents)
	e.int(u.ReceiptCents)
	return e.b
}

func reversalDoc(b []byte, u *daodian.Use) []byte {
	e := encoder{b: append(b, docV1)}
	e.bool(u.Reversed)
	e.time(u.ReversedAt)
	e.str(u.ReversalAppKey)
	e.str(u.ReversalRequestID)
	e.time(u.ReversalBizDate)
	return e.b
}

func refundDoc(b []byte, u *daodian.Use) []byte {
	e := encoder{b: append(b, docV1)}
	e.bool(u.Refunded)
	e.time(u.RefundedAt)
	e.str(u.RefundAppKey)
	e.str(u.RefundRequestID)
	return e.b
}

// decodeUse rebuilds a use from its doc and its reversal and refund docs; an
// empty reversal or refund doc means the use was never marked.
func decodeUse(doc, reversal, refund []byte) (*daodian.Use, error) {
	d := newDecoder(doc)
	u := &daodian.Use{
		TransID:      d.str(),
		GroupTransID: d.str(),
		TicketID:     d.str(),
		AppKey:       d.str(),
		RequestID:    d.str(),
		ShopID:       d.str(),
		Units:        int(d.int()),
		GmtBiz:       d.time(),
		CreatedAt:    d.time(),
	}
	if d.more() { // the amounts, which uses kept from schema version 4 on
		u.BuyerPayCents = d.int()
		u.ReceiptCents = d.int()
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	if len(reversal) != 0 {
		d := newDecoder(reversal)
		u.Reversed = d.bool()
		u.ReversedAt = d.time()
		u.ReversalAppKey = d.str()
		u.ReversalRequestID = d.str()
		u.ReversalBizDate = d.time()
		if err := d.err(); err != nil {
			return nil, err
		}
	}
	if len(refund) != 0 {
		d := newDecoder(refund)
		u.Refunded = d.bool()
		u.RefundedAt = d.time()
		u.RefundAppKey = d.str()
		u.RefundRequestID = d.str()
		if err := d.err(); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func orderDoc(b []byte, o *daodian.Order) []byte {
	e := encoder{b: append(b, docV1)}
	e.str(o.OrderNo)
	e.str(o.SubOrderNo)
	e.str(o.MerchantID)
	e.str(o.BuyerID)
	e.str(o.UserPhone)
	e.str(o.ItemID)
	e.str(o.OutItemID)
	e.str(o.ItemName)
	e.int(o.OriginalPriceCents)
	e.int(o.TotalAmountCents)
	e.int(o.RealAmountCents)
	e.time(o.CreatedAt)
	return e.b
}

func decodeOrder(doc []byte) (*daodian.Order, error) {
	d := newDecoder(doc)
	o := &daodian.Order{
		OrderNo:            d.str(),
		SubOrderNo:         d.str(),
		MerchantID:         d.str(),
		BuyerID:            d.str(),
		UserPhone:          d.str(),
		ItemID:             d.str(),
		OutItemID:          d.str(),
		ItemName:           d.str(),
		OriginalPriceCents: d.int(),
		TotalAmountCents:   d.int(),
		RealAmountCents:    d.int(),
		CreatedAt:          d.time(),
	}
	return o, d.err()
}

// appDoc encodes the fields of an app that UpdateApp replaces; the key, the
// (sealed) secrets and the creation time are columns of their own, so UpdateApp
// and SetAppSecrets are one UPDATE each.
func appDoc(b []byte, a *daodian.App) []byte {
	e := encoder{b: append(b, docV1)}
	e.str(a.Name)
	e.strs(a.Merchants)
	e.bool(a.Enabled)
	e.strs(a.Methods)
	e.int(int64(a.RateLimitPerS))
	return e.b
}

// decodeApp decodes an app's doc; the caller sets its secrets.
func decodeApp(key string, createdAt int64, doc []byte) (*daodian.App, error) {
	d := newDecoder(doc)
	a := &daodian.App{
		Key:           key,
		Name:          d.str(),
		Merchants:     d.strs(),
		Enabled:       d.bool(),
		Methods:       d.strs(),
		RateLimitPerS: int(d.int()),
		CreatedAt:     fromMicros(createdAt),
	}
	return a, d.err()
}
