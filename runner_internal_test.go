package daodian

import (
	"reflect"
	"testing"
)

// decodeDecision reads back what encodeDecision and the PostgreSQL functions
// record, by its one-parse way for answers and its general way for the rest.
func TestDecodeDecision(t *testing.T) {
	type answer struct {
		Success bool   `json:"success"`
		Code    string `json:"error_code,omitempty"`
	}
	refusal := &Refusal{SubCode: SubTicketNotFound, SubMsg: "凭证不存在"}
	check := func(record []byte, want decision[answer]) {
		t.Helper()
		got, err := decodeDecision[answer](record)
		if err != nil || got.answer != want.answer || !reflect.DeepEqual(got.refusal, want.refusal) {
			t.Errorf("%s: decoded %+v (refusal %+v), %v; want %+v (refusal %+v)", record, got.answer, got.refusal, err, want.answer, want.refusal)
		}
	}
	for _, d := range []decision[answer]{
		{answer: answer{Success: true}},
		{answer: answer{Code: "x"}},
		{refusal: refusal},
	} {
		b, err := encodeDecision(d)
		if err != nil {
			t.Fatal(err)
		}
		check(b, d)
	}
	for _, tc := range []struct {
		record  string
		answer  answer
		refusal *Refusal
	}{
		// As the PostgreSQL functions write a refusal (daodian_refusal).
		{record: `{"refusal":{"sub_code":"isv.ticket-not-found","sub_msg":"凭证不存在"}}`, refusal: refusal},
		// Shapes neither writer produces take the general way and still read right.
		{record: ` {"refusal": {"sub_code":"isv.ticket-not-found","sub_msg":"凭证不存在"}}`, refusal: refusal},
		{record: `{ "refusal":{"sub_code":"isv.ticket-not-found","sub_msg":"凭证不存在"}}`, refusal: refusal},
		{record: `{"refusal":null,"success":true}`, answer: answer{Success: true}},
		{record: "\n{\"success\":true}", answer: answer{Success: true}},
	} {
		check([]byte(tc.record), decision[answer]{answer: tc.answer, refusal: tc.refusal})
	}
	for _, bad := range []string{``, `{`, `{"success":`, `{"refusal":`, `[]`} {
		if _, err := decodeDecision[answer]([]byte(bad)); err == nil {
			t.Errorf("%q decoded without an error", bad)
		}
	}
}
