package template

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/vmsize"
)

var (
	namePattern       = regexp.MustCompile(`^[A-Za-z0-9\-_.]{1,64}$`)
	namePatternNoDots = regexp.MustCompile(`^[A-Za-z0-9\-_]{1,64}$`) // before 2020-02-14
	sha256Pattern     = regexp.MustCompile(`^[0-9A-Fa-f]{64}$`)
	restartTimeoutPat = regexp.MustCompile(`^[0-9]+[smh]$`)
)

// Resource types an image template may say it is. The oldest previews'
// examples used the bare namespace.
const (
	ResourceType      = "Microsoft.VirtualMachineImages/imageTemplates"
	legacyResourceTyp = "Microsoft.VirtualMachineImages"
)

// readOnly properties appear when a user pastes a GET answer back; AIB ignores them.
var readOnlyProperties = []string{"provisioningState", "provisioningError", "lastRunStatus", "exactStagingResourceGroup"}

// ignoredTopLevel are ARM deployment-resource keys that are not the template's business.
var ignoredTopLevel = []string{"dependsOn", "comments", "condition", "id", "systemData", "etag", "scope", "$schema", "contentVersion"}

type decoder struct {
	rep  *report
	ver  APIVersion
	os   OSType
	opts Options
}

func (d *decoder) template(doc map[string]any) *Template {
	root := newObject(d.rep, d.ver, "", doc)
	t := &Template{APIVersion: d.ver.Name}
	root.lookup("apiVersion")
	for _, k := range ignoredTopLevel {
		root.lookup(k)
	}
	if typ, p := root.str("type"); typ != "" && !strings.EqualFold(typ, ResourceType) && !strings.EqualFold(typ, legacyResourceTyp) {
		d.rep.errorf(CodeInvalidTemplate, p, "type must be %q, not %q", ResourceType, typ)
	}
	var namePath string
	t.Name, namePath = root.str("name")
	if t.Name != "" {
		d.checkName(CodeInvalidParameter, namePath, "image template name", t.Name)
	}
	var locPath string
	t.Location, locPath = root.str("location")
	if strings.TrimSpace(t.Location) == "" {
		d.rep.errorf(CodeLocationRequired, locPath, "location is required: the region where the image is built")
	}
	t.Tags = root.tags("tags")
	d.identity(root, t)

	props := root.child("properties")
	if props == nil {
		var misplaced []string
		for _, k := range []string{"source", "customize", "distribute"} {
			if root.has(k) {
				misplaced = append(misplaced, k)
			}
		}
		if len(misplaced) > 0 {
			d.rep.errorf(CodeInvalidTemplate, "properties", "properties is required; %s was found at the top level of the template: move it into properties", strings.Join(misplaced, ", "))
		} else {
			d.rep.errorf(CodeInvalidTemplate, "properties", "properties is required: it holds source, customize and distribute")
		}
		root.done()
		return t
	}
	d.properties(props, &t.Properties)
	root.done()
	return t
}

func (d *decoder) identity(root *object, t *Template) {
	if !d.ver.Identity {
		root.notIn("identity", "2019-05-01-preview")
		return
	}
	id := root.child("identity")
	if id != nil && len(id.m) == 0 && !d.ver.IdentityRequired {
		id = nil // "identity": {} means none where identity is optional
	}
	if id == nil {
		if d.ver.IdentityRequired {
			d.rep.errorf(CodeInvalidTemplate, "identity", "identity is required from api-version 2020-02-14: give {\"type\": \"UserAssigned\", \"userAssignedIdentities\": {\"<identity resource id>\": {}}} or {\"type\": \"None\"}")
		}
		return
	}
	ident := &Identity{}
	typ, typPath := id.str("type")
	switch {
	case strings.EqualFold(typ, "UserAssigned"):
		ident.Type = "UserAssigned"
	case strings.EqualFold(typ, "None") && !d.ver.Preview:
		ident.Type = "None"
	case typ == "":
		d.rep.errorf(CodeInvalidTemplate, typPath, "identity.type is required: UserAssigned or None")
	default:
		d.rep.errorf(CodeInvalidTemplate, typPath, "identity.type %q is not supported: use UserAssigned or None", typ)
	}
	if uai := id.child("userAssignedIdentities"); uai != nil {
		for k := range uai.m {
			uai.used[k] = true
			if _, err := resourceid.ParseAs(k, resourceid.UserAssignedIdentity); err != nil {
				d.rep.errorf(CodeInvalidTemplate, join(uai.path, k), "%v", err)
			}
			ident.UserAssignedIdentities = append(ident.UserAssignedIdentities, k)
		}
		switch n := len(ident.UserAssignedIdentities); {
		case n > 1:
			d.rep.errorf(CodeInvalidTemplate, uai.path, "image templates support one user-assigned identity at most; %d were given", n)
		case n == 0 && ident.Type == "UserAssigned":
			d.rep.errorf(CodeInvalidTemplate, uai.path, "identity type UserAssigned needs one identity in userAssignedIdentities")
		case n > 0 && ident.Type == "None":
			d.rep.errorf(CodeInvalidTemplate, uai.path, "identity type None takes no userAssignedIdentities")
		}
	} else if ident.Type == "UserAssigned" {
		d.rep.errorf(CodeInvalidTemplate, join(id.path, "userAssignedIdentities"), "identity type UserAssigned needs one identity in userAssignedIdentities")
	}
	id.done()
	t.Identity = ident
}

