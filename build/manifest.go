package build

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Manifest records what a build did, for audit and reproduction.
type Manifest struct {
	Template   ManifestTemplate  `json:"template"`
	Source     ManifestSource    `json:"source"`
	OSType     template.OSType   `json:"osType,omitempty"`
	Accel      string            `json:"accelerator,omitempty"`
	Steps      []ManifestStep    `json:"customizers"`
	Validators []ManifestStep    `json:"validators,omitempty"`
	Generalize string            `json:"generalize,omitempty"`
	Layers     *ManifestLayers   `json:"layers,omitempty"`
	Phases     []ManifestPhase   `json:"phases"`
	Outputs    []Output          `json:"outputs"`
	Packages   []ManifestPackage `json:"packages,omitempty"`
	Started    time.Time         `json:"started"`
	Finished   time.Time         `json:"finished"`
	Result     string            `json:"result"` // Succeeded, Failed, Canceled
	Message    string            `json:"message,omitempty"`
}

// ManifestTemplate identifies the template.
type ManifestTemplate struct {
	Name       string `json:"name,omitempty"`
	APIVersion string `json:"apiVersion"`
	Location   string `json:"location"`
}

// ManifestSource is the resolved source image.
type ManifestSource struct {
	Type          template.SourceType `json:"type"`
	URN           string              `json:"urn,omitempty"`
	ExactVersion  string              `json:"exactVersion,omitempty"`
	SubstituteFor string              `json:"substituteFor,omitempty"`
	SHA256        string              `json:"sha256,omitempty"`
}

// ManifestStep is one customizer or validator.
type ManifestStep struct {
	Name     string                  `json:"name"`
	Type     template.CustomizerType `json:"type"`
	URI      string                  `json:"uri,omitempty"`
	SHA256   string                  `json:"sha256,omitempty"`
	Seconds  float64                 `json:"seconds"`
	ExitCode int                     `json:"exitCode"`
	Rebooted bool                    `json:"rebooted,omitempty"`
	Reused   bool                    `json:"reused,omitempty"` // restored from the layer cache, not run
	Error    string                  `json:"error,omitempty"`
}

// ManifestLayers says what the layer cache did for the run.
type ManifestLayers struct {
	// Restored is the key of the layer the build VM was restored from;
	// ReusedCustomizers how many customizers it includes (not run again).
	Restored          string          `json:"restored,omitempty"`
	ReusedCustomizers int             `json:"reusedCustomizers"`
	Built             []ManifestLayer `json:"built,omitempty"`
}

// ManifestLayer is a layer the run saved.
type ManifestLayer struct {
	Step    int     `json:"step"` // customizers it includes; 0: the booted source
	Key     string  `json:"key"`
	Seconds float64 `json:"seconds"` // how long saving it paused the VM
}

// ManifestPhase is one phase's timing.
type ManifestPhase struct {
	Phase   Phase   `json:"phase"`
	Seconds float64 `json:"seconds"`
}

// ManifestPackage is one installed package of the result.
type ManifestPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func newManifest(t *template.Template) *Manifest {
	return &Manifest{
		Template: ManifestTemplate{Name: t.Name, APIVersion: t.APIVersion, Location: t.Location},
		Source:   ManifestSource{Type: t.Properties.Source.Type},
		Steps:    []ManifestStep{},
		Outputs:  []Output{},
		Started:  time.Now().UTC(),
	}
}

func manifestSteps(steps []customize.Step) []ManifestStep {
	out := make([]ManifestStep, 0, len(steps))
	for _, s := range steps {
		ms := ManifestStep{Name: s.Name, Type: s.Type, URI: s.URI, SHA256: s.SHA256,
			Seconds: s.Duration().Seconds(), ExitCode: s.ExitCode, Rebooted: s.Rebooted, Reused: s.Reused}
		if s.Err != nil {
			ms.Error = s.Err.Error()
		}
		out = append(out, ms)
	}
	return out
}

// phaseTimer records phase durations for the manifest.
func (m *Manifest) phase(p Phase, d time.Duration) {
	m.Phases = append(m.Phases, ManifestPhase{Phase: p, Seconds: d.Seconds()})
}

func (m *Manifest) finish(r *run, err error) {
	m.Finished = time.Now().UTC()
	m.Outputs = append([]Output{}, r.outputs...)
	switch {
	case err == nil:
		m.Result = "Succeeded"
	case isCanceled(err):
		m.Result, m.Message = "Canceled", err.Error()
	default:
		m.Result, m.Message = "Failed", err.Error()
	}
}

func (m *Manifest) write(path string) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("build: manifest: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("build: manifest: %w", err)
	}
	return os.Rename(tmp, path)
}
