package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
	"github.com/goldsmith-dev/goldsmith/template"
)

func newTemplateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "template",
		Short: "Work with AIB image templates",
	}
	cmd.AddCommand(newValidateCommand())
	cmd.AddCommand(newTemplateClientCommands()...)
	return cmd
}

// readParameters reads an ARM parameter file (--parameters); "" gives none.
func readParameters(path string) (map[string]any, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError("read parameters: %v", err)
	}
	params, err := armtemplate.ParseParameterFile(data)
	if err != nil {
		return nil, usageError("parameters file %s: %v", path, err)
	}
	return params, nil
}

type validateFlags struct {
	parameters string
	apiVersion string
	output     string
	location   string
}

func newValidateCommand() *cobra.Command {
	var f validateFlags
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check image templates offline and report every mistake at once",
		Long: `Validate reads image templates in any form users keep them: the resource you
PUT to AIB, a bare properties object, or an ARM deployment template holding
one or more Microsoft.VirtualMachineImages/imageTemplates resources (its
expressions are evaluated with --parameters). Each problem is reported with
AIB's provisioningError code and the JSON path it is at. A value only a live
ARM deployment knows (reference(), listKeys() and the like) is a warning at
its path, not an error: the field could not be checked offline. The server
gives every template the verdict validate gives, save for live state.

Exit status: 0 when every template is valid, 1 when any is not, 2 for usage
errors. With --output json, a valid single template is printed in canonical
form; several are printed as an array of {file, resource, template}; an
invalid run prints an ARM error envelope.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runValidate(cmd.OutOrStdout(), args, f)
		},
	}
	cmd.Flags().StringVarP(&f.parameters, "parameters", "p", "", "ARM parameter file for deployment templates")
	cmd.Flags().StringVar(&f.apiVersion, "api-version", "", "apiVersion for templates that carry none")
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringVar(&f.location, "location", "", "region for bare properties documents and resourceGroup().location (default "+template.DefaultLocation+")")
	return cmd
}

// fileResult is what validate found in one file.
type fileResult struct {
	file  string
	found []template.Found
	err   error // the file could not be read or parsed at all
}

func runValidate(out io.Writer, files []string, f validateFlags) error {
	if f.output != "table" && f.output != "json" {
		return usageError("--output must be table or json, not %q", f.output)
	}
	if f.apiVersion != "" {
		if _, ok := template.LookupAPIVersion(f.apiVersion); !ok {
			return usageError("--api-version %q is not supported; supported versions are %s", f.apiVersion, strings.Join(template.APIVersions(), ", "))
		}
	}
	opts := template.LoadOptions{Options: template.Options{APIVersion: f.apiVersion}, Location: f.location}
	params, err := readParameters(f.parameters)
	if err != nil {
		return err
	}
	opts.Parameters = params
	results := make([]fileResult, 0, len(files))
	for _, name := range files {
		results = append(results, validateFile(name, opts))
	}
	if f.output == "json" {
		err = printValidateJSON(out, results)
	} else {
		err = printValidateTable(out, results)
	}
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.err != nil {
			return &exitError{code: exitFailure}
		}
		for _, fd := range r.found {
			if fd.Err != nil {
				return &exitError{code: exitFailure}
			}
		}
	}
	return nil
}

func validateFile(name string, opts template.LoadOptions) fileResult {
	if strings.EqualFold(filepath.Ext(name), ".bicep") {
		return fileResult{file: name, err: errors.New("Bicep files are not read directly: compile it to JSON first with `az bicep build --file " + name + "`")}
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return fileResult{file: name, err: err}
	}
	found, err := template.Load(data, opts)
	return fileResult{file: name, found: found, err: err}
}

// problemsOf returns the problems behind an error: the template's problems,
// or one problem describing a file that could not be read.
func problemsOf(err error) []template.Problem {
	var inv *template.InvalidError
	var syn *template.SyntaxError
	switch {
	case errors.As(err, &inv):
		return inv.Problems
	case errors.As(err, &syn):
		return []template.Problem{{Code: template.CodeInvalidJSON, Message: "malformed JSON at " + syn.Error()}}
	default:
		return []template.Problem{{Code: template.CodeInvalidTemplate, Message: err.Error()}}
	}
}

func printValidateTable(out io.Writer, results []fileResult) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, r := range results {
		if r.err != nil {
			ps := problemsOf(r.err)
			fmt.Fprintf(tw, "%s: invalid\n", r.file)
			writeProblems(tw, ps)
			continue
		}
		for _, fd := range r.found {
			label := r.file
			if fd.Resource != "" {
				label += " " + fd.Resource
			}
			if fd.Err != nil {
				ps := problemsOf(fd.Err)
				fmt.Fprintf(tw, "%s: invalid (%d %s)\n", label, len(ps), plural(len(ps), "error", "errors"))
				writeProblems(tw, ps)
			} else {
				t := fd.Template
				fmt.Fprintf(tw, "%s: valid (apiVersion %s, source %s, %d %s, %d distribute %s)\n", label, t.APIVersion, t.Properties.Source.Type,
					len(t.Properties.Customize), plural(len(t.Properties.Customize), "customizer", "customizers"),
					len(t.Properties.Distribute), plural(len(t.Properties.Distribute), "target", "targets"))
			}
			for _, w := range fd.Warnings {
				fmt.Fprintf(tw, "  warning\t%s\t%s\n", w.Target, w.Message)
			}
		}
	}
	return tw.Flush()
}

func writeProblems(w io.Writer, ps []template.Problem) {
	for _, p := range ps {
		target := p.Target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", p.Code, target, p.Message)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

type armErrorDetail struct {
	Code    string `json:"code"`
	Target  string `json:"target,omitempty"`
	Message string `json:"message"`
}

type armError struct {
	Error struct {
		Code    string           `json:"code"`
		Message string           `json:"message"`
		Details []armErrorDetail `json:"details,omitempty"`
	} `json:"error"`
}

type validJSON struct {
	File     string             `json:"file"`
	Resource string             `json:"resource,omitempty"`
	Template *template.Template `json:"template"`
}

func printValidateJSON(out io.Writer, results []fileResult) error {
	var env armError
	var valid []validJSON
	invalidCount := 0
	for _, r := range results {
		multi := len(results) > 1
		add := func(resource string, ps []template.Problem) {
			invalidCount++
			for _, p := range ps {
				msg := p.Message
				if multi {
					msg = r.file + ": " + msg
				}
				env.Error.Details = append(env.Error.Details, armErrorDetail{Code: p.Code, Target: p.Target, Message: msg})
			}
		}
		if r.err != nil {
			add("", problemsOf(r.err))
			continue
		}
		for _, fd := range r.found {
			if fd.Err != nil {
				add(fd.Resource, problemsOf(fd.Err))
				continue
			}
			valid = append(valid, validJSON{File: r.file, Resource: fd.Resource, Template: fd.Template})
		}
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if invalidCount > 0 {
		env.Error.Code = env.Error.Details[0].Code
		if len(env.Error.Details) > 1 {
			env.Error.Code = template.CodeInvalidTemplate
		}
		env.Error.Message = fmt.Sprintf("%d %s found in %d %s; see details",
			len(env.Error.Details), plural(len(env.Error.Details), "error", "errors"), invalidCount, plural(invalidCount, "template", "templates"))
		if len(env.Error.Details) == 1 {
			env.Error.Message = env.Error.Details[0].Message
		}
		return enc.Encode(env)
	}
	if len(valid) == 1 {
		return enc.Encode(valid[0].Template)
	}
	return enc.Encode(valid)
}