func (d *decoder) properties(o *object, p *Properties) {
	for _, k := range readOnlyProperties {
		o.lookup(k)
	}
	if src := o.child("source"); src != nil {
		d.source(src, &p.Source)
	} else {
		d.rep.errorf(CodeBadSourceType, join(o.path, "source"), "source is required: the image the build starts from")
	}
	d.os = d.opts.osOf(p.Source)

	if list, _, ok := o.children("customize"); ok {
		names := map[string]string{}
		for _, c := range list {
			cust := d.customizer(c, false)
			d.uniqueName(names, c.path, cust.Name, "customizer")
			p.Customize = append(p.Customize, cust)
		}
	}
	if d.ver.Validate {
		if v := o.child("validate"); v != nil {
			p.Validate = d.validate(v)
			if p.Validate.SourceValidationOnly && len(p.Customize) > 0 {
				d.rep.warnf(join(v.path, "sourceValidationOnly"), "with sourceValidationOnly the source image is validated as it is: the %d customizers do not run and nothing is distributed", len(p.Customize))
			}
		}
		rg, rgPath := o.str("stagingResourceGroup")
		if rg != "" {
			if _, err := resourceid.ParseAs(rg, resourceid.ResourceGroup); err != nil {
				d.rep.errorf(CodeBadStagingResourceGroup, rgPath, "stagingResourceGroup: %v", err)
			}
			p.StagingResourceGroup = rg
		}
	} else {
		o.notIn("validate", "2022-02-14")
		o.notIn("stagingResourceGroup", "2022-02-14")
	}
	if d.ver.Optimize {
		if v := o.child("optimize"); v != nil {
			p.Optimize = &Optimize{}
			if vb := v.child("vmBoot"); vb != nil {
				state, sp := vb.str("state")
				p.Optimize.VMBootState = d.enum(sp, state, "Enabled", "Disabled")
				vb.done()
			}
			if !d.ver.ReplicationMode {
				v.notIn("workload", "2025-10-01")
			} else if wl := v.child("workload"); wl != nil {
				state, sp := wl.str("state")
				p.Optimize.WorkloadState = d.enum(sp, state, "Enabled", "Disabled")
				var up string
				p.Optimize.WorkloadScript, up = wl.str("scriptUri")
				if p.Optimize.WorkloadScript != "" {
					d.checkURI(CodeInvalidTemplate, up, p.Optimize.WorkloadScript)
				}
				p.Optimize.WorkloadSHA256, up = wl.str("sha256Checksum")
				d.checkChecksum(CodeInvalidTemplate, up, p.Optimize.WorkloadSHA256)
				wl.done()
			}
			v.done()
		}
	} else {
		o.notIn("optimize", "2022-07-01")
	}

	if list, listPath, ok := o.children("distribute"); ok && len(list) > 0 {
		names := map[string]string{}
		for _, c := range list {
			dist := d.distributor(c)
			if dist.RunOutputName != "" {
				key := strings.ToLower(dist.RunOutputName)
				if first, dup := names[key]; dup {
					d.rep.errorf(CodeInvalidTemplate, join(c.path, "runOutputName"), "runOutputName %q is already used by %s: each distribute target needs its own", dist.RunOutputName, first)
				} else {
					names[key] = c.path
				}
			}
			p.Distribute = append(p.Distribute, dist)
		}
	} else {
		d.rep.errorf(CodeBadDistributeType, listPath, "distribute is required: at least one target (managedImage, sharedImage or VHD)")
	}

	if d.ver.ErrorHandling {
		if eh := o.child("errorHandling"); eh != nil {
			p.ErrorHandling = &ErrorHandling{}
			v, vp := eh.str("onCustomizerError")
			p.ErrorHandling.OnCustomizerError = d.enum(vp, v, "cleanup", "abort")
			v, vp = eh.str("onValidationError")
			p.ErrorHandling.OnValidationError = d.enum(vp, v, "cleanup", "abort")
			eh.done()
		}
	} else {
		o.notIn("errorHandling", "2023-07-01")
	}

	if d.ver.VMProfile {
		if n, np, ok := o.integer("buildTimeoutInMinutes"); ok {
			if n < 0 || n > MaxBuildTimeoutMinutes {
				d.rep.errorf(CodeInvalidTemplate, np, "buildTimeoutInMinutes must be between 0 and %d (0 means the default, %d); got %d", MaxBuildTimeoutMinutes, DefaultBuildTimeoutMinutes, n)
			}
			p.BuildTimeoutInMinutes = n
		}
		if vp := o.child("vmProfile"); vp != nil {
			d.vmProfile(vp, &p.VMProfile)
		}
	} else {
		o.notIn("buildTimeoutInMinutes", "2019-05-01-preview")
		o.notIn("vmProfile", "2019-05-01-preview")
	}

	if d.ver.AutoRun {
		if ar := o.child("autoRun"); ar != nil {
			state, sp := ar.str("state")
			p.AutoRun = &AutoRun{State: d.enum(sp, state, "Enabled", "Disabled")}
			ar.done()
		}
		p.ManagedResourceTags = o.tags("managedResourceTags")
	} else {
		o.notIn("autoRun", "2024-02-01")
		o.notIn("managedResourceTags", "2024-02-01")
	}
	if d.ver.DataDisks {
		if list, _, ok := o.children("additionalDataDisks"); ok {
			for _, dd := range list {
				n, np, ok := dd.integer("sizeGB")
				if !ok || n <= 0 {
					d.rep.errorf(CodeInvalidTemplate, np, "sizeGB must be a positive size in GiB")
				}
				dd.done()
				p.AdditionalDataDisks = append(p.AdditionalDataDisks, DataDisk{SizeGB: n})
			}
		}
	} else {
		o.notIn("additionalDataDisks", "2025-10-01")
	}
	o.done()
}

