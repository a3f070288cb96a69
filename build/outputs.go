package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/template"
)

// distribute writes one artifact per distribute target.
type distribute struct{}

func (*distribute) Name() string { return "distribute" }
func (*distribute) Cleanup(*run) {}
func (*distribute) Run(ctx context.Context, r *run) error {
	if r.sourceValidationOnly() {
		return nil
	}
	r.setPhase(PhaseDistributing, fmt.Sprintf("%d targets", len(r.tmpl.Properties.Distribute)))
	outs, err := r.writeOutputs(ctx, r.tmpl.Properties.Distribute)
	if err != nil {
		return err
	}
	for _, out := range outs {
		r.logf("%s %q: %s (%s, %d bytes, sha256 %s)", out.Type, out.RunOutputName, out.Path, out.Format, out.Size, out.SHA256)
	}
	r.outputs = append(r.outputs, outs...)
	return nil
}

// outputFormat is the format a target is written in.
func (r *run) outputFormat(d template.Distributor) string {
	if d.Type == template.DistributeVHD {
		return "vhd"
	}
	return r.req.ManagedFormat
}

var outputExt = map[string]string{"qcow2": ".qcow2", "raw": ".raw", "vhd": ".vhd"}

// writeOutputs converts the generalized disk once per format, the formats
// in parallel (each conversion is one qemu-img process and one hash pass),
// and hard-links (or copies across filesystems) the first target of a
// format for the others, so targets of one format get the same bytes.
func (r *run) writeOutputs(ctx context.Context, ds []template.Distributor) ([]Output, error) {
	outs := make([]Output, len(ds))
	first := map[string]int{} // format -> index of its first target
	var order []string
	for i, d := range ds {
		f := r.outputFormat(d)
		if _, ok := first[f]; !ok {
			first[f] = i
			order = append(order, f)
		}
	}
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for _, f := range order {
		i := first[f]
		wg.Go(func() {
			outs[i], errs[i] = r.convert(ctx, ds[i], f)
		})
	}
	wg.Wait()
	for i, d := range ds {
		if errs[i] != nil {
			return nil, fmt.Errorf("%s %q: %w", d.Type, d.RunOutputName, errs[i])
		}
	}
	for i, d := range ds {
		j := first[r.outputFormat(d)]
		if j == i {
			continue
		}
		path := filepath.Join(r.req.OutputDir, d.RunOutputName+outputExt[outs[j].Format])
		if err := linkOrCopy(ctx, outs[j].Path, path); err != nil {
			return nil, fmt.Errorf("%s %q: %w", d.Type, d.RunOutputName, err)
		}
		outs[i] = outs[j]
		outs[i].RunOutputName, outs[i].Type, outs[i].Path = d.RunOutputName, d.Type, path
	}
	return outs, nil
}

// convert writes one target. A fixed VHD is a raw image, written sparse
// (holes stay holes), with the 512-byte footer appended: the same bytes as
// qemu-img's vpc fixed output, without writing gigabytes of zeros.
func (r *run) convert(ctx context.Context, d template.Distributor, format string) (Output, error) {
	path := filepath.Join(r.req.OutputDir, d.RunOutputName+outputExt[format])
	fail := func(err error) (Output, error) {
		os.Remove(path)
		return Output{}, err
	}
	out := Output{RunOutputName: d.RunOutputName, Type: d.Type, Path: path, Format: format}
	var err error
	switch format {
	case "vhd", "raw":
		// One pass that writes and hashes, holes neither written nor read.
		out.SHA256, out.Size, err = disk.WriteRawHashed(ctx, r.overlay, path, format == "vhd")
		if err != nil {
			return fail(err)
		}
		if format == "vhd" {
			if _, err := disk.CheckFixedVHD(path); err != nil {
				return fail(fmt.Errorf("check VHD: %w", err))
			}
		}
	default:
		if err := r.b.Disks.Convert(ctx, r.overlay, "qcow2", path, disk.ConvertOptions{Format: format}); err != nil {
			return fail(err)
		}
		if out.SHA256, out.Size, err = disk.SHA256File(ctx, path); err != nil {
			return fail(err)
		}
	}
	return out, nil
}

func linkOrCopy(ctx context.Context, src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return disk.CopySparse(ctx, dst, src)
}
