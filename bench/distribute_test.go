package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/runner"
	"github.com/goldsmith-dev/goldsmith/server"
	"github.com/goldsmith-dev/goldsmith/template"
)

const (
	virtualSize = 4 << 30
	extent      = 256 << 20
	sub         = "11111111-2222-3333-4444-555555555555"
)

func benchDir() string {
	if d := os.Getenv("GOLDSMITH_BENCH_DIR"); d != "" {
		return d
	}
	return "/var/tmp/goldsmith-bench"
}

// image is the benchmark's image and its build outputs.
type image struct {
	raw, qcow2, vhd    string
	qcow2SHA, vhdSHA   string
	qcow2Size, vhdSize int64
}

func prepare(b *testing.B) image {
	b.Helper()
	dir := benchDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	im := image{raw: filepath.Join(dir, "image.raw"), qcow2: filepath.Join(dir, "image.qcow2"), vhd: filepath.Join(dir, "image.vhd")}
	ctx := context.Background()
	if _, err := os.Stat(im.vhd); err != nil {
		f, err := os.Create(im.raw + ".tmp")
		if err != nil {
			b.Fatal(err)
		}
		for i := int64(0); i < 4; i++ {
			if _, err := io.CopyN(io.NewOffsetWriter(f, i<<30), rand.Reader, extent); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Truncate(virtualSize); err != nil {
			b.Fatal(err)
		}
		f.Close()
		if err := os.Rename(im.raw+".tmp", im.raw); err != nil {
			b.Fatal(err)
		}
		qi := disk.QemuImg{Run: disk.Exec{Log: slog.New(slog.DiscardHandler)}}
		if err := qi.Convert(ctx, im.raw, "raw", im.qcow2, disk.ConvertOptions{Format: disk.FormatQCOW2}); err != nil {
			b.Fatal(err)
		}
		if err := qi.Convert(ctx, im.raw, "raw", im.vhd+".tmp", disk.ConvertOptions{Format: disk.FormatVHD}); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(im.vhd+".tmp", im.vhd); err != nil {
			b.Fatal(err)
		}
	}
	var err error
	if im.qcow2SHA, im.qcow2Size, err = disk.SHA256File(ctx, im.qcow2); err != nil {
		b.Fatal(err)
	}
	if im.vhdSHA, im.vhdSize, err = disk.SHA256File(ctx, im.vhd); err != nil {
		b.Fatal(err)
	}
	return im
}

// outputs is an Executor that "builds" by hard-linking the prepared
// outputs into the run's work directory, as the engine leaves them.
type outputs struct {
	im   image
	done chan time.Time
}

func (o outputs) Execute(ctx context.Context, run runner.Request, _ io.Writer, progress func(build.Phase, string)) (runner.Result, error) {
	res := runner.Result{OSType: "Linux", HyperVGeneration: "V1"}
	for _, d := range run.Template.Properties.Distribute {
		src, sum, size, format := o.im.qcow2, o.im.qcow2SHA, o.im.qcow2Size, "qcow2"
		if d.Type == template.DistributeVHD {
			src, sum, size, format = o.im.vhd, o.im.vhdSHA, o.im.vhdSize, "vhd"
		}
		dst := filepath.Join(run.WorkDir, d.RunOutputName+"."+format)
		if err := os.Link(src, dst); err != nil {
			return res, err
		}
		res.Outputs = append(res.Outputs, build.Output{RunOutputName: d.RunOutputName, Type: d.Type, Path: dst, Format: format,
			SHA256: sum, Size: size})
	}
	progress(build.PhaseDistributing, "benchmark")
	o.done <- time.Now()
	return res, nil
}

const tmplJSON = `{"location": "westus2", "identity": {"type": "None"},
 "properties": {
  "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
  "distribute": [
   {"type": "ManagedImage", "runOutputName": "managed", "location": "westus2", "imageId": "/subscriptions/%[1]s/resourceGroups/rg/providers/Microsoft.Compute/images/img"},
   {"type": "SharedImage", "runOutputName": "sig", "galleryImageId": "/subscriptions/%[1]s/resourceGroups/rg/providers/Microsoft.Compute/galleries/gal/images/def",
    "targetRegions": [{"name": "westus2"}, {"name": "eastus"}]},
   {"type": "VHD", "runOutputName": "vhd"}]}}`

// distributeOnce sets up a fresh site, runs one "build" and returns how
// long its distribution took.
func distributeOnce(b *testing.B, im image) time.Duration {
	ctx := context.Background()
	dir, err := os.MkdirTemp(benchDir(), "site-")
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		b.Logf("site kept in %s", dir)
	}
	exec := outputs{im: im, done: make(chan time.Time, 1)}
	srv, err := server.Open(ctx, server.Config{DataDir: dir, Workers: 1, Executor: exec, QueuePoll: 20 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	svc := srv.Service()
	qctx, stop := context.WithCancel(ctx)
	qdone := make(chan struct{})
	go func() { _ = srv.Run(qctx); close(qdone) }()
	defer func() { stop(); <-qdone }()

	must := func(err error) {
		if err != nil {
			b.Helper()
			b.Fatal(err)
		}
	}
	_, _, err = svc.PutResourceGroup(ctx, sub, "rg", resource.Input{Location: "westus2"})
	must(err)
	gal, _ := resourceid.Parse("/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/galleries/gal")
	_, _, err = svc.PutResource(ctx, gal, resource.Input{Location: "westus2"})
	must(err)
	def, _ := resourceid.Parse(gal.String() + "/images/def")
	_, _, err = svc.PutResource(ctx, def, resource.Input{Location: "westus2", Properties: map[string]any{"osType": "Linux", "osState": "Generalized",
		"identifier": map[string]any{"publisher": "p", "offer": "o", "sku": "s"}}})
	must(err)
	var body map[string]any
	must(json.Unmarshal([]byte(fmt.Sprintf(tmplJSON, sub)), &body))
	tid, _ := resourceid.Parse("/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t")
	_, op, err := svc.CreateTemplate(ctx, tid, body, "2024-02-01")
	must(err)
	waitOp(b, svc, op.ID)
	op, err = svc.StartRun(ctx, tid.String())
	must(err)
	started := <-exec.done
	end := waitOp(b, svc, op.ID)
	t, err := svc.GetTemplate(ctx, tid.String())
	must(err)
	if t.LastRunStatus.RunState != resource.RunSucceeded {
		b.Fatalf("run %s: %s", t.LastRunStatus.RunState, t.LastRunStatus.Message)
	}
	return end.Sub(started)
}

func waitOp(b *testing.B, svc *resource.Service, id string) time.Time {
	b.Helper()
	for {
		op, err := svc.Operation(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if op.Done() {
			if op.Status != resource.OpSucceeded {
				b.Fatalf("operation %s: %s %+v", id, op.Status, op.Error)
			}
			return *op.EndTime
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkDistribution: managed image + gallery version in two regions +
// VHD, of the 4 GiB / 1 GiB-data image.
func BenchmarkDistribution(b *testing.B) {
	im := prepare(b)
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += distributeOnce(b, im)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/distribution")
}

// BenchmarkCopy: cp --sparse=always of the raw image, alone and with sync.
func BenchmarkCopy(b *testing.B) {
	im := prepare(b)
	for _, withSync := range []bool{false, true} {
		name := "cp"
		if withSync {
			name = "cp+sync"
		}
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				dst := filepath.Join(benchDir(), "copy.raw")
				start := time.Now()
				args := "cp --sparse=always " + im.raw + " " + dst
				if withSync {
					args += " && sync " + dst
				}
				if out, err := exec.Command("sh", "-c", args).CombinedOutput(); err != nil {
					b.Fatalf("%s: %v", out, err)
				}
				total += time.Since(start)
				os.Remove(dst)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/copy")
		})
	}
}