// enum checks an optional enumerated value and returns its canonical spelling.
func (d *decoder) enum(path, v string, allowed ...string) string {
	if v == "" {
		return ""
	}
	canon, ok := oneOf(v, allowed...)
	if !ok {
		d.rep.errorf(CodeInvalidTemplate, path, "%q is not allowed here: use one of %s", v, strings.Join(allowed, ", "))
	}
	return canon
}

func (d *decoder) checkName(code, path, what, name string) {
	if msg := NameProblem(name, d.ver); msg != "" {
		d.rep.errorf(code, path, "%s %q %s", what, name, msg)
	}
}

// NameProblem says what is wrong with the name of an image template, a
// runOutput or a trigger in api-version ver, or "" when nothing is. The
// service checks names in request URLs with it too.
func NameProblem(name string, ver APIVersion) string {
	if ver.DottedNames {
		if !namePattern.MatchString(name) {
			return "must be 1-64 characters of letters, digits, '-', '_' and '.'"
		}
	} else if !namePatternNoDots.MatchString(name) {
		return fmt.Sprintf("must be 1-64 characters of letters, digits, '-' and '_' in api-version %s", ver.Name)
	}
	return ""
}

func (d *decoder) uniqueName(seen map[string]string, path, name, what string) {
	if name == "" {
		return
	}
	key := strings.ToLower(name)
	if first, dup := seen[key]; dup {
		d.rep.errorf(CodeInvalidTemplate, join(path, "name"), "%s name %q is already used by %s: names must be unique", what, name, first)
		return
	}
	seen[key] = path
}

func (d *decoder) checkURI(code, path, uri string) {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		scheme := ""
		if err == nil && u.Scheme != "" {
			scheme = fmt.Sprintf(" (scheme %q)", u.Scheme)
		}
		d.rep.errorf(code, path, "%q is not an http or https URL%s: scripts and files must be downloadable over HTTP(S)", uri, scheme)
	}
}

func (d *decoder) checkChecksum(code, path, sum string) {
	if sum != "" && !sha256Pattern.MatchString(sum) {
		d.rep.errorf(code, path, "sha256Checksum must be 64 hexadecimal digits (the output of sha256sum), got %q", sum)
	}
}

