package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/arm"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/template"
)

func templateRow(t arm.ImageTemplate) []string {
	var run resource.LastRunStatus
	if t.Properties.LastRunStatus != nil {
		run = *t.Properties.LastRunStatus
	}
	msg := run.Message
	if e := t.Properties.ProvisioningError; e != nil && e.Message != "" {
		msg = e.Message
	}
	if len(msg) > 80 {
		msg = msg[:77] + "..."
	}
	return []string{t.Name, groupOf(t.ID), t.Properties.ProvisioningState, run.RunState, run.RunSubState, msg}
}

// lastRun is the template's lastRunStatus, zero when it has not run.
func lastRun(t arm.ImageTemplate) resource.LastRunStatus {
	if t.Properties.LastRunStatus == nil {
		return resource.LastRunStatus{}
	}
	return *t.Properties.LastRunStatus
}

var templateHeader = []string{"NAME", "RESOURCE GROUP", "PROVISIONING", "LAST RUN", "PHASE", "MESSAGE"}

func printTemplates(out io.Writer, format string, ts ...arm.ImageTemplate) error {
	if format == "json" {
		if len(ts) == 1 {
			return printJSON(out, ts[0])
		}
		return printJSON(out, ts)
	}
	rows := make([][]string, len(ts))
	for i, t := range ts {
		rows[i] = templateRow(t)
	}
	return printTable(out, templateHeader, rows)
}

// templateDocs turns a template file into (name, apiVersion, body) to PUT:
// an image template resource, a bare properties object, or an ARM
// deployment template (evaluated with parameters).
type templateDoc struct {
	name, apiVersion string
	body             map[string]any
}

// templateDocs finds the image templates a file holds (template.Documents)
// and names each as the server will know it.
func templateDocs(data []byte, params map[string]any, sub, group, location, name, apiVersion string) ([]templateDoc, error) {
	docs, err := template.Documents(data, template.LoadOptions{Parameters: params, SubscriptionID: sub, ResourceGroup: group, Location: location})
	if err != nil {
		return nil, err
	}
	pick := func(def, flag string) string {
		if flag != "" {
			return flag
		}
		return def
	}
	out := make([]templateDoc, 0, len(docs))
	for _, d := range docs {
		switch d.Form {
		case template.FormDeployment:
			n := d.Name[strings.LastIndex(d.Name, "/")+1:]
			if name != "" && len(docs) == 1 {
				n = name
			}
			out = append(out, templateDoc{name: n, apiVersion: pick(d.APIVersion, apiVersion), body: d.Body})
		case template.FormProperties:
			if name == "" {
				return nil, usageError("a bare properties file needs --name")
			}
			out = append(out, templateDoc{name: name, apiVersion: pick(template.LatestAPIVersion(), apiVersion), body: d.Body})
		default:
			n := pick(d.Name, name)
			if n == "" {
				return nil, usageError("the template has no name: give --name")
			}
			if loc, _ := d.Body["location"].(string); loc == "" {
				d.Body["location"] = location
			}
			out = append(out, templateDoc{name: n, apiVersion: pick(pick(template.LatestAPIVersion(), d.APIVersion), apiVersion), body: d.Body})
		}
	}
	return out, nil
}

// newTemplateClientCommands are the server-side `goldsmith template`
// subcommands: create, run, show, ls, logs, cancel, delete.
func newTemplateClientCommands() []*cobra.Command {
	return []*cobra.Command{newTemplateCreateCommand(), newTemplateRunCommand(), newTemplateShowCommand(), newTemplateListCommand(),
		newTemplateLogsCommand(), newTemplateCancelCommand(), newTemplateDeleteCommand()}
}

