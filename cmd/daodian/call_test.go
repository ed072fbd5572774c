package main

import (
	"net"
	"strings"
	"testing"

	"github.com/daodian/daodian/internal/spectest"
)

// TestGatewayDownHidesSignedURL: with nothing listening, `call` and `reverse`
// (on every retry and at the end) name the endpoint and the cause, never the
// signed query, the app key or secret, nor the password of a --url's user part.
func TestGatewayDownHidesSignedURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const key, secret = "app-key-5b2d", "secret-0e77c1f9a4"
	endpoint := `"http://` + addr + `/router/rest"`
	for _, u := range []string{"http://" + addr + "/router/rest", "http://pos:hunter2@" + addr + "/router/rest"} {
		envv := map[string]string{"DAODIAN_URL": u, "DAODIAN_APP_KEY": key, "DAODIAN_APP_SECRET": secret}
		for _, tc := range []struct {
			args     []string
			exit     int
			messages int // lines on stderr that name the endpoint
		}{
			{[]string{"call", "taobao.time.get"}, 1, 1},
			{[]string{"call", "alibaba.alsc.daodian.ticket.consult", `consult_request={"request_id":"c1","shop_id":"s1","ticket_code":"123456789012"}`, "--sign-method", "md5", "--format", "xml"}, 1, 1},
			{[]string{"reverse", "--ticket-id", "2100000000000000001", "--request-id", "r-down", "--max-attempts", "3"}, 3, 3},
		} {
			code, out, errs := cli(t, envv, tc.args...)
			name := u + " " + strings.Join(tc.args, " ")
			if code != tc.exit || out != "" {
				t.Errorf("%s: exit %d, stdout %q; want exit %d and nothing on stdout", name, code, out, tc.exit)
			}
			if m := spectest.SignedRequestParts.FindString(errs); m != "" {
				t.Errorf("%s: stderr shows %q of the signed request:\n%s", name, m, errs)
			}
			for _, s := range []string{key, secret, "hunter2", "pos@", "pos:"} {
				if strings.Contains(errs, s) {
					t.Errorf("%s: stderr shows %q:\n%s", name, s, errs)
				}
			}
			if n := strings.Count(errs, endpoint); n != tc.messages || !strings.Contains(errs, "connection refused") || !strings.Contains(errs, "--url") {
				t.Errorf("%s: stderr names the endpoint %s %d times, want %d, with the cause and what to check:\n%s", name, endpoint, n, tc.messages, errs)
			}
		}
	}
}