func (d *decoder) source(o *object, s *Source) {
	typ, typPath := o.str("type")
	canon, ok := oneOf(typ, SourcePlatformImage, SourceManagedImage, SourceSharedImageVersion, SourceISO)
	switch {
	case typ == "":
		d.rep.errorf(CodeBadSourceType, typPath, "source.type is required: one of %s", d.sourceTypes())
		o.done()
		return
	case !ok:
		d.rep.errorf(CodeBadSourceType, typPath, "source type %q is not supported: use one of %s", typ, d.sourceTypes())
		o.done()
		return
	case canon == SourceISO:
		d.rep.errorf(CodeBadSourceType, typPath, "%s", isoRefusal(d.ver))
	case canon == SourceManagedImage && !d.ver.ManagedImageSrc:
		d.rep.errorf(CodeBadSourceType, typPath, "ManagedImage sources arrived in api-version 2019-02-01-preview; %s does not have them", d.ver.Name)
	case canon == SourceSharedImageVersion && !d.ver.SharedImageVer:
		d.rep.errorf(CodeBadSourceType, typPath, "SharedImageVersion sources arrived in api-version 2019-05-01-preview; %s does not have them", d.ver.Name)
	}
	s.Type = canon
	switch canon {
	case SourcePlatformImage:
		for _, f := range []struct {
			name string
			dst  *string
		}{{"publisher", &s.Publisher}, {"offer", &s.Offer}, {"sku", &s.SKU}, {"version", &s.Version}} {
			v, p := o.str(f.name)
			if strings.TrimSpace(v) == "" {
				d.rep.errorf(CodeBadPIRSource, p, "PlatformImage source needs %s (as in `az vm image list`)", f.name)
			}
			*f.dst = v
		}
		if strings.EqualFold(s.Version, "latest") && !d.ver.LatestVersionAllowed {
			d.rep.errorf(CodeBadPIRSource, join(o.path, "version"), "version cannot be 'latest' in api-version %s: give a concrete version", d.ver.Name)
		}
		if !d.ver.PlanInfo {
			o.notIn("planInfo", "2020-02-14")
		} else if pi := o.child("planInfo"); pi != nil {
			s.PlanInfo = &PlanInfo{}
			var pp [3]string
			s.PlanInfo.PlanName, pp[0] = pi.str("planName")
			s.PlanInfo.PlanProduct, pp[1] = pi.str("planProduct")
			s.PlanInfo.PlanPublisher, pp[2] = pi.str("planPublisher")
			for i, v := range []string{s.PlanInfo.PlanName, s.PlanInfo.PlanProduct, s.PlanInfo.PlanPublisher} {
				if v == "" {
					d.rep.errorf(CodeBadPIRSource, pp[i], "planInfo needs planName, planProduct and planPublisher")
				}
			}
			pi.done()
		}
		o.lookup("exactVersion") // read-only
	case SourceManagedImage:
		id, p := o.str("imageId")
		if id == "" {
			d.rep.errorf(CodeBadManagedImageSource, p, "ManagedImage source needs imageId: %s", resourceid.ManagedImage.Example)
		} else if _, err := resourceid.ParseAs(id, resourceid.ManagedImage); err != nil {
			d.rep.errorf(CodeBadManagedImageSource, p, "imageId: %v", err)
		}
		s.ImageID = id
	case SourceSharedImageVersion:
		id, p := o.str("imageVersionId")
		if id == "" {
			d.rep.errorf(CodeBadSharedImageVersionSrc, p, "SharedImageVersion source needs imageVersionId: %s", resourceid.GalleryImageVersion.Example)
		} else if _, err := resourceid.ParseAs(id, resourceid.GalleryImageVersion); err != nil {
			d.rep.errorf(CodeBadSharedImageVersionSrc, p, "imageVersionId: %v", err)
		}
		s.ImageVersionID = id
		o.lookup("exactVersion") // read-only
	case SourceISO:
		uri, p := o.str(d.ver.ISOField)
		if uri == "" {
			d.rep.errorf(CodeBadISOSource, p, "ISO source needs %s: the download URL of the ISO", d.ver.ISOField)
		} else {
			d.checkURI(CodeBadISOSource, p, uri)
		}
		s.SourceURI = uri
		sum, sp := o.str("sha256Checksum")
		if sum == "" {
			d.rep.errorf(CodeBadISOSource, sp, "ISO source needs sha256Checksum: the ISO's published SHA-256")
		}
		d.checkChecksum(CodeBadISOSource, sp, sum)
		s.SHA256Checksum = sum
	}
	o.done()
}

// ISO sources. AIB's template reference (shared/spec) gives two dates: from
// 31 March 2020 the resource provider no longer accepts image templates with
// ISO sources, and from 30 April 2020 it no longer builds them. Only the
// preview api-versions (2018-02-01-preview to 2019-05-01-preview) ever had
// ISO sources, and every run today comes after both dates, so an ISO source
// is refused at every api-version: by `template validate`, by the service at
// submission and by `goldsmith build`, all through this one check. The
// preview api-versions still read the ISO fields, so their mistakes are
// reported too.
const (
	ISONoLongerAccepted = "31 March 2020"
	ISONoLongerBuilt    = "30 April 2020"
)

func isoRefusal(ver APIVersion) string {
	if ver.ISO {
		return fmt.Sprintf("ISO sources are no longer accepted: AIB stopped accepting templates with ISO sources on %s and building them on %s; use a PlatformImage source (for RHEL, Red Hat's BYOS images)",
			ISONoLongerAccepted, ISONoLongerBuilt)
	}
	return fmt.Sprintf("ISO sources are not part of api-version %s: only the preview api-versions had them, until AIB stopped accepting them on %s; use a PlatformImage source",
		ver.Name, ISONoLongerAccepted)
}

