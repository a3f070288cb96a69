package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/disk"
)

type catalogFlags struct {
	dataDir string
	output  string
}

func newCatalogCommand() *cobra.Command {
	var f catalogFlags
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "The PlatformImage catalog: built-in Debian images, imports and aliases",
		Long: `The catalog holds the images PlatformImage sources resolve to, named
publisher:offer:sku:version like the Azure Marketplace. Built in:
Debian:debian-12:12 and Debian:debian-11:11, made with mmdebstrap from
Debian's mirror on first use. Import other images (a file or an http(s) URL
with its sha256), and alias Marketplace URNs that have no local image to one
that does, so real templates run here; a build names an alias's image as a
substitute in its log and manifest.`,
	}
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", defaultDataDir(), "catalog, caches and state")
	cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	open := func(cmd *cobra.Command) (*catalog.Catalog, error) {
		if f.output != "table" && f.output != "json" {
			return nil, usageError("--output must be table or json, not %q", f.output)
		}
		logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		return catalog.Open(f.dataDir, catalog.WithLogger(logger), catalog.WithRunner(disk.Exec{Log: logger}))
	}

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List images and aliases",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open(cmd)
			if err != nil {
				return err
			}
			entries, err := c.List()
			if err != nil {
				return err
			}
			aliases, err := c.Aliases()
			if err != nil {
				return err
			}
			return printCatalog(cmd.OutOrStdout(), f.output, entries, aliases)
		},
	}
	buildCmd := &cobra.Command{
		Use:   "build URN",
		Short: "Build a new version of a built-in image (Debian:debian-12:12, Debian:debian-11:11)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open(cmd)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "building %s (a few minutes: mmdebstrap, disk, bootloader)...\n", args[0])
			e, err := c.Build(cmd.Context(), args[0])
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			return printCatalog(cmd.OutOrStdout(), f.output, []catalog.Entry{e}, nil)
		},
	}
	var imp catalog.ImportRequest
	importCmd := &cobra.Command{
		Use:   "import URN FILE|URL --sha256 HEX",
		Short: "Import a qcow2, raw or VHD image from a file or an http(s) URL",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open(cmd)
			if err != nil {
				return err
			}
			imp.URN, imp.Source = args[0], args[1]
			if imp.SHA256 == "" {
				return usageError("--sha256 is required: the image's published digest (sha256sum FILE)")
			}
			e, err := c.Import(cmd.Context(), imp)
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			return printCatalog(cmd.OutOrStdout(), f.output, []catalog.Entry{e}, nil)
		},
	}
	importCmd.Flags().StringVar(&imp.SHA256, "sha256", "", "sha256 of the image file (required)")
	importCmd.Flags().StringVar(&imp.OSType, "os-type", "Linux", "Linux or Windows")
	importCmd.Flags().StringVar(&imp.HyperVGeneration, "hyperv-generation", "V1", "V1 (BIOS) or V2 (UEFI)")

	var remove bool
	aliasCmd := &cobra.Command{
		Use:   "alias FROM-URN TO-URN",
		Short: "Let FROM (e.g. Canonical:UbuntuServer:18.04-LTS) resolve to a catalog image (e.g. Debian:debian-12:12)",
		Args: func(cmd *cobra.Command, args []string) error {
			if remove {
				return cobra.ExactArgs(1)(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open(cmd)
			if err != nil {
				return err
			}
			if remove {
				err = c.RemoveAlias(cmd.Context(), args[0])
			} else {
				err = c.Alias(cmd.Context(), args[0], args[1])
			}
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			aliases, err := c.Aliases()
			if err != nil {
				return err
			}
			return printCatalog(cmd.OutOrStdout(), f.output, nil, aliases)
		},
	}
	aliasCmd.Flags().BoolVar(&remove, "remove", false, "remove the alias FROM-URN")
	cmd.AddCommand(ls, buildCmd, importCmd, aliasCmd)
	return cmd
}

func printCatalog(w io.Writer, output string, entries []catalog.Entry, aliases []catalog.AliasEntry) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if entries == nil {
			entries = []catalog.Entry{}
		}
		if aliases == nil {
			aliases = []catalog.AliasEntry{}
		}
		return enc.Encode(struct {
			Images  []catalog.Entry      `json:"images"`
			Aliases []catalog.AliasEntry `json:"aliases"`
		}{entries, aliases})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(entries) > 0 {
		fmt.Fprintln(tw, "URN\tFORMAT\tSIZE\tSHA256\tSOURCE")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%d GiB\t%.12s\t%s\n", e.URN, e.DiskFormat, e.VirtualSize>>30, e.DiskSHA256, e.Source)
		}
	}
	if len(aliases) > 0 {
		if len(entries) > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "ALIAS\tRESOLVES TO")
		for _, a := range aliases {
			fmt.Fprintf(tw, "%s\t%s\n", a.From, a.To)
		}
	}
	if len(entries) == 0 && len(aliases) == 0 {
		fmt.Fprintln(tw, "(empty: built-in images are built on first use, or with goldsmith catalog build Debian:debian-12:12)")
	}
	return tw.Flush()
}