func newTemplateCreateCommand() *cobra.Command {
	var f clientFlags
	var file, params, name, apiVersion, location string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create -f FILE -g GROUP",
		Short: "Submit an image template to a goldsmith server",
		Long: `Create submits an image template (the resource you PUT to AIB, a bare
properties object with --name, or an ARM deployment template evaluated with
--parameters) and waits for its submission: validation and the download of
every script and file into its staging resource group. Exit status 1 when the
submission fails; the template is kept, Failed, with AIB's provisioningError.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			if file == "" {
				return usageError("-f FILE is required")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return usageError("read %s: %v", file, err)
			}
			pv, err := readParameters(params)
			if err != nil {
				return err
			}
			docs, err := templateDocs(data, pv, f.subscription, f.group, location, name, apiVersion)
			if err != nil {
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return clientFailure(fmt.Errorf("%s: %w", file, err))
			}
			var results []arm.ImageTemplate
			failed := false
			for _, d := range docs {
				t, opURL, err := c.PutTemplate(cmd.Context(), f.group, d.name, d.apiVersion, d.body)
				if err != nil {
					return clientFailure(fmt.Errorf("submit %s: %w", d.name, err))
				}
				if !noWait {
					if _, err := c.Wait(cmd.Context(), opURL, nil); err != nil {
						return clientFailure(err)
					}
					if t, err = c.GetTemplate(cmd.Context(), f.group, d.name); err != nil {
						return clientFailure(err)
					}
				}
				failed = failed || t.Properties.ProvisioningState == resource.StateFailed
				results = append(results, t)
			}
			if err := printTemplates(cmd.OutOrStdout(), f.output, results...); err != nil {
				return err
			}
			if failed {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	addClientFlags(cmd, &f, true)
	fl := cmd.Flags()
	fl.StringVarP(&file, "file", "f", "", "template file")
	fl.StringVarP(&params, "parameters", "p", "", "ARM parameter file for deployment templates")
	fl.StringVar(&name, "name", "", "template name (default: the file's name property)")
	fl.StringVar(&apiVersion, "api-version", "", "imageTemplates api-version (default: the file's apiVersion, else the latest)")
	fl.StringVarP(&location, "location", "l", template.DefaultLocation, "region for templates that name none")
	fl.BoolVar(&noWait, "no-wait", false, "do not wait for the submission to finish")
	return cmd
}

func newTemplateRunCommand() *cobra.Command {
	var f clientFlags
	var wait bool
	cmd := &cobra.Command{
		Use:   "run NAME -g GROUP",
		Short: "Start a run of a template",
		Long: `Run starts building the image. With --wait it follows the run's phases
(on stderr) until it ends, prints lastRunStatus and the runOutputs, and exits
with status 1 unless the run Succeeded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			opURL, err := c.Run(ctx, f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			if !wait {
				fmt.Fprintf(cmd.OutOrStdout(), "Run of %s started; follow it with: goldsmith template logs %s -g %s -f\n", args[0], args[0], f.group)
				return nil
			}
			last := ""
			_, err = c.Wait(ctx, opURL, func(arm.Operation) {
				t, err := c.GetTemplate(ctx, f.group, args[0])
				if err != nil {
					return
				}
				if ph := lastRun(t).RunSubState; ph != last {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s  %s\n", time.Now().Format("15:04:05"), ph)
					last = ph
				}
			})
			if err != nil {
				return clientFailure(err)
			}
			t, err := c.GetTemplate(ctx, f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			outs, _ := c.RunOutputs(ctx, f.group, args[0])
			if f.output == "json" {
				if err := printJSON(cmd.OutOrStdout(), map[string]any{"template": t, "runOutputs": outs}); err != nil {
					return err
				}
			} else {
				if err := printTemplates(cmd.OutOrStdout(), "table", t); err != nil {
					return err
				}
				if len(outs) > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
					rows := make([][]string, len(outs))
					for i, o := range outs {
						art := o.Properties.ArtifactID
						if art == "" {
							art = o.Properties.ArtifactURI
						}
						rows[i] = []string{o.Name, o.Properties.ProvisioningState, art}
					}
					if err := printTable(cmd.OutOrStdout(), []string{"RUN OUTPUT", "STATE", "ARTIFACT"}, rows); err != nil {
						return err
					}
				}
			}
			if lastRun(t).RunState != resource.RunSucceeded {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	addClientFlags(cmd, &f, true)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to end; exit 1 unless it succeeded")
	return cmd
}

func newTemplateShowCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "show NAME -g GROUP",
		Short: "Show a template and its last run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			t, err := c.GetTemplate(cmd.Context(), f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			return printTemplates(cmd.OutOrStdout(), f.output, t)
		},
	}
	addClientFlags(cmd, &f, true)
	return cmd
}

func newTemplateListCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "ls [-g GROUP]",
		Aliases: []string{"list"},
		Short:   "List templates of a group, or of the subscription",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(false)
			if err != nil {
				return err
			}
			ts, err := c.ListTemplates(cmd.Context(), f.group)
			if err != nil {
				return clientFailure(err)
			}
			if f.output == "json" {
				if ts == nil {
					ts = []arm.ImageTemplate{}
				}
				return printJSON(cmd.OutOrStdout(), ts)
			}
			return printTemplates(cmd.OutOrStdout(), "table", ts...)
		},
	}
	addClientFlags(cmd, &f, true)
	return cmd
}

func newTemplateLogsCommand() *cobra.Command {
	var f clientFlags
	var follow bool
	var runID string
	cmd := &cobra.Command{
		Use:   "logs NAME -g GROUP [-f]",
		Short: "Print a run's customization.log; -f follows it live until the run ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			rd, err := c.Logs(cmd.Context(), f.group, args[0], runID, follow)
			if err != nil {
				return clientFailure(err)
			}
			defer rd.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rd)
			if err != nil && cmd.Context().Err() == nil {
				return clientFailure(err)
			}
			return nil
		},
	}
	addClientFlags(cmd, &f, true)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the log until the run ends")
	cmd.Flags().StringVar(&runID, "run", "latest", "run id")
	return cmd
}

func newTemplateCancelCommand() *cobra.Command {
	var f clientFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "cancel NAME -g GROUP",
		Short: "Cancel the template's run in progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			opURL, err := c.Cancel(cmd.Context(), f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			if !noWait {
				if _, err := c.Wait(cmd.Context(), opURL, nil); err != nil {
					return clientFailure(err)
				}
			}
			t, err := c.GetTemplate(cmd.Context(), f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			return printTemplates(cmd.OutOrStdout(), f.output, t)
		},
	}
	addClientFlags(cmd, &f, true)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the run to stop")
	return cmd
}

func newTemplateDeleteCommand() *cobra.Command {
	var f clientFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "delete NAME -g GROUP",
		Short: "Delete a template, its runs and its staging resource group (a run in progress is canceled)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(true)
			if err != nil {
				return err
			}
			opURL, err := c.DeleteTemplate(cmd.Context(), f.group, args[0])
			if err != nil {
				return clientFailure(err)
			}
			if opURL == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "%s does not exist\n", args[0])
				return nil
			}
			if !noWait {
				if _, err := c.Wait(cmd.Context(), opURL, nil); err != nil {
					return clientFailure(err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
	addClientFlags(cmd, &f, true)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	return cmd
}