func (d *decoder) sourceTypes() string {
	types := []string{"PlatformImage"}
	if d.ver.ManagedImageSrc {
		types = append(types, "ManagedImage")
	}
	if d.ver.SharedImageVer {
		types = append(types, "SharedImageVersion")
	}
	return strings.Join(types, ", ")
}

// customizer reads one customizer, or one in-VM validator when validator is set.
func (d *decoder) customizer(o *object, validator bool) Customizer {
	codeBadType, codeUnsupported, codeNoScript, what := CodeBadCustomizerType, CodeUnsupportedCustomizerType, CodeNoCustomizerScript, "customizer"
	if validator {
		codeBadType, codeUnsupported, codeNoScript, what = CodeBadValidatorType, CodeUnsupportedValidatorType, CodeNoValidatorScript, "validator"
	}
	var c Customizer
	c.Name, _ = o.str("name")
	typ, typPath := o.str("type")
	allowed := d.customizerTypes(validator)
	canon, ok := oneOf(typ, allowed...)
	if typ == "" || !ok {
		if known, isKnown := oneOf(typ, CustomizeShell, CustomizePowerShell, CustomizeFile, CustomizeWindowsRestart, CustomizeWindowsUpdate); isKnown {
			d.rep.errorf(codeUnsupported, typPath, "%s type %s is not supported in api-version %s: use one of %s", what, known, d.ver.Name, joinTypes(allowed))
		} else if typ == "" {
			d.rep.errorf(codeBadType, typPath, "%s type is required: one of %s", what, joinTypes(allowed))
		} else {
			d.rep.errorf(codeBadType, typPath, "%s type %q is not supported: use one of %s", what, typ, joinTypes(allowed))
		}
		o.done()
		return c
	}
	c.Type = canon
	switch {
	case d.os == OSLinux && (canon == CustomizeWindowsRestart || canon == CustomizeWindowsUpdate):
		d.rep.errorf(codeUnsupported, typPath, "%s %s only runs on Windows, and the source image is Linux; to reboot Linux, run `sudo reboot` in a Shell %s", what, canon, what)
	case d.os == OSWindows && canon == CustomizeShell:
		d.rep.errorf(codeUnsupported, typPath, "%s Shell only runs on Linux, and the source image is Windows; use PowerShell", what)
	}

	switch canon {
	case CustomizeShell, CustomizePowerShell:
		d.script(o, &c, codeNoScript, what)
		if canon == CustomizePowerShell {
			c.ValidExitCodes, _ = o.ints("validExitCodes")
			c.RunElevated = o.boolean("runElevated")
			if d.ver.PlanInfo {
				c.RunAsSystem = o.boolean("runAsSystem")
			} else {
				o.notIn("runAsSystem", "2020-02-14")
			}
			if c.RunAsSystem && !c.RunElevated {
				d.rep.errorf(CodeInvalidTemplate, join(o.path, "runAsSystem"), "runAsSystem needs runElevated: true")
			}
		}
	case CustomizeFile:
		src, sp := o.str("sourceUri")
		if src == "" {
			d.rep.errorf(codeNoScript, sp, "File %s needs sourceUri: the file to download", what)
		} else {
			d.checkURI(CodeInvalidTemplate, sp, src)
		}
		c.SourceURI = src
		dst, dp := o.str("destination")
		switch {
		case dst == "":
			d.rep.errorf(CodeInvalidTemplate, dp, "File %s needs destination: the full path and file name in the image", what)
		case d.os == OSLinux && !strings.HasPrefix(dst, "/tmp/"):
			d.rep.errorf(CodeInvalidTemplate, dp, "on Linux the File %s can only write under /tmp (got %q); copy it elsewhere with a Shell %s", what, dst, what)
		}
		c.Destination = dst
		c.SHA256Checksum, sp = o.str("sha256Checksum")
		d.checkChecksum(CodeInvalidTemplate, sp, c.SHA256Checksum)
	case CustomizeWindowsRestart:
		c.RestartCommand, _ = o.str("restartCommand")
		c.RestartCheckCommand, _ = o.str("restartCheckCommand")
		var p string
		c.RestartTimeout, p = o.str("restartTimeout")
		if c.RestartTimeout != "" && !restartTimeoutPat.MatchString(c.RestartTimeout) {
			d.rep.errorf(CodeInvalidTemplate, p, "restartTimeout %q must be a number and a unit, such as 5m or 2h", c.RestartTimeout)
		}
	case CustomizeWindowsUpdate:
		c.SearchCriteria, _ = o.str("searchCriteria")
		c.Filters, _ = o.strings("filters")
		if n, p, ok := o.integer("updateLimit"); ok {
			if n < 0 {
				d.rep.errorf(CodeInvalidTemplate, p, "updateLimit must not be negative")
			}
			c.UpdateLimit = n
		}
	}
	o.done()
	return c
}

