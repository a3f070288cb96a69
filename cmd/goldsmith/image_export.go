package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/arm"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/distribute"
)

// newImageExportCommand is `goldsmith image export`.
func newImageExportCommand() *cobra.Command {
	var fl clientFlags
	var format, file, region string
	cmd := &cobra.Command{
		Use:   "export (NAME -g GROUP | IMAGE_ID | IMAGE_VERSION_ID) --file PATH [--format raw|qcow2|vhd|vmdk]",
		Short: "Write a managed image or gallery image version to a disk file",
		Long: `Export downloads the disk behind a managed image (by name with -g, or by
resource id) or a gallery image version (by resource id, e.g.
/subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/galleries/GAL/images/DEF/versions/1.0.0),
checks its sha256, and writes it as raw, qcow2, a fixed VHD (virtual size a
multiple of 1 MiB, as Azure wants) or a streamOptimized VMDK. --region picks
a gallery version's replica (default: the gallery's region). The format
defaults to the file's extension.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageError("--file is required")
			}
			if format == "" {
				format = strings.TrimPrefix(filepath.Ext(file), ".")
			}
			if !validExportFormat(format) {
				return usageError("--format must be one of %s, not %q", strings.Join(distribute.ExportFormats, ", "), format)
			}
			id := args[0]
			if !strings.HasPrefix(id, "/") {
				if fl.group == "" {
					return usageError("give a managed image's name with --resource-group (-g), or a resource id")
				}
				id = "/subscriptions/" + fl.subscription + "/resourceGroups/" + fl.group + "/providers/Microsoft.Compute/images/" + id
			}
			c, err := fl.client(false)
			if err != nil {
				return err
			}
			res, err := exportDisk(cmd.Context(), c, id, region, file, strings.ToLower(format))
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			if fl.output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%s copy, sha256 %s) written as %s to %s\n",
				id, res.SourceFormat, res.Region, res.SourceSHA256, res.Format, res.File)
			return nil
		},
	}
	addClientFlags(cmd, &fl, true)
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "raw, qcow2, vhd or vmdk (default: from --file's extension)")
	f.StringVar(&file, "file", "", "the disk file to write")
	f.StringVar(&region, "region", "", "the region whose copy to read (default: the resource's region)")
	return cmd
}

func validExportFormat(f string) bool {
	for _, x := range distribute.ExportFormats {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// exported is what an export wrote.
type exported struct {
	File         string `json:"file"`
	Format       string `json:"format"`
	ID           string `json:"id"`
	Region       string `json:"region"`
	SourceFormat string `json:"sourceFormat"`
	SourceSHA256 string `json:"sourceSha256"`
	VirtualSize  int64  `json:"virtualSize"`
}

// exportDisk downloads the stored disk next to file (sparse, sha256
// checked) and converts it.
func exportDisk(ctx context.Context, c *arm.Client, id, region, file, format string) (*exported, error) {
	d, err := c.Disk(ctx, id, region)
	if err != nil {
		return nil, clientFailure(err)
	}
	defer d.Body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(file), ".goldsmith-export-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	hr := disk.NewHashingReader(disk.ContextReader(ctx, d.Body))
	_, werr := disk.WriteSparse(tmp, hr)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("download %s: %w", id, werr)
	}
	if !strings.EqualFold(hr.Sum(), d.SHA256) {
		return nil, fmt.Errorf("download %s: sha256 %s, the server says %s", id, hr.Sum(), d.SHA256)
	}
	if err := distribute.Export(ctx, disk.QemuImg{Run: disk.Exec{}}, tmp.Name(), d.Format, file, format); err != nil {
		return nil, err
	}
	return &exported{ID: id, Region: d.Region, SourceFormat: d.Format, SourceSHA256: d.SHA256,
		VirtualSize: d.VirtualSize, Format: format, File: file}, nil
}
