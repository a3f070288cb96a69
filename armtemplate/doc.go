// Package armtemplate evaluates Azure Resource Manager (ARM) deployment
// templates offline, so goldsmith can accept Azure VM Image Builder templates
// that users wrap in ARM deployments.
//
// It implements the ARM template expression language (a tokenizer, a parser
// and an evaluator), parameters with their validation rules, variables
// (lazily, with cycle detection), resource conditions, copy loops, nested
// child resources and nested deployments with inline templates. What only a
// live deployment knows - reference(), references(), list*() such as
// listKeys(), pickZones(), providers(), managementGroup(), deployer(), and
// deployment().properties.templateLink - evaluates to an Unknown instead of
// being guessed, and so does everything computed from it; the rest of the
// template is evaluated as usual; a resource or property name only a live
// deployment knows is the Unknown's String (see UnknownKey). A copy loop
// whose count is unknown cannot be expanded, which is an error.
//
// Evaluate returns every resource; ImageTemplates returns only the
// Microsoft.VirtualMachineImages/imageTemplates resources and does not
// evaluate the bodies of the other resources.
package armtemplate
