package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

const (
	sideGoldsmith = "goldsmith"
	sidePacker    = "packer"

	kindWarm    = "warm"
	kindRebuild = "rebuild"
)

// phase is a named duration: a build phase or one step.
type phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// buildRun is one timed build.
type buildRun struct {
	Side          string      `json:"side"`
	Kind          string      `json:"kind"`
	Seconds       float64     `json:"seconds"` // wall time of the goldsmith or packer process
	Phases        []phase     `json:"phases,omitempty"`
	Steps         []phase     `json:"steps,omitempty"` // goldsmith: customizers; packer: disk copy, reboot
	Artifact      string      `json:"artifact,omitempty"`
	ArtifactBytes int64       `json:"artifactBytes,omitempty"`
	Dir           string      `json:"dir"`
	Manifest      string      `json:"manifest,omitempty"`
	Timeline      []timedLine `json:"timeline,omitempty"` // packer's output, stamped
	Serial        []timedLine `json:"-"`                  // packer's guest console, stamped (serial.log)
	Error         string      `json:"error,omitempty"`
	// The host's 1-minute load average when the build started and ended:
	// the machine is shared, and a busy host slows TCG guests a lot.
	LoadBefore float64 `json:"loadBefore"`
	LoadAfter  float64 `json:"loadAfter"`
}

// pairResult is one interleaved pair, with goldsmith's one-step rebuild.
type pairResult struct {
	Index     int       `json:"index"`
	First     string    `json:"first"`
	Nonce     string    `json:"nonce"`
	Goldsmith *buildRun `json:"goldsmith,omitempty"`
	Rebuild   *buildRun `json:"rebuild,omitempty"`
	Packer    *buildRun `json:"packer,omitempty"`
}

// Ratio is goldsmith's warm build over Packer's, when both succeeded.
func (p pairResult) Ratio() (float64, bool) {
	if !ok(p.Goldsmith) || !ok(p.Packer) || p.Packer.Seconds == 0 {
		return 0, false
	}
	return p.Goldsmith.Seconds / p.Packer.Seconds, true
}

// RebuildRatio is the one-step rebuild over its warm build.
func (p pairResult) RebuildRatio() (float64, bool) {
	if !ok(p.Goldsmith) || !ok(p.Rebuild) || p.Goldsmith.Seconds == 0 {
		return 0, false
	}
	return p.Rebuild.Seconds / p.Goldsmith.Seconds, true
}

func ok(r *buildRun) bool { return r != nil && r.Error == "" }

// spread is a sample's median and range.
type spread struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{N: len(s), Median: m, Min: s[0], Max: s[len(s)-1]}
}

// summary is what the pairs add up to.
type summary struct {
	Goldsmith          spread            `json:"goldsmith"`
	Packer             spread            `json:"packer"`
	RatioMedianOfPairs *float64          `json:"ratioMedianOfPairs,omitempty"` // median of goldsmith/packer per pair
	RatioOfMedians     *float64          `json:"ratioOfMedians,omitempty"`
	GoldsmithPhases    []phase           `json:"goldsmithPhases"` // medians
	PackerPhases       []phase           `json:"packerPhases"`    // medians
	PackerSteps        []phase           `json:"packerSteps"`     // medians
	Rebuild            spread            `json:"rebuild"`
	RebuildRatio       *spread           `json:"rebuildRatio,omitempty"` // rebuild / warm build, per pair
	RebuildPhases      []phase           `json:"rebuildPhases"`
	Failures           map[string]string `json:"failures,omitempty"`
}

