package api

import (
	"fmt"
	"net/http"
	"strings"
)

// Error codes.
const (
	CodeInvalid      = "invalid"
	CodeNotFound     = "not_found"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeConflict     = "conflict"
	CodeTooLarge     = "too_large"
	CodeUnsupported  = "unsupported_media_type"
	CodeTimeout      = "timeout"
	CodeInternal     = "internal"
	CodeUnavailable  = "unavailable"
)

// Error is the API's error: every failed request answers
// {"error": {"code": ..., "message": ..., "field": ...}}.
type Error struct {
	// Status is the HTTP status; it travels as the response's status line.
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field is the path of the offending request field, e.g.
	// "gangs[0].count", when one field is to blame.
	Field string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" && !strings.Contains(e.Message, e.Field+":") {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// ErrorBody is the JSON envelope of an Error.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Invalid is a 422 naming the field at fault.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound is a 404.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Conflict is a 409.
func Conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// Forbidden is a 403.
func Forbidden(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: fmt.Sprintf(format, args...)}
}

// Unauthorized is a 401.
func Unauthorized(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: fmt.Sprintf(format, args...)}
}

// Internal is a 500.
func Internal(format string, args ...any) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: fmt.Sprintf(format, args...)}
}

// Unavailable is a 503.
func Unavailable(format string, args ...any) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: fmt.Sprintf(format, args...)}
}
