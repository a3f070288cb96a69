package disk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Partition is one GPT entry. Offsets and sizes are in bytes.
type Partition struct {
	Start int64  // 0 in a request: right after the previous one
	Size  int64  // 0 in a request: up to the end of the disk
	Type  string // GPT type GUID
	UUID  string // partition GUID; "" lets the tool pick one
	Name  string
}

// Partitioner writes a GPT partition table into a disk image file.
type Partitioner interface {
	// PartitionGPT writes a new GPT with parts and returns the table as
	// written, with every Start and Size filled in.
	PartitionGPT(ctx context.Context, path string, parts []Partition) ([]Partition, error)
}

// Sfdisk is the Partitioner that runs util-linux sfdisk on the image file
// (no loop device needed).
type Sfdisk struct {
	Run Runner
}

// PartitionGPT implements Partitioner.
func (s Sfdisk) PartitionGPT(ctx context.Context, path string, parts []Partition) ([]Partition, error) {
	var script strings.Builder
	script.WriteString("label: gpt\nunit: sectors\n")
	for i, p := range parts {
		if p.Start%SectorSize != 0 || p.Size%SectorSize != 0 {
			return nil, fmt.Errorf("partition %d: start %d / size %d not sector-aligned", i+1, p.Start, p.Size)
		}
		var f []string
		if p.Start > 0 {
			f = append(f, fmt.Sprintf("start=%d", p.Start/SectorSize))
		}
		if p.Size > 0 {
			f = append(f, fmt.Sprintf("size=%d", p.Size/SectorSize))
		}
		f = append(f, "type="+p.Type)
		if p.UUID != "" {
			f = append(f, "uuid="+p.UUID)
		}
		if p.Name != "" {
			if strings.ContainsAny(p.Name, "\",\n") {
				return nil, fmt.Errorf("partition %d: bad name %q", i+1, p.Name)
			}
			f = append(f, fmt.Sprintf("name=%q", p.Name))
		}
		script.WriteString(strings.Join(f, ", ") + "\n")
	}
	if _, err := s.Run.Run(ctx, Cmd{Name: "sfdisk", Args: []string{"--quiet", "--no-reread", "--no-tell-kernel", path}, Stdin: strings.NewReader(script.String())}); err != nil {
		return nil, err
	}
	return s.Read(ctx, path)
}

// Read returns the partition table of the image file, via `sfdisk --json`.
func (s Sfdisk) Read(ctx context.Context, path string) ([]Partition, error) {
	out, err := s.Run.Run(ctx, Cmd{Name: "sfdisk", Args: []string{"--json", path}})
	if err != nil {
		return nil, err
	}
	return parseSfdiskJSON(out)
}

func parseSfdiskJSON(b []byte) ([]Partition, error) {
	var doc struct {
		PartitionTable struct {
			Label      string `json:"label"`
			SectorSize int64  `json:"sectorsize"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
				UUID  string `json:"uuid"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("sfdisk --json: %w", err)
	}
	pt := doc.PartitionTable
	if pt.Label != "gpt" {
		return nil, fmt.Errorf("sfdisk --json: label %q, want gpt", pt.Label)
	}
	ss := pt.SectorSize
	if ss == 0 {
		ss = SectorSize
	}
	parts := make([]Partition, 0, len(pt.Partitions))
	for _, p := range pt.Partitions {
		parts = append(parts, Partition{Start: p.Start * ss, Size: p.Size * ss, Type: p.Type, UUID: p.UUID, Name: p.Name})
	}
	return parts, nil
}
