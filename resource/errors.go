package resource

import (
	"errors"
	"fmt"

	"github.com/goldsmith-dev/goldsmith/resourceid"
)

// Kind classifies an Error the way ARM's HTTP status does.
type Kind int

const (
	KindBadRequest Kind = iota // 400
	KindNotFound               // 404
	KindConflict               // 409
	KindNotAllowed             // 405
	KindInternal               // 500
	KindForbidden              // 403
)

// Error is a failure the API reports to the caller with an ARM error code.
type Error struct {
	Kind    Kind
	Code    string
	Target  string
	Message string
	Details []Error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newErr(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *Error {
	return newErr(KindBadRequest, code, format, args...)
}

func conflict(code, format string, args ...any) *Error {
	return newErr(KindConflict, code, format, args...)
}

// AsError returns err as an *Error, wrapping unknown errors as internal ones.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindInternal, Code: "InternalServerError", Message: err.Error()}
}

// IsNotFound tells whether err says a resource does not exist.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == KindNotFound
}

// notFound is ARM's answer for a missing resource.
func notFound(id resourceid.ID) *Error {
	if id.ResourceGroup != "" && len(id.Types) > 0 {
		return newErr(KindNotFound, "ResourceNotFound",
			"The Resource '%s/%s' under resource group '%s' was not found.", id.Type(), id.Name(), id.ResourceGroup)
	}
	if id.ResourceGroup != "" {
		return groupNotFound(id.ResourceGroup)
	}
	return newErr(KindNotFound, "ResourceNotFound", "The resource '%s' was not found.", id.String())
}

func groupNotFound(name string) *Error {
	return newErr(KindNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
}

func parentNotFound(parent resourceid.ID) *Error {
	return newErr(KindNotFound, "ParentResourceNotFound",
		"Can not perform requested operation on nested resource. Parent resource '%s' not found.", parent.Name())
}
