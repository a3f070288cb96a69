package template

import (
	"fmt"
	"strings"
)

// AIB's provisioningError codes, and InvalidTemplate for everything else.
const (
	CodeInvalidTemplate           = "InvalidTemplate"
	CodeBadSourceType             = "BadSourceType"
	CodeBadPIRSource              = "BadPIRSource"
	CodeBadISOSource              = "BadISOSource"
	CodeBadManagedImageSource     = "BadManagedImageSource"
	CodeBadSharedImageVersionSrc  = "BadSharedImageVersionSource"
	CodeBadCustomizerType         = "BadCustomizerType"
	CodeUnsupportedCustomizerType = "UnsupportedCustomizerType"
	CodeNoCustomizerScript        = "NoCustomizerScript"
	CodeBadValidatorType          = "BadValidatorType"
	CodeUnsupportedValidatorType  = "UnsupportedValidatorType"
	CodeNoValidatorScript         = "NoValidatorScript"
	CodeBadDistributeType         = "BadDistributeType"
	CodeBadSharedImageDistribute  = "BadSharedImageDistribute"
	CodeBadStagingResourceGroup   = "BadStagingResourceGroup"
	CodeInvalidJSON               = "InvalidRequestContent"
	// ARM's own codes, for what ARM refuses before AIB sees the resource:
	// a malformed resource name, no location, an api-version AIB does not
	// have.
	CodeInvalidParameter     = "InvalidParameter"
	CodeLocationRequired     = "LocationRequired"
	CodeNoRegisteredProvider = "NoRegisteredProviderFound"
)

// Problem is one finding about a template: an error, or a warning that does
// not stop the template from being used.
type Problem struct {
	Code    string `json:"code"`
	Target  string `json:"target,omitempty"` // JSON path, e.g. properties.customize[2].scriptUri
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Target == "" {
		return p.Code + ": " + p.Message
	}
	return p.Code + " at " + p.Target + ": " + p.Message
}

// InvalidError is returned when a template has errors; it carries all of them.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the template has %d errors:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Code returns the first problem's code: the one AIB would report as
// provisioningError.provisioningErrorCode.
func (e *InvalidError) Code() string {
	if len(e.Problems) == 0 {
		return CodeInvalidTemplate
	}
	return e.Problems[0].Code
}

// report collects problems while a template is read.
type report struct {
	errs  []Problem
	warns []Problem
}

func (r *report) errorf(code, target, format string, args ...any) {
	r.errs = append(r.errs, Problem{Code: code, Target: target, Message: fmt.Sprintf(format, args...)})
}

func (r *report) warnf(target, format string, args ...any) {
	r.warns = append(r.warns, Problem{Code: "Warning", Target: target, Message: fmt.Sprintf(format, args...)})
}
