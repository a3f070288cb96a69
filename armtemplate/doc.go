// Package armtemplate evaluates Azure Resource Manager (ARM) deployment
// templates offline, so goldsmith can accept Azure VM Image Builder templates
// that users wrap in ARM deployments.
//
// It implements the ARM template expression language (a tokenizer, a parser
// and an evaluator), parameters with their validation rules, variables
// (lazily, with cycle detection), resource conditions, copy loops, nested
// child resources and nested deployments with inline templates. Functions
// that need a live Azure deployment, such as reference() and list*(), are
// reported as clear errors instead of being guessed.
//
// Evaluate returns every resource; ImageTemplates returns only the
// Microsoft.VirtualMachineImages/imageTemplates resources and does not
// evaluate the bodies of the other resources, so an unrelated reference()
// elsewhere in the template does not stop an image build.
package armtemplate
