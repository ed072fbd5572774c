package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/spectest"
)

// closedPort returns host:port where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// assertRedacted fails if msg shows any part of the signed request or of the
// URL's user part, or does not name the endpoint.
func assertRedacted(t *testing.T, msg, endpoint string, secrets ...string) {
	t.Helper()
	if m := spectest.SignedRequestParts.FindString(msg); m != "" {
		t.Errorf("error shows %q of the signed request: %s", m, msg)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("error shows %q: %s", s, msg)
		}
	}
	if !strings.Contains(msg, `"`+endpoint+`"`) {
		t.Errorf("error does not name the endpoint %s: %s", endpoint, msg)
	}
}

// TestTransportErrorHidesSignedURL: a call that gets no answer names the
// endpoint (scheme, host, path) and the cause, never the signed query nor a
// password of the URL, and still unwraps to what net/http reported.
func TestTransportErrorHidesSignedURL(t *testing.T) {
	const key, secret = "app-key-7f3a", "secret-9c1e44d0"
	addr := closedPort(t)
	endpoint := "http://" + addr + "/router/rest"
	for _, u := range []string{
		endpoint,
		"http://" + addr,                      // the path is added
		"http://" + addr + "/router/rest?x=1", // a query of the caller's own
		"http://pos:hunter2@" + addr + "/router/rest", // a user part
	} {
		t.Run(u, func(t *testing.T) {
			c := client.New(u, key, secret)
			_, err := c.TimeGet(context.Background())
			var te *client.TransportError
			if !errors.As(err, &te) {
				t.Fatalf("TimeGet: %v, want a *TransportError", err)
			}
			assertRedacted(t, err.Error(), endpoint, key, secret, "hunter2", "pos@", "x=1")
			if !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("error does not name the cause: %v", err)
			}
			var ue *url.Error
			var oe *net.OpError
			if !errors.As(err, &ue) || ue.Op != "Post" || !errors.As(err, &oe) || oe.Op != "dial" {
				t.Errorf("error %v does not unwrap to *url.Error and the dial's *net.OpError", err)
			}
		})
	}
}

// TestTimeoutErrorHidesSignedURL: a deadline still reads as one
// (errors.Is, net.Error.Timeout) once the URL is gone from the error.
func TestTimeoutErrorHidesSignedURL(t *testing.T) {
	const key, secret = "app-key-7f3a", "secret-9c1e44d0"
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := client.New(srv.URL+"/router/rest", key, secret).TimeGet(ctx)
	assertRedacted(t, err.Error(), srv.URL+"/router/rest", key, secret)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a net.Error that timed out", err)
	}

	// The HTTP client's own timeout, too.
	hc := &http.Client{Timeout: 50 * time.Millisecond}
	_, err = client.New(srv.URL+"/router/rest", key, secret, client.WithHTTPClient(hc)).TimeGet(context.Background())
	assertRedacted(t, err.Error(), srv.URL+"/router/rest", key, secret)
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a net.Error that timed out", err)
	}
}

// TestInvalidURLError: a gateway URL that does not parse fails every call with
// an error that says so without echoing the URL's user part.
func TestInvalidURLError(t *testing.T) {
	c := client.New("http://pos:hunter2@127.0.0.1:port/router/rest", "k", "s")
	_, err := c.TimeGet(context.Background())
	if err == nil || !strings.Contains(err.Error(), "invalid gateway URL") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("TimeGet with an invalid URL: %v", err)
	}
	var te *client.TransportError
	if errors.As(err, &te) || client.RetryableError(err) {
		t.Fatalf("an invalid URL is not a lost answer worth a retry: %v", err)
	}
}
