package armtemplate

import (
	"errors"
	"fmt"
	"strings"
)

// Unknown stands for a value only a live deployment knows: what reference(),
// list*() and the other deploy-time functions return, the link of a template
// deployed from a URI (deployment().properties.templateLink), and everything
// computed from them. Evaluation goes on around an unknown value, so the rest
// of the template is still checked; whoever reads the result decides what an
// unknown value means where it lands.
type Unknown struct {
	// Source names what produced the value, e.g. "reference()".
	Source string
}

// String renders the value as the ARM expression it stands for.
func (u Unknown) String() string { return "[" + u.Source + "]" }

// MarshalJSON refuses: an unknown value has no JSON form, and writing a
// stand-in would send a made-up value on to Azure or goldsmith.
func (u Unknown) MarshalJSON() ([]byte, error) {
	return nil, fmt.Errorf("the value of %s is known only when ARM deploys the template", u.Source)
}

// UnknownKey tells whether an evaluated property name stands for one only a
// live deployment knows (templates key userAssignedIdentities by
// "[reference(...).outputs.id.value]"): such a name is the Unknown's String,
// an expression in brackets, which no evaluated name is otherwise, since
// every expression was evaluated and only the rare escaped "[[" literal
// yields a leading bracket.
func UnknownKey(key string) (Unknown, bool) {
	if len(key) > 2 && key[0] == '[' && key[len(key)-1] == ']' {
		return Unknown{Source: key[1 : len(key)-1]}, true
	}
	return Unknown{}, false
}

// deployTimeFunctions answer from live Azure: resource state, secrets,
// zones, the deploying principal. Any function whose name starts with
// "list" (listKeys, listSecrets, listAccountSas, ...) is one too.
var deployTimeFunctions = map[string]bool{
	"reference": true, "references": true, "pickzones": true, "providers": true,
	"managementgroup": true, "managementgroupresourceid": true, "deployer": true,
}

func isDeployTime(lname string) bool {
	return deployTimeFunctions[lname] || strings.HasPrefix(lname, "list")
}

// containers build arrays and objects from their arguments, which may be
// unknown values: the result holds them where they are.
var containers = map[string]bool{"createarray": true, "array": true, "createobject": true}

// structural functions only arrange their arguments, so an unknown value
// nested inside an argument stays where it is rather than making the whole
// result unknown.
var structural = map[string]bool{
	"concat": true, "union": true, "length": true, "empty": true, "first": true, "last": true, "take": true, "skip": true,
}

// unknownArg returns the unknown value that decides a call's result: an
// argument that is unknown, or, unless fn only arranges its arguments, one
// nested inside an argument.
func unknownArg(lname string, args []any) (Unknown, bool) {
	if containers[lname] {
		if lname == "createobject" {
			for i := 0; i < len(args); i += 2 { // keys
				if u, ok := args[i].(Unknown); ok {
					return u, true
				}
			}
		}
		return Unknown{}, false
	}
	for _, a := range args {
		if u, ok := a.(Unknown); ok {
			return u, true
		}
	}
	if structural[lname] {
		return Unknown{}, false
	}
	for _, a := range args {
		if u, ok := FindUnknown(a); ok {
			return u, true
		}
	}
	return Unknown{}, false
}

// FindUnknown returns the first unknown value inside v, depth first (object
// keys in sorted order).
func FindUnknown(v any) (Unknown, bool) {
	switch v := v.(type) {
	case Unknown:
		return v, true
	case []any:
		for _, e := range v {
			if u, ok := FindUnknown(e); ok {
				return u, true
			}
		}
	case map[string]any:
		for _, e := range sortedEntries(v) {
			if u, ok := FindUnknown(e.val); ok {
				return u, true
			}
		}
	}
	return Unknown{}, false
}

// errUnknownArg stops a lazy function (if, and, or, coalesce) at an unknown
// argument: what it returns depends on that value.
var errUnknownArg = errors.New("unknown argument")