func summarize(pairs []pairResult) summary {
	var g, p, rb, ratios, rbRatios []float64
	var gRuns, pRuns, rbRuns []*buildRun
	s := summary{}
	for _, pr := range pairs {
		for _, r := range []*buildRun{pr.Goldsmith, pr.Rebuild, pr.Packer} {
			if r != nil && r.Error != "" {
				if s.Failures == nil {
					s.Failures = map[string]string{}
				}
				s.Failures[fmt.Sprintf("pair %d %s %s", pr.Index, r.Side, r.Kind)] = r.Error
			}
		}
		if ok(pr.Goldsmith) {
			g = append(g, pr.Goldsmith.Seconds)
			gRuns = append(gRuns, pr.Goldsmith)
		}
		if ok(pr.Packer) {
			p = append(p, pr.Packer.Seconds)
			pRuns = append(pRuns, pr.Packer)
		}
		if ok(pr.Rebuild) {
			rb = append(rb, pr.Rebuild.Seconds)
			rbRuns = append(rbRuns, pr.Rebuild)
		}
		if x, ok := pr.Ratio(); ok {
			ratios = append(ratios, x)
		}
		if x, ok := pr.RebuildRatio(); ok {
			rbRatios = append(rbRatios, x)
		}
	}
	s.Goldsmith, s.Packer, s.Rebuild = spreadOf(g), spreadOf(p), spreadOf(rb)
	if len(ratios) > 0 {
		m := spreadOf(ratios).Median
		s.RatioMedianOfPairs = &m
	}
	if len(g) > 0 && len(p) > 0 {
		r := s.Goldsmith.Median / s.Packer.Median
		s.RatioOfMedians = &r
	}
	if len(rbRatios) > 0 {
		r := spreadOf(rbRatios)
		s.RebuildRatio = &r
	}
	s.GoldsmithPhases = medianPhases(gRuns, func(r *buildRun) []phase { return r.Phases })
	s.PackerPhases = medianPhases(pRuns, func(r *buildRun) []phase { return r.Phases })
	s.PackerSteps = medianPhases(pRuns, func(r *buildRun) []phase { return r.Steps })
	s.RebuildPhases = medianPhases(rbRuns, func(r *buildRun) []phase { return r.Phases })
	return s
}

// medianPhases is each phase's median over the runs that have it, in the
// order the phases first appear.
func medianPhases(runs []*buildRun, of func(*buildRun) []phase) []phase {
	var names []string
	byName := map[string][]float64{}
	for _, r := range runs {
		for _, p := range of(r) {
			if _, seen := byName[p.Name]; !seen {
				names = append(names, p.Name)
			}
			byName[p.Name] = append(byName[p.Name], p.Seconds)
		}
	}
	out := []phase{}
	for _, n := range names {
		out = append(out, phase{Name: n, Seconds: spreadOf(byName[n]).Median})
	}
	return out
}

