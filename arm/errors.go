package arm

import (
	"encoding/json"
	"net/http"

	"github.com/goldsmith-dev/goldsmith/resource"
)

// envelope is the shape an error answer takes.
type envelope int

const (
	// wrapped is ARM's {"error":{code,message,target,details}}: every
	// resource provider, and AIB from 2021-10-01 on.
	wrapped envelope = iota
	// flat2018 is AIB 2018-02-01-preview's ApiError: unwrapped, with
	// innererror{exceptiontype, errordetail}.
	flat2018
	// flat is AIB 2019-02-01-preview to 2020-02-14: unwrapped, with
	// innerError{exceptionType, errorDetail}.
	flat
)

// errorBody is one ARM error (CloudErrorBody / ApiError).
type errorBody struct {
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Target  string      `json:"target,omitempty"`
	Details []errorBody `json:"details,omitempty"`
}

func toBody(e *resource.Error) errorBody {
	b := errorBody{Code: e.Code, Message: e.Message, Target: e.Target}
	for i := range e.Details {
		b.Details = append(b.Details, toBody(&e.Details[i]))
	}
	return b
}

func statusOf(k resource.Kind) int {
	switch k {
	case resource.KindNotFound:
		return http.StatusNotFound
	case resource.KindConflict:
		return http.StatusConflict
	case resource.KindNotAllowed:
		return http.StatusMethodNotAllowed
	case resource.KindInternal:
		return http.StatusInternalServerError
	case resource.KindForbidden:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// encodeError renders an error in a given envelope.
func encodeError(e *resource.Error, env envelope) []byte {
	b := toBody(e)
	var v any
	switch env {
	case flat2018:
		v = struct {
			errorBody
			InnerError *struct {
				ExceptionType string `json:"exceptiontype"`
				ErrorDetail   string `json:"errordetail"`
			} `json:"innererror,omitempty"`
		}{errorBody: b}
	case flat:
		v = struct {
			errorBody
			InnerError *struct {
				ExceptionType string `json:"exceptionType"`
				ErrorDetail   string `json:"errorDetail"`
			} `json:"innerError,omitempty"`
		}{errorBody: b}
	default:
		v = map[string]any{"error": b}
	}
	data, _ := json.Marshal(v)
	return data
}

// writeError answers with an ARM error.
func writeError(w http.ResponseWriter, err error, env envelope) {
	e := resource.AsError(err)
	status := statusOf(e.Kind)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-error-code", e.Code)
	w.WriteHeader(status)
	_, _ = w.Write(encodeError(e, env))
}

func errorf(kind resource.Kind, code, format string, args ...any) *resource.Error {
	return &resource.Error{Kind: kind, Code: code, Message: sprintf(format, args...)}
}
