package spectest

import "regexp"

// SignedRequestParts matches what a signed request carries that no error message
// or printed line may show (SPEC §5.1): a query string, the public parameters of
// the signature, and the GMT+8 timestamp in plain or URL-encoded form. Together
// with the app key and secret they make a request anyone could replay while its
// timestamp is accepted.
var SignedRequestParts = regexp.MustCompile(`sign=|app_key=|timestamp=|sign_method=|\?\w*=|\d{4}-\d\d-\d\d|%3A`)
