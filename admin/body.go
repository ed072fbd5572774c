package admin

import (
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// maxJSONBody bounds the JSON body of a request that creates or changes
// something: a few fields, far below it.
const maxJSONBody = 64 << 10

// readJSON decodes the request's JSON body into v, strictly, as the gateway
// decodes business objects: a member the endpoint does not take, or one given
// twice, is 400, never ignored or resolved. An empty body leaves v as it is
// (every field optional there is defaulted by the endpoint). On a fault it
// answers the error and returns false.
func readJSON(c *call, v any) bool {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			c.fail(&apiError{http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
				"send the body as JSON with Content-Type: application/json"})
			return false
		}
	}
	if c.r.ContentLength > maxJSONBody {
		c.fail(jsonTooLarge)
		return false
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxJSONBody))
	if err != nil {
		var mb *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mb):
			c.fail(jsonTooLarge)
		case errors.As(err, &ne) && ne.Timeout():
			c.fail(&apiError{http.StatusRequestTimeout, codeRequestTimeout, "the body did not arrive in time"})
		default:
			c.fail(errInvalid("the body could not be read"))
		}
		return false
	}
	if len(b) == 0 {
		return true
	}
	if err := json.Unmarshal(b, v, json.RejectUnknownMembers(true)); err != nil {
		c.fail(errInvalid("the body is not the JSON object this endpoint takes: " + jsonFault(err)))
		return false
	}
	return true
}

var jsonTooLarge = &apiError{http.StatusRequestEntityTooLarge, codePayloadTooLarge,
	"the body is larger than " + strconv.Itoa(maxJSONBody) + " bytes"}

// jsonFault says what is wrong with a body, naming a member by its JSON
// pointer (clipped) and echoing nothing else of the body.
func jsonFault(err error) string {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn) && errors.Is(err, jsontext.ErrDuplicateName):
		return "member " + strconv.Quote(clip(string(syn.JSONPointer))) + " is given more than once"
	case errors.As(err, &sem) && errors.Is(err, json.ErrUnknownName):
		return "unknown member " + strconv.Quote(clip(string(sem.JSONPointer)))
	case errors.As(err, &sem) && sem.JSONPointer != "":
		return "member " + strconv.Quote(clip(string(sem.JSONPointer))) + " has the wrong type"
	case errors.As(err, &sem):
		return "the body must be a JSON object"
	}
	return "the body is not valid JSON"
}