// printReport writes the per-pair table and the summary.
func printReport(w io.Writer, pairs []pairResult, s summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\tfirst\tgoldsmith s\tgoldsmith phases s\tpacker s\tpacker phases s\tratio\trebuild s\trebuild/warm\thost load\t")
	for _, p := range pairs {
		ratio, rbRatio := "-", "-"
		if x, ok := p.Ratio(); ok {
			ratio = fmt.Sprintf("%.2f", x)
		}
		if x, ok := p.RebuildRatio(); ok {
			rbRatio = fmt.Sprintf("%.2f", x)
		}
		var loads []string
		for _, r := range []*buildRun{p.Goldsmith, p.Rebuild, p.Packer} {
			if r != nil {
				loads = append(loads, fmt.Sprintf("%.1f", (r.LoadBefore+r.LoadAfter)/2))
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.Index, p.First,
			seconds(p.Goldsmith), phaseList(p.Goldsmith), seconds(p.Packer), phaseList(p.Packer),
			ratio, seconds(p.Rebuild), rbRatio, strings.Join(loads, "/"))
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "phases: Building/Customizing/Validating/Generalizing/Distributing for goldsmith (manifest.json);\n")
	fmt.Fprintf(w, "        Building/Customizing/Generalizing/Distributing for Packer (from its output: SSH up, deprovision, post-processor)\n")
	fmt.Fprintf(w, "host load: the 1-minute load average during goldsmith/rebuild/packer (the host's cores: %d)\n\n", runtime.NumCPU())
	line := func(name string, sp spread) {
		if sp.N == 0 {
			fmt.Fprintf(w, "%-10s no successful run\n", name)
			return
		}
		fmt.Fprintf(w, "%-10s median %6.1f s  range %.1f–%.1f s  (n=%d)\n", name, sp.Median, sp.Min, sp.Max, sp.N)
	}
	line(sideGoldsmith, s.Goldsmith)
	line(sidePacker, s.Packer)
	if s.RatioMedianOfPairs != nil {
		fmt.Fprintf(w, "goldsmith/packer: median of pair ratios %.2f, ratio of medians %.2f\n", *s.RatioMedianOfPairs, *s.RatioOfMedians)
	}
	if len(s.GoldsmithPhases) > 0 {
		fmt.Fprintf(w, "goldsmith phases (median): %s\n", phaseText(s.GoldsmithPhases))
	}
	if len(s.PackerPhases) > 0 {
		fmt.Fprintf(w, "packer phases (median):    %s\n", phaseText(s.PackerPhases))
	}
	if len(s.PackerSteps) > 0 {
		fmt.Fprintf(w, "packer steps (median):     %s\n", phaseText(s.PackerSteps))
	}
	if s.RebuildRatio != nil {
		fmt.Fprintf(w, "rebuild, last customizer changed: median %.1f s (range %.1f–%.1f), rebuild/warm median %.2f (range %.2f–%.2f)\n",
			s.Rebuild.Median, s.Rebuild.Min, s.Rebuild.Max, s.RebuildRatio.Median, s.RebuildRatio.Min, s.RebuildRatio.Max)
		fmt.Fprintf(w, "rebuild phases (median):   %s\n", phaseText(s.RebuildPhases))
	}
	if len(s.Failures) > 0 {
		keys := make([]string, 0, len(s.Failures))
		for k := range s.Failures {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintln(w, "failures:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %s\n", k, s.Failures[k])
		}
	}
}

func seconds(r *buildRun) string {
	switch {
	case r == nil:
		return "-"
	case r.Error != "":
		return "failed"
	}
	return fmt.Sprintf("%.1f", r.Seconds)
}

func phaseList(r *buildRun) string {
	if r == nil || len(r.Phases) == 0 {
		return "-"
	}
	parts := make([]string, len(r.Phases))
	for i, p := range r.Phases {
		parts[i] = fmt.Sprintf("%.0f", p.Seconds)
	}
	return strings.Join(parts, "/")
}

func phaseText(ps []phase) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s %.1f s", p.Name, p.Seconds)
	}
	return strings.Join(parts, ", ")
}

// results is the JSON file a run writes.
type results struct {
	Started   time.Time    `json:"started"`
	Finished  time.Time    `json:"finished"`
	Setup     setupInfo    `json:"setup"`
	Pairs     []pairResult `json:"pairs"`
	Summary   summary      `json:"summary"`
	Completed bool         `json:"completed"` // false when the run stopped early
}

// setupInfo is what both sides ran with.
type setupInfo struct {
	Host             string `json:"host"`
	HostCPUs         int    `json:"hostCPUs"`
	Accelerator      string `json:"accelerator"`
	VMSize           string `json:"vmSize"`
	CPUs             int    `json:"cpus"`
	MemoryMiB        int    `json:"memoryMiB"`
	BaseURN          string `json:"baseURN"`
	BaseDisk         string `json:"baseDisk"`
	BaseSHA256       string `json:"baseSHA256"`
	BaseVirtualBytes int64  `json:"baseVirtualBytes"`
	Goldsmith        string `json:"goldsmith"` // binary and its version
	Packer           string `json:"packer"`
	DataDir          string `json:"dataDir"`
	WorkDir          string `json:"workDir"`
}
