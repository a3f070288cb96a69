package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/layer"
)

// defaultLayerCacheBytes bounds the layer cache unless
// GOLDSMITH_LAYER_CACHE_BYTES says otherwise; least recently used layers are
// evicted past it.
const defaultLayerCacheBytes = 20 << 30

func openLayers(dataDir string, logger *slog.Logger) (*layer.Cache, error) {
	limit := int64(defaultLayerCacheBytes)
	if v := os.Getenv("GOLDSMITH_LAYER_CACHE_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, usageError("GOLDSMITH_LAYER_CACHE_BYTES must be a number of bytes, not %q", v)
		}
		limit = n
	}
	c, err := layer.Open(filepath.Join(dataDir, "layers"), limit, logger)
	if err != nil {
		return nil, fmt.Errorf("open the layer cache: %w", err)
	}
	return c, nil
}

func newCacheCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List and prune the build layer cache",
		Long: `goldsmith build saves the build VM (disk and memory) after each customizer as
a layer, keyed by the source image, the VM shape and every customizer up to
it (definition and downloaded bytes), so a rebuild restores the longest
unchanged prefix. Layers are shared by templates with the same prefix and
bounded in size (least recently used first; GOLDSMITH_LAYER_CACHE_BYTES,
default 20 GiB).`,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "catalog, caches and state")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the layers, most recently used first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := openLayers(dataDir, nil)
			if err != nil {
				return err
			}
			list, err := c.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KEY\tPARENT\tSTEP\tSIZE\tLAST USED\tWHAT")
			var total int64
			for _, m := range list {
				parent := "-"
				if m.Parent != "" {
					parent = m.Parent[:12]
				}
				total += m.Bytes
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", m.Key[:12], parent, m.Step, mib(m.Bytes),
					m.LastUsed.Local().Format(time.DateTime), m.Description)
			}
			w.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "%d layers, %s\n", len(list), mib(total))
			return nil
		},
	}
	var keep string
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove layers not in use (least recently used first, down to --keep)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit, err := strconv.ParseInt(keep, 10, 64)
			if err != nil || limit < 0 {
				return usageError("--keep must be a number of bytes, not %q", keep)
			}
			c, err := openLayers(dataDir, nil)
			if err != nil {
				return err
			}
			removed, err := c.Prune(limit)
			var freed int64
			for _, m := range removed {
				freed += m.Bytes
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d layers, %s\n", len(removed), mib(freed))
			return err
		},
	}
	prune.Flags().StringVar(&keep, "keep", "0", "bytes to keep (0 removes every layer not in use)")
	cmd.AddCommand(ls, prune)
	return cmd
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
