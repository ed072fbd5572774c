// Package top implements the mechanics of the TOP gateway protocol of Alibaba's open
// platform (SPEC §3): request parameter parsing, signatures, platform time, platform
// errors and the xml / json / simplified-json response encodings.
//
// It holds no business logic and serves no HTTP itself; the gateway package drives it.
// Everything here sits on the hot path of every request, so parsing, signing and encoding
// avoid reflection and keep allocations to a handful per request.
package top
