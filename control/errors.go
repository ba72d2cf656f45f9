package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Codes of refusals. A caller retries an Unavailable one; the others will
// not change by retrying.
const (
	CodeBadRequest  = "bad_request" // the message does not decode or is incomplete
	CodeRefused     = "refused"     // understood, and denied
	CodeNotFound    = "not_found"   // this node does not serve that
	CodeUnavailable = "unavailable" // could not be done now: try again
)

// Error is a refusal, as sent and as received.
type Error struct {
	Status  int    // HTTP status
	Code    string // one of the Code constants
	Message string
}

func (e *Error) Error() string { return e.Message }

// Temporary reports whether the same request may succeed later.
func (e *Error) Temporary() bool { return e.Code == CodeUnavailable }

// Refused is a permanent refusal.
func Refused(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeRefused, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a refusal of a message that does not decode.
func BadRequest(err error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: err.Error()}
}

// NotFound says this node does not serve a request.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Unavailable is a failure on this side (a disk write, a peer that did not
// answer): the caller may retry.
func Unavailable(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: err.Error()}
}

// IsPermanent reports whether err is a refusal that retrying will not
// change. Transport errors (no answer) are not.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && !e.Temporary()
}

// ErrorReply is the body of a refused request.
type ErrorReply struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// WriteJSON writes v as a handler's reply.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteError answers with err: an *Error as it is, anything else as
// Unavailable.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = Unavailable(err)
	}
	WriteJSON(w, e.Status, ErrorReply{Error: e.Message, Code: e.Code})
}

// replyError turns a refused reply into an *Error. A reply without a code
// (an older node) is permanent when the status is 4xx.
func replyError(status int, body ErrorReply, statusText string) *Error {
	msg, _, _ := strings.Cut(strings.TrimSpace(body.Error), "\n")
	if msg == "" {
		msg = "answered " + statusText
	}
	code := body.Code
	if code == "" {
		code = CodeUnavailable
		if status >= 400 && status < 500 {
			code = CodeRefused
		}
	}
	return &Error{Status: status, Code: code, Message: msg}
}
