package arm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	aib "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/virtualmachineimagebuilder/armvirtualmachineimagebuilder/v2"
)

// goldsmithCloud is goldsmith at url as an Azure cloud: ARM and, under
// /adfs, its authority.
func goldsmithCloud(url string) cloud.Configuration {
	return cloud.Configuration{ActiveDirectoryAuthorityHost: url + "/", Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		cloud.ResourceManager: {Endpoint: url, Audience: url + "/"},
	}}
}

func sdkOptions(s *site) *azarm.ClientOptions {
	return &azarm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud:     goldsmithCloud(s.URL),
			Transport: s.client(),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableRPRegistration: true,
	}
}

// principalCredential makes a service principal with access to sub and
// returns azidentity's ClientSecretCredential for it, pointed at goldsmith
// as an ADFS authority (tenant "adfs") with instance discovery off: the
// SDK gets its tokens from goldsmith's token endpoint, as az login does.
func principalCredential(t *testing.T, s *site, sub string) azcore.TokenCredential {
	t.Helper()
	p, secret, err := s.Auth.Directory().Create(context.Background(), "sdk", []string{sub})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewClientSecretCredential("adfs", p.ClientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            policy.ClientOptions{Cloud: goldsmithCloud(s.URL), Transport: s.client()},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

var poll = &runtime.PollUntilDoneOptions{Frequency: time.Second}

// attempt holds a call's result until must checks its error.
type attempt[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) attempt[T] { return attempt[T]{v, err} }

func (a attempt[T]) must(t *testing.T, what string) T {
	t.Helper()
	if a.err != nil {
		t.Fatalf("%s: %v", what, a.err)
	}
	return a.v
}

func respCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// TestSDKFlow drives the whole flow with the official Azure SDK for Go
// (armresources, armcompute v6, armvirtualmachineimagebuilder v2.3.0)
// against a goldsmith server: resource group, gallery, image definition,
// identity, template (with a downloaded, checksummed script), run, poll to
// completion, runOutputs, the managed image and the gallery version read
// back through armcompute, the VHD's signed link, the log, deletion.
//
// Its runs use the stand-in executor (resource.StandInExecutor), not the
// build engine: no VM boots and the disks are small files the stand-in
// writes. So it proves the API as the SDKs see it, staging, distribution
// bookkeeping and cleanup, and asserts nothing about the image itself; the
// real engine behind the same API (a bootable disk, a fixed VHD, the
// customizer's output in the log) is TestDistributionEndToEnd's.
func TestSDKFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("SDK flow polls once a second")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startSite(t, siteOptions{Executor: standIn(800 * time.Millisecond), TLS: true})
	const sub = "00000000-0000-0000-0000-00000000aaaa"
	cred := principalCredential(t, s, sub)
	opts := sdkOptions(s)

	script := "#!/bin/sh\necho hello from goldsmith\n"
	sum := sha256.Sum256([]byte(script))
	files := fileServer(t, map[string]string{"/setup.sh": script})

	groups := try(armresources.NewResourceGroupsClient(sub, cred, opts)).must(t, "groups client")
	try(groups.CreateOrUpdate(ctx, "Images-RG", armresources.ResourceGroup{Location: to.Ptr("westus2")}, nil)).must(t, "create group")

	galleries := try(armcompute.NewGalleriesClient(sub, cred, opts)).must(t, "galleries client")
	gp := try(galleries.BeginCreateOrUpdate(ctx, "images-rg", "goldGallery", armcompute.Gallery{
		Location: to.Ptr("westus2"), Properties: &armcompute.GalleryProperties{Description: to.Ptr("test gallery")}}, nil)).must(t, "create gallery")
	gal := try(gp.PollUntilDone(ctx, poll)).must(t, "create gallery (poll)")
	if got := *gal.Properties.ProvisioningState; got != armcompute.GalleryProvisioningStateSucceeded {
		t.Fatalf("gallery provisioningState = %s", got)
	}
	defs := try(armcompute.NewGalleryImagesClient(sub, cred, opts)).must(t, "gallery images client")
	dp := try(defs.BeginCreateOrUpdate(ctx, "Images-RG", "goldGallery", "debian12", armcompute.GalleryImage{
		Location: to.Ptr("westus2"),
		Properties: &armcompute.GalleryImageProperties{
			OSType: to.Ptr(armcompute.OperatingSystemTypesLinux), OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
			HyperVGeneration: to.Ptr(armcompute.HyperVGenerationV1),
			Identifier:       &armcompute.GalleryImageIdentifier{Publisher: to.Ptr("goldsmith"), Offer: to.Ptr("debian"), SKU: to.Ptr("12")},
		}}, nil)).must(t, "create definition")
	def := try(dp.PollUntilDone(ctx, poll)).must(t, "create definition (poll)")

	// A user-assigned identity, through the generic resources client.
	identityID := "/subscriptions/" + sub + "/resourceGroups/Images-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aibIdentity"
	generic := try(armresources.NewClient(sub, cred, opts)).must(t, "resources client")
	ip := try(generic.BeginCreateOrUpdateByID(ctx, identityID, "2023-01-31", armresources.GenericResource{Location: to.Ptr("westus2")}, nil)).must(t, "create identity")
	try(ip.PollUntilDone(ctx, poll)).must(t, "create identity (poll)")

	templates := try(aib.NewVirtualMachineImageTemplatesClient(sub, cred, opts)).must(t, "templates client")
	imageID := "/subscriptions/" + sub + "/resourceGroups/Images-RG/providers/Microsoft.Compute/images/debian12-golden"
	tmpl := aib.ImageTemplate{
		Location: to.Ptr("westus2"),
		Tags:     map[string]*string{"team": to.Ptr("platform")},
		Identity: &aib.ImageTemplateIdentity{Type: to.Ptr(aib.ResourceIdentityTypeUserAssigned),
			UserAssignedIdentities: map[string]*aib.UserAssignedIdentity{identityID: {}}},
		Properties: &aib.ImageTemplateProperties{
			Source: &aib.ImageTemplatePlatformImageSource{Type: to.Ptr("PlatformImage"), Publisher: to.Ptr("Debian"),
				Offer: to.Ptr("debian-12"), SKU: to.Ptr("12-gen2"), Version: to.Ptr("latest")},
			Customize: []aib.ImageTemplateCustomizerClassification{
				&aib.ImageTemplateShellCustomizer{Type: to.Ptr("Shell"), Name: to.Ptr("setup"), ScriptURI: to.Ptr(files.URL + "/setup.sh"),
					SHA256Checksum: to.Ptr(hex.EncodeToString(sum[:]))},
				&aib.ImageTemplateShellCustomizer{Type: to.Ptr("Shell"), Name: to.Ptr("inline"), Inline: []*string{to.Ptr("echo done")}},
			},
			Distribute: []aib.ImageTemplateDistributorClassification{
				&aib.ImageTemplateManagedImageDistributor{Type: to.Ptr("ManagedImage"), RunOutputName: to.Ptr("managed"),
					ImageID: to.Ptr(imageID), Location: to.Ptr("westus2"), ArtifactTags: map[string]*string{"source": to.Ptr("goldsmith")}},
				&aib.ImageTemplateSharedImageDistributor{Type: to.Ptr("SharedImage"), RunOutputName: to.Ptr("gallery"),
					GalleryImageID: def.ID, TargetRegions: []*aib.TargetRegion{{Name: to.Ptr("westus2"), ReplicaCount: to.Ptr[int32](1)}},
					Versioning: &aib.DistributeVersionerLatest{Scheme: to.Ptr("Latest"), Major: to.Ptr[int32](1)}},
				&aib.ImageTemplateVhdDistributor{Type: to.Ptr("VHD"), RunOutputName: to.Ptr("vhd")},
			},
			VMProfile:             &aib.ImageTemplateVMProfile{VMSize: to.Ptr("Standard_D2s_v3"), OSDiskSizeGB: to.Ptr[int32](30)},
			BuildTimeoutInMinutes: to.Ptr[int32](30),
		},
	}
	cp := try(templates.BeginCreateOrUpdate(ctx, "Images-RG", "Debian12-Golden", tmpl, nil)).must(t, "create template")
	created := try(cp.PollUntilDone(ctx, poll)).must(t, "create template (poll)")
	p := created.Properties
	if *p.ProvisioningState != aib.ProvisioningStateSucceeded {
		t.Fatalf("provisioningState = %s (%v)", *p.ProvisioningState, p.ProvisioningError)
	}
	if p.ExactStagingResourceGroup == nil || !strings.Contains(*p.ExactStagingResourceGroup, "/resourceGroups/IT_Images-RG_Debian12-Golden_") {
		t.Fatalf("exactStagingResourceGroup = %v", p.ExactStagingResourceGroup)
	}
	if *created.Name != "Debian12-Golden" || *created.Identity.Type != aib.ResourceIdentityTypeUserAssigned {
		t.Fatalf("template read back wrong: name %s identity %v", *created.Name, created.Identity)
	}
	if len(p.Customize) != 2 || len(p.Distribute) != 3 {
		t.Fatalf("template read back with %d customizers and %d targets", len(p.Customize), len(p.Distribute))
	}
	if sh, ok := p.Customize[0].(*aib.ImageTemplateShellCustomizer); !ok || *sh.ScriptURI != files.URL+"/setup.sh" {
		t.Fatalf("customizer 0 read back as %#v", p.Customize[0])
	}
	if ident := created.Identity.UserAssignedIdentities[identityID]; ident == nil || ident.PrincipalID == nil {
		t.Errorf("identity %s read back without its principalId: %+v", identityID, ident)
	}
	stagingGroup := (*p.ExactStagingResourceGroup)[strings.LastIndex(*p.ExactStagingResourceGroup, "/")+1:]
	sg := try(groups.Get(ctx, stagingGroup, nil)).must(t, "get staging group")
	if sg.ManagedBy == nil || !strings.EqualFold(*sg.ManagedBy, *created.ID) {
		t.Errorf("staging group managedBy = %v, want the template", sg.ManagedBy)
	}

	// PUT over an existing template is a conflict.
	_, err := templates.BeginCreateOrUpdate(ctx, "Images-RG", "debian12-golden", tmpl, nil)
	if code := respCode(err); code != "Conflict" {
		t.Errorf("second PUT: err %v, want Conflict", err)
	}
	// The template is listed by group and by subscription.
	pager := templates.NewListByResourceGroupPager("images-rg", nil)
	page := try(pager.NextPage(ctx)).must(t, "list by group")
	if len(page.Value) != 1 {
		t.Errorf("list by group: %d templates", len(page.Value))
	}
	// PATCH the tags (and read the rest back unchanged).
	up := try(templates.BeginUpdate(ctx, "Images-RG", "Debian12-Golden", aib.ImageTemplateUpdateParameters{
		Tags: map[string]*string{"team": to.Ptr("images")}}, nil)).must(t, "update tags")
	upd := try(up.PollUntilDone(ctx, poll)).must(t, "update tags (poll)")
	if *upd.Tags["team"] != "images" || len(upd.Properties.Distribute) != 3 {
		t.Errorf("after PATCH tags = %v, %d targets", upd.Tags, len(upd.Properties.Distribute))
	}

	rp := try(templates.BeginRun(ctx, "Images-RG", "Debian12-Golden", nil)).must(t, "run")
	try(rp.PollUntilDone(ctx, poll)).must(t, "run (poll)")
	got := try(templates.Get(ctx, "Images-RG", "Debian12-Golden", nil)).must(t, "get template")
	lrs := got.Properties.LastRunStatus
	if lrs == nil || *lrs.RunState != aib.RunStateSucceeded || lrs.EndTime == nil {
		t.Fatalf("lastRunStatus = %+v", lrs)
	}

	outs := map[string]*aib.RunOutput{}
	op := templates.NewListRunOutputsPager("Images-RG", "Debian12-Golden", nil)
	for op.More() {
		pg := try(op.NextPage(ctx)).must(t, "list runOutputs")
		for _, o := range pg.Value {
			outs[*o.Name] = o
		}
	}
	if len(outs) != 3 {
		t.Fatalf("%d runOutputs, want 3", len(outs))
	}
	for name, o := range outs {
		if *o.Properties.ProvisioningState != aib.ProvisioningStateSucceeded {
			t.Errorf("runOutput %s is %s", name, *o.Properties.ProvisioningState)
		}
	}
	mo := try(templates.GetRunOutput(ctx, "Images-RG", "Debian12-Golden", "managed", nil)).must(t, "get runOutput")
	if !strings.EqualFold(*mo.Properties.ArtifactID, imageID) {
		t.Errorf("managed runOutput artifactId = %s", *mo.Properties.ArtifactID)
	}

	// The managed image, through armcompute.
	images := try(armcompute.NewImagesClient(sub, cred, opts)).must(t, "images client")
	img := try(images.Get(ctx, "Images-RG", "debian12-golden", nil)).must(t, "get image")
	if *img.Properties.StorageProfile.OSDisk.OSType != armcompute.OperatingSystemTypesLinux ||
		*img.Properties.StorageProfile.OSDisk.OSState != armcompute.OperatingSystemStateTypesGeneralized ||
		*img.Properties.ProvisioningState != "Succeeded" || *img.Tags["source"] != "goldsmith" {
		t.Errorf("image read back as %+v", img.Properties.StorageProfile.OSDisk)
	}
	// The gallery version, through armcompute.
	versions := try(armcompute.NewGalleryImageVersionsClient(sub, cred, opts)).must(t, "versions client")
	vp := versions.NewListByGalleryImagePager("Images-RG", "goldGallery", "debian12", nil)
	vpage := try(vp.NextPage(ctx)).must(t, "list versions")
	if len(vpage.Value) != 1 || *vpage.Value[0].Name != "1.0.0" {
		t.Fatalf("gallery versions = %d (first %v), want one 1.0.0", len(vpage.Value), vpage.Value)
	}
	ver := try(versions.Get(ctx, "Images-RG", "goldGallery", "debian12", "1.0.0", nil)).must(t, "get version")
	if *ver.Properties.ProvisioningState != armcompute.GalleryProvisioningStateSucceeded ||
		*ver.Properties.PublishingProfile.TargetRegions[0].Name != "westus2" {
		t.Errorf("version read back as %+v", ver.Properties)
	}
	if !strings.EqualFold(*outs["gallery"].Properties.ArtifactID, *ver.ID) {
		t.Errorf("gallery runOutput artifactId %s, version id %s", *outs["gallery"].Properties.ArtifactID, *ver.ID)
	}

	// The VHD's artifactUri is a signed link that serves the run's output
	// without a token (what is in it is the executor's business).
	vhdURI := *outs["vhd"].Properties.ArtifactURI
	if vhd := download(t, s, vhdURI); len(vhd) == 0 {
		t.Errorf("VHD from %s: empty", vhdURI)
	}
	// The customization log, kept in the staging group, with the phases the
	// service writes whatever the executor.
	logText := string(download(t, s, s.URL+"/goldsmith/v1"+*got.ID+"/runs/latest/log"))
	for _, want := range []string{"==> Building", "==> Customizing", "==> Distributing"} {
		if !strings.Contains(logText, want) {
			t.Errorf("customization.log lacks %q:\n%s", want, logText)
		}
	}

	// A second run makes the next version (Latest scheme, major 1).
	rp = try(templates.BeginRun(ctx, "Images-RG", "Debian12-Golden", nil)).must(t, "run again")
	try(rp.PollUntilDone(ctx, poll)).must(t, "run again (poll)")
	try(versions.Get(ctx, "Images-RG", "goldGallery", "debian12", "1.0.1", nil)).must(t, "get version 1.0.1")

	// Delete the template: the staging group and its files go with it.
	stagingDir := filepath.Join(s.DataDir, "staging", sub, strings.ToLower(stagingGroup))
	if !fileExists(stagingDir) {
		t.Fatalf("staging directory %s missing", stagingDir)
	}
	delp := try(templates.BeginDelete(ctx, "Images-RG", "Debian12-Golden", nil)).must(t, "delete template")
	try(delp.PollUntilDone(ctx, poll)).must(t, "delete template (poll)")
	if _, err := templates.Get(ctx, "Images-RG", "Debian12-Golden", nil); respCode(err) != "ResourceNotFound" {
		t.Errorf("GET after delete: %v", err)
	}
	if _, err := groups.Get(ctx, stagingGroup, nil); respCode(err) != "ResourceGroupNotFound" {
		t.Errorf("staging group after delete: %v", err)
	}
	if fileExists(stagingDir) {
		t.Errorf("staging directory %s still exists", stagingDir)
	}
	// The images stay; deleting them removes their disks (blobs in the
	// region stores, content-addressed, so identical disks are one file).
	imgFiles := regionBlobs(s.DataDir)
	if len(imgFiles) == 0 {
		t.Errorf("no disks in the region stores for the image and two versions")
	}
	ddp := try(images.BeginDelete(ctx, "Images-RG", "debian12-golden", nil)).must(t, "delete image")
	try(ddp.PollUntilDone(ctx, poll)).must(t, "delete image (poll)")
	for _, v := range []string{"1.0.0", "1.0.1"} {
		vdp := try(versions.BeginDelete(ctx, "Images-RG", "goldGallery", "debian12", v, nil)).must(t, "delete version")
		try(vdp.PollUntilDone(ctx, poll)).must(t, "delete version (poll)")
	}
	if imgFiles = regionBlobs(s.DataDir); len(imgFiles) != 0 {
		t.Errorf("artifact files left after deleting images and versions: %v", imgFiles)
	}
	// Deleting the group takes the rest.
	gdp := try(groups.BeginDelete(ctx, "Images-RG", nil)).must(t, "delete group")
	try(gdp.PollUntilDone(ctx, poll)).must(t, "delete group (poll)")
	if _, err := galleries.Get(ctx, "Images-RG", "goldGallery", nil); err == nil {
		t.Errorf("gallery still there after its group was deleted")
	}
	if _, err := groups.Get(ctx, "Images-RG", nil); respCode(err) != "ResourceGroupNotFound" {
		t.Errorf("group after delete: %v", err)
	}
}

// regionBlobs lists the disks in every region's store.
func regionBlobs(dataDir string) []string {
	files, _ := filepath.Glob(filepath.Join(dataDir, "regions", "*", "sha256", "*", "*"))
	return files
}

func download(t *testing.T, s *site, url string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := s.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b.String())
	}
	return b.Bytes()
}
