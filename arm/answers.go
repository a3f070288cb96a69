package arm

import (
	"encoding/json"

	"github.com/goldsmith-dev/goldsmith/resource"
)

// The Client's answers: the fields the CLI reads, typed, in the shape this
// package renders them (the client asks for the latest api-versions), with
// the resource model's own types where the shape is theirs.

// Answer is the answer as the server sent it. Every answer type embeds it,
// so an answer encodes (JSON) as the server sent it, fields the client
// does not read included.
type Answer struct {
	Raw json.RawMessage `json:"-"`
}

func (a *Answer) keep(raw json.RawMessage) { a.Raw = raw }

// MarshalJSON writes the answer as sent.
func (a Answer) MarshalJSON() ([]byte, error) {
	if len(a.Raw) == 0 {
		return []byte("null"), nil
	}
	return a.Raw, nil
}

// Group is a resource group.
type Group struct {
	Answer
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

// ImageTemplate is an image template.
type ImageTemplate struct {
	Answer
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		ProvisioningState string                      `json:"provisioningState"`
		ProvisioningError *resource.ProvisioningError `json:"provisioningError"`
		LastRunStatus     *resource.LastRunStatus     `json:"lastRunStatus"`
	} `json:"properties"`
}

// RunOutput is a template's runOutput.
type RunOutput struct {
	Answer
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
		ArtifactID        string `json:"artifactId"`
		ArtifactURI       string `json:"artifactUri"`
	} `json:"properties"`
}

// Gallery is a gallery.
type Gallery struct {
	Answer
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

// GalleryImage is a gallery image definition.
type GalleryImage struct {
	Answer
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		OSType            string `json:"osType"`
		OSState           string `json:"osState"`
		HyperVGeneration  string `json:"hyperVGeneration"`
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

// Image is a managed image.
type Image struct {
	Answer
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		StorageProfile struct {
			OSDisk struct {
				OSType     string `json:"osType"`
				DiskSizeGB int    `json:"diskSizeGB"`
			} `json:"osDisk"`
		} `json:"storageProfile"`
		HyperVGeneration  string `json:"hyperVGeneration"`
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

// Operation is an asynchronous operation's status.
type Operation struct {
	Answer
	resource.Operation
}
