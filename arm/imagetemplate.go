package arm

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/template"
)

// identityLookup returns the principalId and clientId of a user-assigned
// identity, when goldsmith has it.
type identityLookup func(id string) (principalID, clientID string)

// renderTemplate writes an image template in the shape of apiVersion v:
// field names, enum casing and which properties exist all follow v, so a
// client sees the resource as AIB of that version shows it.
func renderTemplate(t resource.ImageTemplate, v template.APIVersion, ids identityLookup) map[string]any {
	out := map[string]any{
		"id":       t.ID,
		"name":     t.Name,
		"type":     resource.TypeImageTemplate,
		"location": t.Location,
	}
	if len(t.Tags) > 0 {
		out["tags"] = t.Tags
	}
	var props map[string]any
	if t.Template != nil {
		props = renderProperties(t.Template, v)
		if v.Identity && t.Template.Identity != nil {
			out["identity"] = renderIdentity(t.Template.Identity, ids)
		}
	} else {
		// Failed validation: show what was submitted.
		var doc map[string]any
		_ = json.Unmarshal(t.Submitted, &doc)
		for k, val := range doc {
			switch strings.ToLower(k) {
			case "properties":
				props, _ = val.(map[string]any)
			case "identity":
				if v.Identity {
					out["identity"] = val
				}
			}
		}
		if props == nil {
			props = map[string]any{}
		}
		for _, k := range []string{"provisioningState", "provisioningError", "lastRunStatus", "exactStagingResourceGroup"} {
			delete(props, k)
		}
	}
	props["provisioningState"] = t.ProvisioningState
	if t.ProvisioningError != nil {
		props["provisioningError"] = map[string]any{"provisioningErrorCode": t.ProvisioningError.Code, "message": t.ProvisioningError.Message}
	}
	if t.LastRunStatus != nil {
		props["lastRunStatus"] = renderRunStatus(*t.LastRunStatus, v)
	}
	if v.Validate && t.ExactStagingResourceGroup != "" {
		props["exactStagingResourceGroup"] = t.ExactStagingResourceGroup
	}
	out["properties"] = props
	if v.WrappedErrors {
		out["systemData"] = t.SystemData
	}
	return out
}

func renderIdentity(id *template.Identity, ids identityLookup) map[string]any {
	m := map[string]any{"type": id.Type}
	if len(id.UserAssignedIdentities) > 0 {
		uai := map[string]any{}
		for _, u := range id.UserAssignedIdentities {
			p, c := ids(u)
			entry := map[string]any{}
			if p != "" {
				entry["principalId"], entry["clientId"] = p, c
			}
			uai[u] = entry
		}
		m["userAssignedIdentities"] = uai
	}
	return m
}

