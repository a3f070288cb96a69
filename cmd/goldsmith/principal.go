package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/store"
)

// openDirectory opens the service principals of the server whose data
// directory is dir. It works beside a running `goldsmith serve` (SQLite
// in WAL mode, and every token is checked against the directory, so a
// deletion takes effect at once).
func openDirectory(ctx context.Context, dir string) (*identity.Directory, func(), error) {
	db := filepath.Join(dir, "goldsmith.db")
	if _, err := os.Stat(db); err != nil {
		return nil, nil, &exitError{code: exitFailure, err: fmt.Errorf("no goldsmith server data in %s (run goldsmith serve --data-dir %s first): %w", dir, dir, err)}
	}
	st, err := store.Open(ctx, db)
	if err != nil {
		return nil, nil, &exitError{code: exitFailure, err: err}
	}
	return identity.NewDirectory(st), func() { st.Close() }, nil
}

func newPrincipalCommand() *cobra.Command {
	var dataDir, output string
	cmd := &cobra.Command{
		Use:     "principal",
		Aliases: []string{"sp"},
		Short:   "Create, list and delete the service principals of goldsmith serve",
		Long: `A service principal signs in to goldsmith serve's token endpoint with its client
id and secret (az login --service-principal -u CLIENT_ID -p SECRET), and gets
access tokens valid for an hour. The secret is shown once, at creation:
goldsmith keeps only a salted hash. These commands work on the server's data
directory (--data-dir), also while the server runs; deleting a principal
refuses its tokens at once.`,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the data directory of goldsmith serve")
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "table", "json or table")
	checkOutput := func() error {
		if output != "json" && output != "table" {
			return usageError("--output must be json or table, not %q", output)
		}
		return nil
	}
	var subs []string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Make a service principal and print its client id and secret",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(); err != nil {
				return err
			}
			d, done, err := openDirectory(cmd.Context(), dataDir)
			if err != nil {
				return err
			}
			defer done()
			p, secret, err := d.Create(cmd.Context(), args[0], subs)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				return json.NewEncoder(out).Encode(map[string]any{"clientId": p.ClientID, "name": p.Name, "secret": secret,
					"tenant": identity.DefaultTenant, "subscriptions": p.Subscriptions})
			}
			fmt.Fprintf(out, "client id:     %s\nsecret:        %s\nsubscriptions: %s\n\nThe secret is not shown again.\n",
				p.ClientID, secret, strings.Join(p.Subscriptions, ", "))
			return nil
		},
	}
	create.Flags().StringSliceVar(&subs, "subscription", nil, "a subscription id the principal may use (repeatable; default "+identity.DefaultSubscription+")")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the service principals",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(); err != nil {
				return err
			}
			d, done, err := openDirectory(cmd.Context(), dataDir)
			if err != nil {
				return err
			}
			defer done()
			list, err := d.List(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				rows := make([]map[string]any, 0, len(list))
				for _, p := range list {
					rows = append(rows, map[string]any{"clientId": p.ClientID, "name": p.Name, "subscriptions": p.Subscriptions, "created": p.Created})
				}
				return json.NewEncoder(out).Encode(rows)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLIENT ID\tNAME\tSUBSCRIPTIONS\tCREATED")
			for _, p := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ClientID, p.Name, strings.Join(p.Subscriptions, ","), p.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a service principal; its tokens are refused from then on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, done, err := openDirectory(cmd.Context(), dataDir)
			if err != nil {
				return err
			}
			defer done()
			if err := d.Delete(cmd.Context(), args[0]); errors.Is(err, identity.ErrUnknownClient) {
				return &exitError{code: exitFailure, err: fmt.Errorf("no service principal with client id %s", args[0])}
			} else if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted service principal %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, ls, del)
	return cmd
}
