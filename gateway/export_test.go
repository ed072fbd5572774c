package gateway

import "github.com/daodian/daodian/top"

// DecodeObject exposes the decoding of a JSON-object business parameter to the
// external tests (fuzz_test.go).
func DecodeObject(name, v string, dst any) *top.Error { return decodeObject(name, v, dst) }

// NewRequestID exposes the trace id generator to the external tests.
var NewRequestID = newRequestID