func renderRunStatus(s resource.LastRunStatus, v template.APIVersion) map[string]any {
	state, sub := s.RunState, s.RunSubState
	if !v.IdentityRequired { // before 2020-02-14: no Canceling/Canceled
		switch state {
		case resource.RunCanceling:
			state = resource.RunRunning
		case resource.RunCanceled:
			state = resource.RunFailed
		}
	}
	switch {
	case sub == string(build.PhaseOptimizing) && !v.Optimize,
		sub == string(build.PhaseValidating) && !v.Validate:
		sub = string(build.PhaseCustomizing)
	}
	if !v.PowerShell { // 2018-02-01-preview: lower case
		state, sub = lowerFirst(state), lowerFirst(sub)
	}
	m := map[string]any{"startTime": s.StartTime.UTC().Format(time.RFC3339Nano), "runState": state, "runSubState": sub, "message": s.Message}
	if s.EndTime != nil {
		m["endTime"] = s.EndTime.UTC().Format(time.RFC3339Nano)
	}
	return m
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func renderProperties(t *template.Template, v template.APIVersion) map[string]any {
	p := t.Properties
	props := map[string]any{"source": renderSource(p.Source, v)}
	var cust []any
	for _, c := range p.Customize {
		cust = append(cust, renderCustomizer(c, v))
	}
	if cust != nil {
		props["customize"] = cust
	}
	dist := []any{}
	for _, d := range p.Distribute {
		dist = append(dist, renderDistributor(d, v))
	}
	props["distribute"] = dist
	if v.Validate && p.Validate != nil {
		val := map[string]any{
			"continueDistributeOnFailure": p.Validate.ContinueDistributeOnFailure,
			"sourceValidationOnly":        p.Validate.SourceValidationOnly,
		}
		var vs []any
		for _, c := range p.Validate.InVMValidations {
			vs = append(vs, renderCustomizer(c, v))
		}
		if vs != nil {
			val["inVMValidations"] = vs
		}
		props["validate"] = val
	}
	if v.Optimize && p.Optimize != nil {
		o := map[string]any{}
		if p.Optimize.VMBootState != "" {
			o["vmBoot"] = map[string]any{"state": p.Optimize.VMBootState}
		}
		if v.ReplicationMode && (p.Optimize.WorkloadState != "" || p.Optimize.WorkloadScript != "") {
			w := map[string]any{}
			setStr(w, "state", p.Optimize.WorkloadState)
			setStr(w, "scriptUri", p.Optimize.WorkloadScript)
			setStr(w, "sha256Checksum", p.Optimize.WorkloadSHA256)
			o["workload"] = w
		}
		props["optimize"] = o
	}
	if v.ErrorHandling && p.ErrorHandling != nil {
		e := map[string]any{}
		setStr(e, "onCustomizerError", p.ErrorHandling.OnCustomizerError)
		setStr(e, "onValidationError", p.ErrorHandling.OnValidationError)
		props["errorHandling"] = e
	}
	if v.VMProfile {
		props["buildTimeoutInMinutes"] = p.BuildTimeoutInMinutes
		vm := map[string]any{"vmSize": p.VMProfile.VMSize}
		if v.IdentityRequired {
			vm["osDiskSizeGB"] = p.VMProfile.OSDiskSizeGB
		}
		if v.VMIdentities && len(p.VMProfile.UserAssignedIdentities) > 0 {
			vm["userAssignedIdentities"] = p.VMProfile.UserAssignedIdentities
		}
		if n := p.VMProfile.VNetConfig; n != nil {
			vn := map[string]any{}
			if v.VNetSubnetID {
				setStr(vn, "subnetId", n.SubnetID)
				if v.ProxyVMSize {
					setStr(vn, "proxyVmSize", n.ProxyVMSize)
				}
				if v.ContainerSubnet {
					setStr(vn, "containerInstanceSubnetId", n.ContainerInstanceSubnetID)
				}
			} else {
				setStr(vn, "name", n.Name)
				setStr(vn, "subnetName", n.SubnetName)
				setStr(vn, "resourceGroupName", n.ResourceGroupName)
			}
			vm["vnetConfig"] = vn
		}
		props["vmProfile"] = vm
	}
	if v.Validate {
		setStr(props, "stagingResourceGroup", p.StagingResourceGroup)
	}
	if v.AutoRun {
		if p.AutoRun != nil {
			props["autoRun"] = map[string]any{"state": p.AutoRun.State}
		}
		if len(p.ManagedResourceTags) > 0 {
			props["managedResourceTags"] = p.ManagedResourceTags
		}
	}
	if v.DataDisks && len(p.AdditionalDataDisks) > 0 {
		var dd []any
		for _, d := range p.AdditionalDataDisks {
			dd = append(dd, map[string]any{"sizeGB": d.SizeGB})
		}
		props["additionalDataDisks"] = dd
	}
	return props
}

func setStr(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func renderSource(s template.Source, v template.APIVersion) map[string]any {
	m := map[string]any{"type": string(s.Type)}
	switch s.Type {
	case template.SourcePlatformImage:
		m["publisher"], m["offer"], m["sku"], m["version"] = s.Publisher, s.Offer, s.SKU, s.Version
		if v.PlanInfo && s.PlanInfo != nil {
			m["planInfo"] = s.PlanInfo
		}
		if v.VMIdentities {
			setStr(m, "exactVersion", s.ExactVersion)
		}
	case template.SourceManagedImage:
		m["imageId"] = s.ImageID
	case template.SourceSharedImageVersion:
		m["imageVersionId"] = s.ImageVersionID
		if v.TargetRegions {
			setStr(m, "exactVersion", s.ExactVersion)
		}
	case template.SourceISO:
		m[v.ISOField] = s.SourceURI
		m["sha256Checksum"] = s.SHA256Checksum
	}
	return m
}

func renderCustomizer(c template.Customizer, v template.APIVersion) map[string]any {
	typ := string(c.Type)
	if !v.PowerShell && c.Type == template.CustomizeShell {
		typ = "shell"
	}
	m := map[string]any{"type": typ}
	setStr(m, "name", c.Name)
	sum := func() {
		if v.ScriptField == "scriptUri" {
			m["sha256Checksum"] = c.SHA256Checksum
		}
	}
	switch c.Type {
	case template.CustomizeShell, template.CustomizePowerShell:
		if c.ScriptURI != "" {
			m[v.ScriptField] = c.ScriptURI
			sum()
		}
		if len(c.Inline) > 0 {
			m["inline"] = c.Inline
		}
		if c.Type == template.CustomizePowerShell {
			if v.Identity {
				m["runElevated"] = c.RunElevated
			}
			if v.PlanInfo {
				m["runAsSystem"] = c.RunAsSystem
			}
			if len(c.ValidExitCodes) > 0 {
				m["validExitCodes"] = c.ValidExitCodes
			}
		}
	case template.CustomizeFile:
		m["sourceUri"] = c.SourceURI
		m["destination"] = c.Destination
		sum()
	case template.CustomizeWindowsRestart:
		setStr(m, "restartCommand", c.RestartCommand)
		setStr(m, "restartCheckCommand", c.RestartCheckCommand)
		setStr(m, "restartTimeout", c.RestartTimeout)
	case template.CustomizeWindowsUpdate:
		setStr(m, "searchCriteria", c.SearchCriteria)
		if len(c.Filters) > 0 {
			m["filters"] = c.Filters
		}
		m["updateLimit"] = c.UpdateLimit
	}
	return m
}

func renderDistributor(d template.Distributor, v template.APIVersion) map[string]any {
	typ := string(d.Type)
	if !v.PowerShell && d.Type != template.DistributeVHD {
		typ = lowerFirst(typ)
	}
	m := map[string]any{"type": typ, "runOutputName": d.RunOutputName}
	if len(d.ArtifactTags) > 0 {
		m["artifactTags"] = d.ArtifactTags
	}
	switch d.Type {
	case template.DistributeManagedImage:
		m["imageId"], m["location"] = d.ImageID, d.Location
	case template.DistributeSharedImage:
		m["galleryImageId"] = d.GalleryImageID
		regions := d.ReplicationRegions
		if !v.TargetRegions && len(regions) == 0 {
			for _, r := range d.TargetRegions {
				regions = append(regions, r.Name)
			}
			if regions == nil {
				regions = []string{}
			}
		}
		if regions != nil {
			m["replicationRegions"] = regions
		}
		if v.PlanInfo {
			m["excludeFromLatest"] = d.ExcludeFromLatest
			setStr(m, "storageAccountType", d.StorageAccountType)
		}
		if v.TargetRegions {
			if len(d.TargetRegions) > 0 {
				var trs []any
				for _, r := range d.TargetRegions {
					tr := map[string]any{"name": r.Name, "replicaCount": max(r.ReplicaCount, 1)}
					setStr(tr, "storageAccountType", r.StorageAccountType)
					trs = append(trs, tr)
				}
				m["targetRegions"] = trs
			}
			if d.Versioning != nil {
				ver := map[string]any{"scheme": d.Versioning.Scheme}
				if d.Versioning.Major != nil {
					ver["major"] = *d.Versioning.Major
				}
				m["versioning"] = ver
			}
		}
		if v.ReplicationMode {
			setStr(m, "replicationMode", d.ReplicationMode)
		}
	case template.DistributeVHD:
		if v.TargetRegions {
			setStr(m, "uri", d.URI)
		}
	}
	return m
}
