package daodian

import (
	"errors"
	"fmt"
)

// Reversal error codes (SPEC §4.4). They are answered inside `result` with
// success=false, never as a platform error.
const (
	CodeSystemError         = "SYSTEM_ERROR"
	CodeTicketNotFound      = "TICKET_NOT_FOUND"
	CodeUseTransNotFound    = "TICKET_USE_TRANS_NOT_FOUND"
	CodeUseTransMismatch    = "TICKET_USE_TRANS_MISMATCH"
	CodeTicketStatusInvalid = "TICKET_STATUS_INVALID"
	CodeReverseTimeExpired  = "REVERSE_TIME_EXPIRED"
	CodeRequestIDConflict   = "REQUEST_ID_CONFLICT"
	CodeTicketCodeInvalid   = "TICKET_CODE_INVALID"  // consult
	CodeShopNotMatch        = "SHOP_NOT_MATCH"       // consult
	CodeTicketExpired       = "TICKET_EXPIRED"       // consult
	CodeTicketNotYetValid   = "TICKET_NOT_YET_VALID" // consult
	msgSystemError          = "系统繁忙"
	msgTicketNotFound       = "凭证不存在"
	msgUseTransNotFound     = "核销流水不存在"
	msgUseTransMismatch     = "核销流水与凭证不匹配"
	msgTicketStatusInvalid  = "凭证状态不支持冲正"
	msgReverseTimeExpired   = "已超过冲正时效"
	msgRequestIDConflict    = "请求id重复且参数不一致"
	msgTicketCodeInvalid    = "券码不存在"
	msgShopNotMatch         = "门店与凭证不匹配"
	msgTicketExpired        = "凭证已过期"
	msgTicketNotYetValid    = "凭证未到可用时间"
	msgConsultStatusInvalid = "凭证状态不可用"
)

// messages maps each business code of SPEC §4.2 and §4.4 to its default message.
var messages = map[string]string{
	CodeSystemError:         msgSystemError,
	CodeTicketNotFound:      msgTicketNotFound,
	CodeUseTransNotFound:    msgUseTransNotFound,
	CodeUseTransMismatch:    msgUseTransMismatch,
	CodeTicketStatusInvalid: msgTicketStatusInvalid,
	CodeReverseTimeExpired:  msgReverseTimeExpired,
	CodeRequestIDConflict:   msgRequestIDConflict,
	CodeTicketCodeInvalid:   msgTicketCodeInvalid,
	CodeShopNotMatch:        msgShopNotMatch,
	CodeTicketExpired:       msgTicketExpired,
	CodeTicketNotYetValid:   msgTicketNotYetValid,
}

// Message returns the default message of a business code.
func Message(code string) string { return messages[code] }

// Retryable reports whether a business code may succeed on a retry of the same
// request. Only SYSTEM_ERROR can; every other answer is final (SPEC §4.4 rule 5).
func Retryable(code string) bool { return code == CodeSystemError }

// Refusal sub-codes of the use and refund methods (SPEC §4.3, §4.5). They are
// answered as error_response code 50 with this sub_code.
const (
	SubTicketNotFound        = "isv.ticket-not-found"
	SubTicketExpired         = "isv.ticket-expired"
	SubTicketNotYetValid     = "isv.ticket-not-yet-valid"
	SubNotEnoughQuantity     = "isv.ticket-not-enough-quantity"
	SubShopNotMatch          = "isv.shop-not-match"
	SubTicketStatusInvalid   = "isv.ticket-status-invalid"
	SubRequestIDConflict     = "isv.request-id-conflict"
	SubUseFencedByReversal   = "isv.use-fenced-by-reversal"
	SubUseTransNotFound      = "isv.use-trans-not-found"
	SubUseAlreadyReversed    = "isv.use-already-reversed"
	SubInvalidParameter      = "isv.invalid-parameter"
	subMsgTicketNotFound     = "凭证不存在"
	subMsgTicketExpired      = "凭证已过期"
	subMsgTicketNotYetValid  = "凭证未到可用时间"
	subMsgNotEnoughQuantity  = "凭证可用数量不足"
	subMsgShopNotMatch       = "门店与凭证不匹配"
	subMsgStatusInvalid      = "凭证状态不可用"
	subMsgRequestIDConflict  = "请求id重复且参数不一致"
	subMsgFenced             = "该凭证已被冲正,业务时间不晚于冲正时间的核销被拒绝"
	subMsgUseTransNotFound   = "核销流水不存在"
	subMsgUseAlreadyReversed = "核销已被冲正,不能退款"
)

// Refusal is a business refusal of a use or refund: the request cannot apply and
// nothing changed but the record of this answer under the request's key (except
// for SubRequestIDConflict, which is not recorded). The gateway answers it as
// error_response code 50 with SubCode.
type Refusal struct {
	SubCode string `json:"sub_code"`
	SubMsg  string `json:"sub_msg"`
}

func (r *Refusal) Error() string { return r.SubCode + ": " + r.SubMsg }

func refuse(sub, msg string) *Refusal { return &Refusal{SubCode: sub, SubMsg: msg} }

// InvalidParameter is a business parameter that fails validation (SPEC §4: code 50,
// isv.invalid-parameter). Field names the offending field.
type InvalidParameter struct {
	Field  string
	Reason string
}

func (e *InvalidParameter) Error() string { return e.Field + " " + e.Reason }

func invalid(field, reason string) *InvalidParameter {
	return &InvalidParameter{Field: field, Reason: reason}
}

// ErrTransient marks a failure that may pass on retry: the store was busy, a deadline
// passed, a connection was lost, a serialisation conflict persisted. Stores wrap such
// failures so that errors.Is(err, ErrTransient) holds; the ledger then answers
// SYSTEM_ERROR with retry=true (or code 15 for methods without a retry flag) and has
// recorded nothing.
var ErrTransient = errors.New("transient store failure")

// ErrNotFound is returned by store lookups of a single row that does not exist.
var ErrNotFound = errors.New("not found")

// ErrDuplicate is returned by a store when an insert collides with a unique key.
var ErrDuplicate = errors.New("duplicate key")

// ErrSubOrderBusy is what a use returns when the tickets of its sub-order that
// its transaction could lock hold too few units while others were held by
// other transactions (Tx.UseSiblings reported them left out): the answer
// depends on those. A store that returns incomplete siblings runs the
// transaction again with the whole sub-order locked in id order, waiting for
// them; the error never reaches a caller.
var ErrSubOrderBusy = errors.New("the sub-order's free tickets hold too few units while others are held")

// InvariantError is a broken SPEC §4.4 invariant detected before commit. The
// transaction is aborted; it is a bug and is reported loudly.
type InvariantError struct {
	TicketID string
	What     string
}

func (e *InvariantError) Error() string {
	return fmt.Sprintf("invariant violated on ticket %s: %s", e.TicketID, e.What)
}

// Transient wraps err so that errors.Is(err, ErrTransient) holds.
func Transient(err error) error {
	if err == nil || errors.Is(err, ErrTransient) {
		return err
	}
	return &transientError{err}
}

type transientError struct{ err error }

func (e *transientError) Error() string        { return "transient: " + e.err.Error() }
func (e *transientError) Unwrap() []error      { return []error{ErrTransient, e.err} }
func (e *transientError) Is(target error) bool { return target == ErrTransient }