func joinTypes(ts []CustomizerType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func (d *decoder) customizerTypes(validator bool) []CustomizerType {
	if validator {
		if d.ver.TargetRegions {
			return []CustomizerType{CustomizeShell, CustomizePowerShell, CustomizeFile}
		}
		return []CustomizerType{CustomizeShell, CustomizePowerShell}
	}
	out := []CustomizerType{CustomizeShell}
	if d.ver.PowerShell {
		out = append(out, CustomizePowerShell)
	}
	if d.ver.WindowsRestart {
		out = append(out, CustomizeWindowsRestart)
	}
	if d.ver.FileCustomizer {
		out = append(out, CustomizeFile)
	}
	if d.ver.WindowsUpdate {
		out = append(out, CustomizeWindowsUpdate)
	}
	return out
}

// script reads the script URI or inline commands of a Shell or PowerShell step.
func (d *decoder) script(o *object, c *Customizer, codeNoScript, what string) {
	uri, up := o.str(d.ver.ScriptField)
	other := "scriptUri"
	if d.ver.ScriptField == "scriptUri" {
		other = "script"
	}
	if uri == "" && o.has(other) {
		_, op, _ := o.lookup(other)
		d.rep.errorf(codeNoScript, op, "in api-version %s the script's URI goes in %q, not %q", d.ver.Name, d.ver.ScriptField, other)
	}
	inline, ip := o.strings("inline")
	switch {
	case uri != "" && len(inline) > 0:
		d.rep.errorf(CodeInvalidTemplate, ip, "give either %s or inline, not both", d.ver.ScriptField)
	case uri == "" && len(inline) == 0 && !o.has(other):
		d.rep.errorf(codeNoScript, o.path, "%s %q has no script: give %s (a URL) or inline (commands)", c.Type, c.Name, d.ver.ScriptField)
	}
	if uri != "" {
		d.checkURI(CodeInvalidTemplate, up, uri)
	}
	c.ScriptURI, c.Inline = uri, inline
	sum, sp := o.str("sha256Checksum")
	d.checkChecksum(CodeInvalidTemplate, sp, sum)
	if sum != "" && uri == "" {
		d.rep.warnf(sp, "sha256Checksum only applies to %s and is ignored for inline commands", d.ver.ScriptField)
	}
	c.SHA256Checksum = sum
}

func (d *decoder) validate(o *object) *Validate {
	v := &Validate{
		ContinueDistributeOnFailure: o.boolean("continueDistributeOnFailure"),
		SourceValidationOnly:        o.boolean("sourceValidationOnly"),
	}
	if list, _, ok := o.children("inVMValidations"); ok {
		names := map[string]string{}
		for _, c := range list {
			val := d.customizer(c, true)
			d.uniqueName(names, c.path, val.Name, "validator")
			v.InVMValidations = append(v.InVMValidations, val)
		}
	}
	if v.SourceValidationOnly && len(v.InVMValidations) == 0 {
		d.rep.errorf(CodeInvalidTemplate, join(o.path, "inVMValidations"), "sourceValidationOnly validates the source image with inVMValidations, and there are none")
	}
	o.done()
	return v
}

func (d *decoder) vmProfile(o *object, v *VMProfile) {
	var sp string
	v.VMSize, sp = o.str("vmSize")
	if v.VMSize != "" {
		// The build sizes its VM by the same lookup.
		if _, err := vmsize.Lookup(v.VMSize); err != nil {
			d.rep.errorf(CodeInvalidTemplate, sp, "%v", err)
		}
	}
	if n, p, ok := o.integer("osDiskSizeGB"); ok {
		if n < 0 {
			d.rep.errorf(CodeInvalidTemplate, p, "osDiskSizeGB must be 0 (keep the source's size) or more, got %d", n)
		}
		v.OSDiskSizeGB = n
	}
	if d.ver.VMIdentities {
		ids, p := o.strings("userAssignedIdentities")
		for i, id := range ids {
			if _, err := resourceid.ParseAs(id, resourceid.UserAssignedIdentity); err != nil {
				d.rep.errorf(CodeInvalidTemplate, fmt.Sprintf("%s[%d]", p, i), "%v", err)
			}
		}
		v.UserAssignedIdentities = ids
	} else {
		o.notIn("userAssignedIdentities", "2021-10-01")
	}
	if vn := o.child("vnetConfig"); vn != nil {
		cfg := &VNetConfig{}
		if d.ver.VNetSubnetID {
			var p string
			cfg.SubnetID, p = vn.str("subnetId")
			if cfg.SubnetID != "" {
				if _, err := resourceid.ParseAs(cfg.SubnetID, resourceid.Subnet); err != nil {
					d.rep.errorf(CodeInvalidTemplate, p, "subnetId: %v", err)
				}
			}
			if d.ver.ProxyVMSize {
				cfg.ProxyVMSize, _ = vn.str("proxyVmSize")
			}
			if d.ver.ContainerSubnet {
				cfg.ContainerInstanceSubnetID, p = vn.str("containerInstanceSubnetId")
				if cfg.ContainerInstanceSubnetID != "" {
					if _, err := resourceid.ParseAs(cfg.ContainerInstanceSubnetID, resourceid.Subnet); err != nil {
						d.rep.errorf(CodeInvalidTemplate, p, "containerInstanceSubnetId: %v", err)
					}
				}
			}
		} else {
			cfg.Name, _ = vn.str("name")
			cfg.SubnetName, _ = vn.str("subnetName")
			cfg.ResourceGroupName, _ = vn.str("resourceGroupName")
		}
		vn.done()
		v.VNetConfig = cfg
	}
	o.done()
}

func (d *decoder) distributor(o *object) Distributor {
	var dist Distributor
	typ, typPath := o.str("type")
	allowed := []DistributeType{DistributeManagedImage, DistributeSharedImage}
	if d.ver.VHD {
		allowed = append(allowed, DistributeVHD)
	}
	canon, ok := oneOf(typ, allowed...)
	name, np := o.str("runOutputName")
	dist.RunOutputName = name
	switch {
	case name == "":
		d.rep.errorf(CodeInvalidTemplate, np, "runOutputName is required: a unique name for this target's run output")
	default:
		d.checkName(CodeInvalidTemplate, np, "runOutputName", name)
	}
	dist.ArtifactTags = o.tags("artifactTags")
	if tags := o.tags("tags"); tags != nil && dist.ArtifactTags == nil {
		dist.ArtifactTags = tags // the preview documents' spelling
	}
	switch {
	case typ == "":
		d.rep.errorf(CodeBadDistributeType, typPath, "distribute type is required: managedImage, sharedImage or VHD")
		o.done()
		return dist
	case !ok && strings.EqualFold(typ, "VHD"):
		d.rep.errorf(CodeBadDistributeType, typPath, "VHD distribution arrived in api-version 2019-02-01-preview; %s has managedImage and sharedImage", d.ver.Name)
		o.done()
		return dist
	case !ok:
		d.rep.errorf(CodeBadDistributeType, typPath, "distribute type %q is not supported: use managedImage, sharedImage or VHD", typ)
		o.done()
		return dist
	}
	dist.Type = canon
	switch canon {
	case DistributeManagedImage:
		id, p := o.str("imageId")
		if id == "" {
			d.rep.errorf(CodeInvalidTemplate, p, "managedImage distribution needs imageId: %s", resourceid.ManagedImage.Example)
		} else if _, err := resourceid.ParseAs(id, resourceid.ManagedImage); err != nil {
			d.rep.errorf(CodeInvalidTemplate, p, "imageId: %v", err)
		}
		dist.ImageID = id
		dist.Location, p = o.str("location")
		if dist.Location == "" {
			d.rep.errorf(CodeInvalidTemplate, p, "managedImage distribution needs location: the region of the image")
		}
	case DistributeSharedImage:
		d.sharedImage(o, &dist)
	case DistributeVHD:
		if d.ver.TargetRegions {
			var p string
			dist.URI, p = o.str("uri")
			if dist.URI != "" {
				d.checkURI(CodeInvalidTemplate, p, dist.URI)
			}
		} else {
			o.notIn("uri", "2022-07-01")
		}
	}
	o.done()
	return dist
}

func (d *decoder) sharedImage(o *object, dist *Distributor) {
	id, p := o.str("galleryImageId")
	switch {
	case id == "":
		d.rep.errorf(CodeBadSharedImageDistribute, p, "sharedImage distribution needs galleryImageId: %s", resourceid.GalleryImage.Example)
	default:
		if _, err := resourceid.ParseAs(id, resourceid.GalleryImage); err != nil {
			// A version id pins the version to create.
			if _, verr := resourceid.ParseAs(id, resourceid.GalleryImageVersion); verr != nil {
				d.rep.errorf(CodeBadSharedImageDistribute, p, "galleryImageId: %v", err)
			}
		}
	}
	dist.GalleryImageID = id
	explicit := ""
	if vid, err := resourceid.ParseAs(id, resourceid.GalleryImageVersion); err == nil {
		// The version to create, named: distribution creates it by this rule.
		explicit = vid.Name()
		if _, ok := ParseGalleryVersion(explicit); !ok {
			d.rep.errorf(CodeBadSharedImageDistribute, p, "the gallery image version %q must be MAJOR.MINOR.PATCH with 32-bit integers", explicit)
		}
	}
	var rp string
	dist.ReplicationRegions, rp = o.strings("replicationRegions")
	for i, r := range dist.ReplicationRegions {
		if strings.TrimSpace(r) == "" {
			d.rep.errorf(CodeBadSharedImageDistribute, fmt.Sprintf("%s[%d]", rp, i), "a replication region must not be empty")
		}
	}
	storage := []string{"Standard_LRS", "Standard_ZRS"}
	if d.ver.TargetRegions {
		storage = append(storage, "Premium_LRS")
	}
	if d.ver.PlanInfo {
		dist.ExcludeFromLatest = o.boolean("excludeFromLatest")
		sat, sp := o.str("storageAccountType")
		dist.StorageAccountType = d.enumCode(CodeBadSharedImageDistribute, sp, sat, storage...)
	} else {
		o.notIn("excludeFromLatest", "2020-02-14")
		o.notIn("storageAccountType", "2020-02-14")
	}
	if !d.ver.TargetRegions {
		if len(dist.ReplicationRegions) == 0 {
			d.rep.errorf(CodeBadSharedImageDistribute, rp, "sharedImage distribution needs replicationRegions, including the gallery's region")
		}
		o.notIn("targetRegions", "2022-07-01")
		o.notIn("versioning", "2022-07-01")
		return
	}
	if list, tp, ok := o.children("targetRegions"); ok {
		if len(list) == 0 {
			d.rep.errorf(CodeBadSharedImageDistribute, tp, "targetRegions must list at least one region when given")
		}
		for _, tr := range list {
			var r TargetRegion
			var np string
			r.Name, np = tr.str("name")
			if r.Name == "" {
				d.rep.errorf(CodeBadSharedImageDistribute, np, "a target region needs a name")
			}
			if n, cp, ok := tr.integer("replicaCount"); ok {
				if n < 1 || n > 100 {
					d.rep.errorf(CodeBadSharedImageDistribute, cp, "replicaCount must be between 1 and 100, got %d", n)
				}
				r.ReplicaCount = n
			}
			sat, sp := tr.str("storageAccountType")
			r.StorageAccountType = d.enumCode(CodeBadSharedImageDistribute, sp, sat, storage...)
			tr.done()
			dist.TargetRegions = append(dist.TargetRegions, r)
		}
		if len(dist.ReplicationRegions) > 0 {
			d.rep.errorf(CodeBadSharedImageDistribute, tp, "give targetRegions or replicationRegions, not both")
		}
		if dist.StorageAccountType != "" {
			d.rep.errorf(CodeBadSharedImageDistribute, join(o.path, "storageAccountType"), "storageAccountType goes with replicationRegions; with targetRegions give it per region")
		}
	}
	if v := o.child("versioning"); v != nil {
		if explicit != "" {
			d.rep.errorf(CodeBadSharedImageDistribute, v.path, "galleryImageId names the version %s and versioning is set too: use one of them", explicit)
		}
		ver := &Versioning{}
		scheme, sp := v.str("scheme")
		ver.Scheme = d.enumCode(CodeBadSharedImageDistribute, sp, scheme, "Latest", "Source")
		if scheme == "" {
			d.rep.errorf(CodeBadSharedImageDistribute, sp, "versioning needs scheme: Latest or Source")
		}
		if n, mp, ok := v.integer("major"); ok {
			if ver.Scheme != "Latest" {
				d.rep.errorf(CodeBadSharedImageDistribute, mp, "versioning.major only applies to the Latest scheme")
			} else if n < -1 {
				d.rep.errorf(CodeBadSharedImageDistribute, mp, "versioning.major must be -1 (unset) or more, got %d", n)
			}
			ver.Major = &n
		}
		v.done()
		dist.Versioning = ver
	}
	if d.ver.ReplicationMode {
		mode, mp := o.str("replicationMode")
		dist.ReplicationMode = d.enumCode(CodeBadSharedImageDistribute, mp, mode, "Full", "Shallow")
	} else {
		o.notIn("replicationMode", "2025-10-01")
	}
}

// ParseGalleryVersion reads a gallery image version name, MAJOR.MINOR.PATCH
// with non-negative 32-bit integers.
func ParseGalleryVersion(s string) ([3]int64, bool) {
	var out [3]int64
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

func (d *decoder) enumCode(code, path, v string, allowed ...string) string {
	if v == "" {
		return ""
	}
	canon, ok := oneOf(v, allowed...)
	if !ok {
		d.rep.errorf(code, path, "%q is not allowed here: use one of %s", v, strings.Join(allowed, ", "))
	}
	return canon
}
