package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/daodian/daodian/alsc"
)

// TimeGet calls taobao.time.get.
func (c *Client) TimeGet(ctx context.Context) (*alsc.TimeGetResponse, error) {
	var r alsc.TimeGetResponse
	return &r, c.Execute(ctx, alsc.TimeGetRequest{}, &r)
}

// Consult calls alibaba.alsc.daodian.ticket.consult.
func (c *Client) Consult(ctx context.Context, req alsc.ConsultTopRequest) (*alsc.ConsultResponse, error) {
	var r alsc.ConsultResponse
	return &r, c.Execute(ctx, &alsc.ConsultRequest{ConsultRequest: &req}, &r)
}

// Use calls alibaba.alsc.merchant.ext.ticketcode.use once.
func (c *Client) Use(ctx context.Context, req alsc.UseTopRequest) (*alsc.UseResponse, error) {
	var r alsc.UseResponse
	return &r, c.Execute(ctx, &alsc.UseRequest{UseRequest: &req}, &r)
}

// Reserve calls alibaba.alsc.daodian.ticket.reserve once.
func (c *Client) Reserve(ctx context.Context, req alsc.TicketReverseTopRequest) (*alsc.ReserveResponse, error) {
	var r alsc.ReserveResponse
	return &r, c.Execute(ctx, &alsc.ReserveRequest{TicketReverseTopRequest: &req}, &r)
}

// Refund calls alibaba.alsc.merchant.ext.ticket.refund once.
func (c *Client) Refund(ctx context.Context, req alsc.RefundRequest) (*alsc.RefundResponse, error) {
	var r alsc.RefundResponse
	return &r, c.Execute(ctx, &req, &r)
}

// RetryPolicy bounds the retries of Reverse.
type RetryPolicy struct {
	// MaxAttempts is the most calls made (default 8).
	MaxAttempts int
	// BaseDelay is the wait before the first retry; it doubles each time, with
	// jitter, up to MaxDelay (defaults 100 ms and 5 s).
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// OnRetry, if set, is called before each retry with the attempt that failed
	// and why.
	OnRetry func(attempt int, why error)
}

// NewRequestID returns a random request id (32 hex digits) for a new operation.
func NewRequestID() string {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// ErrNotDefinitive is returned by Reverse when the attempts ran out before a
// definitive answer.
var ErrNotDefinitive = errors.New("reversal: no definitive answer within the retry policy")

// RetryableError reports whether a call's error may pass on a retry of the same
// request: no answer at all (the request may or may not have been applied, and the
// idempotency key makes a retry safe), a transient platform failure (15), or the
// app's rate limit (7). Every other platform error is final.
func RetryableError(err error) bool {
	var te *TransportError
	if errors.As(err, &te) {
		return true
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code == 15 || pe.Code == 7
	}
	return false
}

// ReverseWithRetry sends a reversal and retries it with the same request id while the
// answer is retry=true, the answer was lost, or the failure is transient, with
// exponential backoff; it stops at the first definitive answer (success, or
// success=false with retry=false), which it returns. An empty RequestID is
// replaced by a fresh one, kept across every attempt.
func (c *Client) ReverseWithRetry(ctx context.Context, req alsc.TicketReverseTopRequest, p RetryPolicy) (*alsc.ReserveResponse, error) {
	if req.RequestID == "" {
		req.RequestID = NewRequestID()
	}
	return Retry(ctx, p, func(ctx context.Context) (*alsc.ReserveResponse, bool, error) {
		r, err := c.Reserve(ctx, req)
		if err != nil {
			return nil, false, err
		}
		return r, r.Result.Retry && !r.Result.Success, nil
	})
}

// Retry runs call until it gives a definitive answer, under policy p. call returns
// the answer, whether that answer asks for a retry, and an error; errors for which
// RetryableError holds are retried, others end the loop.
func Retry[T any](ctx context.Context, p RetryPolicy, call func(context.Context) (T, bool, error)) (T, error) {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 100 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 5 * time.Second
	}
	var zero, last T
	// MaxDelay caps every wait, the first included.
	delay := min(p.BaseDelay, p.MaxDelay)
	for attempt := 1; ; attempt++ {
		r, again, err := call(ctx)
		var why error
		switch {
		case err == nil && !again:
			return r, nil
		case err == nil:
			last, why = r, errors.New("answer says retry=true")
		case RetryableError(err):
			why = err
		default:
			return zero, err
		}
		if attempt >= p.MaxAttempts {
			if err != nil {
				return last, errors.Join(ErrNotDefinitive, err)
			}
			return last, ErrNotDefinitive
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, why)
		}
		// Full jitter: spread the retries of many clients that failed together.
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(wait):
		}
		delay = min(delay*2, p.MaxDelay)
	}
}
