package gateway

import (
	"testing"

	"github.com/daodian/daodian/alsc"
)

// BenchmarkDecodeUseRequest measures the decoding of a typical use_request, the
// business object of the hottest method, with the SDKs' string quantity.
func BenchmarkDecodeUseRequest(b *testing.B) {
	const v = `{"ticket_code":"452949976644","shop_id":"demo-shop","quantity":"2","ticket_request_id":"pos-20261127-000123","gmt_biz":"2026-11-27 14:28:41"}`
	b.ReportAllocs()
	for b.Loop() {
		var r alsc.UseTopRequest
		if terr := decodeObject("use_request", v, &r); terr != nil {
			b.Fatal(terr)
		}
	}
}
