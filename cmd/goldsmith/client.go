package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/arm"
	"github.com/goldsmith-dev/goldsmith/template"
)

// The client commands talk to a goldsmith server (--server, GOLDSMITH_TOKEN):
// group (group.go), template create/run/show/ls/logs/cancel/delete
// (template_client.go), gallery (gallery.go) and image (image.go).

// clientFlags are the flags every client command has.
type clientFlags struct {
	server       string
	subscription string
	output       string
	insecure     bool
	group        string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// addClientFlags adds the shared flags; withGroup adds -g/--resource-group.
func addClientFlags(cmd *cobra.Command, f *clientFlags, withGroup bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", envOr("GOLDSMITH_SERVER", "http://127.0.0.1:8080"), "goldsmith server URL (env GOLDSMITH_SERVER)")
	fl.StringVar(&f.subscription, "subscription", envOr("GOLDSMITH_SUBSCRIPTION", template.DefaultSubscriptionID), "subscription id (env GOLDSMITH_SUBSCRIPTION)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the server's TLS certificate (for --tls-self-signed servers)")
	if withGroup {
		fl.StringVarP(&f.group, "resource-group", "g", os.Getenv("GOLDSMITH_RESOURCE_GROUP"), "resource group (env GOLDSMITH_RESOURCE_GROUP)")
	}
}

func (f *clientFlags) client(needGroup bool) (*arm.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, usageError("--output must be table or json, not %q", f.output)
	}
	if needGroup && f.group == "" {
		return nil, usageError("--resource-group (-g) is required")
	}
	token, _, _ := strings.Cut(os.Getenv("GOLDSMITH_TOKEN"), ",")
	if strings.TrimSpace(token) == "" {
		return nil, usageError("set GOLDSMITH_TOKEN to the server's API token (goldsmith serve prints it at first start and keeps it in DATA_DIR/token)")
	}
	hc := &http.Client{Timeout: 0}
	if f.insecure {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // asked for by --insecure
	}
	return &arm.Client{BaseURL: strings.TrimSuffix(f.server, "/"), Token: strings.TrimSpace(token), Subscription: f.subscription, HTTP: hc}, nil
}

// clientFailure maps an API error to exit status 1 with its message.
func clientFailure(err error) error {
	if err == nil {
		return nil
	}
	var ae *arm.APIError
	if errors.As(err, &ae) {
		return &exitError{code: exitFailure, err: ae}
	}
	return &exitError{code: exitFailure, err: err}
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func groupOf(id string) string {
	parts := strings.Split(id, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			return parts[i+1]
		}
	}
	return ""
}

func printTable(out io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}
