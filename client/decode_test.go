package client_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/top"
)

type countingObserver struct{ n atomic.Int64 }

func (o *countingObserver) Observe(string, string, time.Duration) { o.n.Add(1) }

// TestOversizedRequestIsFinal: a request the gateway refuses as too large is a
// platform error (41), not a lost answer: the SDK does not retry it.
func TestOversizedRequestIsFinal(t *testing.T) {
	var o countingObserver
	e := newEnv(t, gateway.Config{MaxBodyBytes: 512, Observer: &o})
	ctx := context.Background()
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			o.n.Store(0)
			c := e.client(client.WithFormat(f.format, f.simplify))
			_, err := c.ReverseWithRetry(ctx, alsc.TicketReverseTopRequest{TicketID: "1", TicketUseTransID: strings.Repeat("9", 600)}, client.RetryPolicy{BaseDelay: time.Microsecond})
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Code != 41 || ce.RequestID == "" {
				t.Fatalf("Reverse of an oversized request: %v (%T), want *client.Error 41", err, err)
			}
			if client.RetryableError(err) || errors.Is(err, client.ErrNotDefinitive) {
				t.Fatalf("a 41 treated as retryable: %v", err)
			}
			if n := o.n.Load(); n != 1 {
				t.Fatalf("%d calls reached the gateway, want 1", n)
			}
		})
	}
}

// TestDecode: answers decoded whatever format they come in, and malformed answers
// reported as transport errors.
func TestDecode(t *testing.T) {
	const xmlErr = `<?xml version="1.0" encoding="utf-8" ?><error_response><code>41</code><msg>Invalid Arguments</msg><sub_msg>the request body is larger than 100 bytes</sub_msg><request_id>r1</request_id></error_response>`
	const jsonErr = `{"error_response":{"code":25,"msg":"Invalid Signature","request_id":"r2"}}`
	tests := []struct {
		name     string
		body     string
		format   top.Format
		simplify bool
		code     int // 0: success expected; -1: transport error expected
		time     string
	}{
		{"xml error to an xml call", xmlErr, top.XML, false, 41, ""},
		{"xml error to a json call", xmlErr, top.JSON, false, 41, ""},
		{"xml error to a simplified json call", "\n" + xmlErr, top.JSON, true, 41, ""},
		{"json error to a json call", jsonErr, top.JSON, false, 25, ""},
		{"json error to a simplified call", jsonErr, top.JSON, true, 25, ""},
		{"json error to an xml call", jsonErr, top.XML, false, 25, ""},
		{"json success", `{"time_get_response":{"time":"2024-05-01 12:00:00","request_id":"r"}}`, top.JSON, false, 0, "2024-05-01 12:00:00"},
		{"simplified success", `{"time":"2024-05-01 12:00:00","request_id":"r"}`, top.JSON, true, 0, "2024-05-01 12:00:00"},
		{"xml success", `<?xml version="1.0" encoding="utf-8" ?><time_get_response><time>2024-05-01 12:00:00</time><request_id>r</request_id></time_get_response>`, top.XML, false, 0, "2024-05-01 12:00:00"},
		{"wrong wrapper", `{"other_response":{"request_id":"r"}}`, top.JSON, false, -1, ""},
		{"not json", `{"time_get_response":`, top.JSON, false, -1, ""},
		{"truncated html page", `<html><body>502 Bad Gateway`, top.XML, false, -1, ""},
		{"well-formed xhtml page", `<html><body><time>x</time><request_id>r</request_id></body></html>`, top.XML, false, -1, ""},
		{"xhtml page to a json call", `<html><body>502</body></html>`, top.JSON, false, -1, ""},
		{"another method's xml wrapper", `<?xml version="1.0" encoding="utf-8" ?><other_response><request_id>r</request_id></other_response>`, top.XML, false, -1, ""},
		{"truncated xml success", `<?xml version="1.0" encoding="utf-8" ?><time_get_response><time>2024`, top.XML, false, -1, ""},
		{"json success of the wrong type", `{"time_get_response":{"time":12,"request_id":"r"}}`, top.JSON, false, -1, ""},
		{"json proxy page to a simplified call", `{"message":"Bad Gateway"}`, top.JSON, true, -1, ""},
		{"json proxy page to a json call", `{"message":"Bad Gateway"}`, top.JSON, false, -1, ""},
		{"simplified success of the wrong type", `{"time":12,"request_id":"r"}`, top.JSON, true, -1, ""},
		{"empty", ``, top.JSON, false, -1, ""},
		{"empty xml call", ``, top.XML, false, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r alsc.TimeGetResponse
			err := client.Decode([]byte(tt.body), tt.format, tt.simplify, alsc.MethodTimeGet, &r)
			switch tt.code {
			case 0:
				if err != nil || r.Time != tt.time || r.RequestID != "r" {
					t.Fatalf("Decode: %+v, %v", r, err)
				}
			case -1:
				var te *client.TransportError
				if !errors.As(err, &te) {
					t.Fatalf("Decode: %v (%T), want *client.TransportError", err, err)
				}
			default:
				var ce *client.Error
				if !errors.As(err, &ce) || ce.Code != tt.code || ce.Msg == "" || ce.RequestID == "" {
					t.Fatalf("Decode: %v (%T), want *client.Error %d", err, err, tt.code)
				}
			}
		})
	}
}
