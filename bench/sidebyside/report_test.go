package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestSpreadOf(t *testing.T) {
	tests := []struct {
		in   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{7}, spread{N: 1, Median: 7, Min: 7, Max: 7}},
		{[]float64{121, 112, 101, 132}, spread{N: 4, Median: 116.5, Min: 101, Max: 132}},
		{[]float64{3, 1, 2}, spread{N: 3, Median: 2, Min: 1, Max: 3}},
	}
	for _, tt := range tests {
		if got := spreadOf(tt.in); got != tt.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func timed(side, kind string, s float64, phases ...phase) *buildRun {
	return &buildRun{Side: side, Kind: kind, Seconds: s, Phases: phases}
}

func TestSummarize(t *testing.T) {
	// The four pairs, with a rebuild each and one failed Packer run.
	pairs := []pairResult{
		{Index: 1, Goldsmith: &buildRun{Side: sideGoldsmith, Kind: kindWarm, Seconds: 121, Phases: []phase{{"Building", 38}}, LoadBefore: 2, LoadAfter: 4}, Rebuild: timed(sideGoldsmith, kindRebuild, 30, phase{"Building", 5}), Packer: timed(sidePacker, kindWarm, 101)},
		{Index: 2, Goldsmith: timed(sideGoldsmith, kindWarm, 112, phase{"Building", 30}), Rebuild: timed(sideGoldsmith, kindRebuild, 28), Packer: timed(sidePacker, kindWarm, 152)},
		{Index: 3, Goldsmith: timed(sideGoldsmith, kindWarm, 101, phase{"Building", 29}), Packer: timed(sidePacker, kindWarm, 134)},
		{Index: 4, Goldsmith: timed(sideGoldsmith, kindWarm, 132, phase{"Building", 45}), Packer: timed(sidePacker, kindWarm, 113)},
		{Index: 5, Goldsmith: timed(sideGoldsmith, kindWarm, 100), Packer: &buildRun{Side: sidePacker, Kind: kindWarm, Error: "boom"}},
	}
	s := summarize(pairs)
	if s.Goldsmith != (spread{N: 5, Median: 112, Min: 100, Max: 132}) {
		t.Errorf("goldsmith %+v", s.Goldsmith)
	}
	if s.Packer != (spread{N: 4, Median: 123.5, Min: 101, Max: 152}) {
		t.Errorf("packer %+v", s.Packer)
	}
	// Pair ratios 1.198, 0.737, 0.754, 1.168: median (0.754+1.168)/2.
	if s.RatioMedianOfPairs == nil || math.Abs(*s.RatioMedianOfPairs-(101.0/134+132.0/113)/2) > 1e-9 {
		t.Errorf("median of pair ratios %v", s.RatioMedianOfPairs)
	}
	if s.RatioOfMedians == nil || math.Abs(*s.RatioOfMedians-112/123.5) > 1e-9 {
		t.Errorf("ratio of medians %v", s.RatioOfMedians)
	}
	if s.RebuildRatio == nil || s.RebuildRatio.N != 2 || math.Abs(s.RebuildRatio.Median-(30.0/121+28.0/112)/2) > 1e-9 {
		t.Errorf("rebuild ratio %+v", s.RebuildRatio)
	}
	if len(s.GoldsmithPhases) != 1 || s.GoldsmithPhases[0] != (phase{"Building", 34}) {
		t.Errorf("goldsmith phases %v", s.GoldsmithPhases)
	}
	if s.Failures["pair 5 packer warm"] != "boom" {
		t.Errorf("failures %v", s.Failures)
	}

	var b bytes.Buffer
	printReport(&b, pairs, s)
	for _, want := range []string{"median of pair ratios 0.96", "ratio of medians 0.91", "failed", "pair 5 packer warm: boom", "rebuild/warm median 0.25", "3.0/0.0/0.0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestSummarizeOneSide(t *testing.T) {
	s := summarize([]pairResult{{Index: 1, Packer: timed(sidePacker, kindWarm, 100)}})
	if s.RatioMedianOfPairs != nil || s.RatioOfMedians != nil || s.RebuildRatio != nil {
		t.Errorf("ratios without goldsmith runs: %+v", s)
	}
}
