package template_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/internal/corpus"
	"github.com/goldsmith-dev/goldsmith/template"
)

// The corpus's counts, asserted so that a change in what goldsmith accepts
// is a decision someone makes, not a drift nobody sees. 292 files: 15
// parameter files, 10 files broken as committed and 267 templates, checked
// on their own and 14 more times with the parameter files they take.
const (
	corpusFiles          = 292
	corpusParameterFiles = 15
	corpusBroken         = 10
	corpusChecked        = 281 // templates, and templates with a parameter file
	corpusValid          = 214
	corpusRefused        = 67 // each in corpusExpectedInvalid
)

// Before deploy-time values became warnings and ISO sources were refused at
// every api-version it was 224 valid and 57 refused: reference() and the
// template's own link made 3 more files valid (jamasten_AzureImageBuilder x2,
// nataliakon_AzureImageBuilder-POC), 12 files with ISO sources at the
// preview api-versions are now refused, and one whose galleryImageId pins
// the version "PLACEHOLDER_VERSION" is refused as distribution refuses it.

// TestCorpus runs every real template through Load (what `template validate`
// runs): files broken as committed must be refused with a clear message;
// every other file, with its documented placeholders filled in, must
// validate unless it is listed in corpusExpectedInvalid with the reason AIB
// would refuse it too. Nothing may panic. In CI a missing corpus fails.
func TestCorpus(t *testing.T) {
	c := corpus.Load(t)
	counts := map[string]int{}
	reasons := map[string][]string{}
	for _, k := range c.Cases {
		if k.Broken {
			counts["broken as committed"]++
			err := loadErr(k.Data, k.Options)
			if err == nil {
				t.Errorf("%s is broken as committed but was accepted", k.Name)
				continue
			}
			if msg := err.Error(); len(msg) < 20 {
				t.Errorf("%s: message too terse to help: %q", k.Name, msg)
			}
			counts["broken as committed: refused"]++
			// With its placeholders filled in, it must still not crash.
			_ = loadErr(k.Filled, k.Options)
			continue
		}
		counts["templates checked"]++
		err := loadErr(k.Data, k.Options)
		why, expected := corpusExpectedInvalid[k.Name]
		switch {
		case err == nil && expected:
			t.Errorf("%s validates, but corpusExpectedInvalid says AIB refuses it (%s): remove the entry or fix the check", k.Name, why)
		case err == nil:
			counts["valid"]++
		case expected:
			counts["invalid, as AIB would say too"]++
			reasons[why] = append(reasons[why], k.Name)
		default:
			counts["INVALID (unexpected)"]++
			t.Errorf("%s: %v", k.Name, err)
		}
	}
	for _, n := range []struct {
		what      string
		got, want int
	}{
		{"files", c.Files, corpusFiles},
		{"parameter files", c.ParameterFiles, corpusParameterFiles},
		{"files not in the manifest", c.NotInManifest, 0},
		{"broken as committed", counts["broken as committed"], corpusBroken},
		{"broken as committed: refused", counts["broken as committed: refused"], corpusBroken},
		{"templates checked", counts["templates checked"], corpusChecked},
		{"valid", counts["valid"], corpusValid},
		{"refused, as AIB would", counts["invalid, as AIB would say too"], corpusRefused},
	} {
		if n.got != n.want {
			t.Errorf("%s: %d, want %d", n.what, n.got, n.want)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-50s %d", k, counts[k])
	}
	for why, names := range reasons {
		t.Logf("expected invalid (%s): %s", why, strings.Join(names, ", "))
	}
}

// loadErr loads a corpus file and returns its first error, if any.
func loadErr(data []byte, opts template.LoadOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PANIC: %v", r)
		}
	}()
	found, err := template.Load(data, opts)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range found {
		if f.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Resource, f.Err))
		}
	}
	return errors.Join(errs...)
}

// corpusISO: AIB stopped accepting ISO sources on 31 March 2020 (see
// template.ISONoLongerAccepted).
const corpusISO = "ISO source, which AIB stopped accepting on 31 March 2020"

// corpusExpectedInvalid lists corpus files that stay invalid after their
// placeholders are filled in, each with the reason AIB refuses them too.
var corpusExpectedInvalid = map[string]string{
	"shuubhh_group3poc/image-template.json":                                          "galleryImageId names the version PLACEHOLDER_VERSION, a pipeline token left in the file; a gallery image version is MAJOR.MINOR.PATCH",
	"bradcstevens_azvmimagebuilder/armTemplates/rhel_iso_1customize_mdi_deploy.json": corpusISO,
	"bradcstevens_azvmimagebuilder/armTemplates/rhel_iso_image_deploy_sigmdi.json":   corpusISO,
	"danielsollondon_azvmimagebuilder/_history/03554a511a/quickquickstarts/2_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences/helloImageTemplateRhelBYOS.json":                          corpusISO,
	"danielsollondon_azvmimagebuilder/_history/8542e1545a/quickquickstarts/2_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences/helloImageTemplateRhelBYOS.json":                          corpusISO,
	"danielsollondon_azvmimagebuilder/_history/8542e1545a/quickquickstarts/3_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences_SIG/helloImageTemplateRhelByosSig.json":                   corpusISO,
	"danielsollondon_azvmimagebuilder/_history/ac0a489203/quickquickstarts/3_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences_SIG/helloImageTemplateRhelByosSig.json":                   corpusISO,
	"danielsollondon_azvmimagebuilder/armTemplates/rhel_iso_image_deploy_mdi.json":                                                                                                                 corpusISO,
	"danielsollondon_azvmimagebuilder/armTemplates/rhel_iso_image_deploy_sigmdi.json":                                                                                                              corpusISO,
	"danielsollondon_azvmimagebuilder/quickquickstarts/2_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences/helloImageTemplateRhelBYOS.json":                                              corpusISO,
	"danielsollondon_azvmimagebuilder/quickquickstarts/3_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences_SIG/helloImageTemplateRhelBYOSSIG.json":                                       corpusISO,
	"danielsollondon_azvmimagebuilder/quickquickstarts/3_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences_SIG/helloImageTemplateRhelByosSig.json":                                       corpusISO,
	"danielsollondon_azvmimagebuilder/quickquickstarts/6_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences_to_VHD/helloImageTemplateRhelBYOSVhd.json":                                    corpusISO,
	"bradcstevens_azvmimagebuilder/armTemplates/03_pir_image_deploy.json with bradcstevens_azvmimagebuilder/armTemplates/03_pir_image_params.json":                                                 "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/03_pir_image_deploy.json with bradcstevens_azvmimagebuilder/armTemplates/rhel_iso_1customize_mdi_params.json":                                      "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_params_sig.json":                                 "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_params_sigmdi.json":                              "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with bradcstevens_azvmimagebuilder/armTemplates/rhel_iso_image_params_sigmdi.json":                                "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_params_sig.json":                           "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_params_sigmdi.json":                        "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with danielsollondon_azvmimagebuilder/armTemplates/rhel_iso_image_params_mdi.json":                             "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with danielsollondon_azvmimagebuilder/armTemplates/rhel_iso_image_params_sigmdi.json":                          "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/solutions/3_rhel_sig_vhd/rhel_iso_image_deploy_sigmdi.json with danielsollondon_azvmimagebuilder/solutions/3_rhel_sig_vhd/rhel_iso_image_params_sigmdi.json": "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"345Nathan-Harrison_Testing/Image-Builder/Template/Win11Template.json":                                                                                                                         "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"345Nathan-Harrison_Testing/_history/7ed230028b/Image-Builder/Win11Template.json":                                                                                                              "no identity at api-version 2020-02-14 or later, where AIB requires one",
	"Azure_azvmimagebuilder/quickquickstarts/4_Creating_a_Custom_Linux_Image_to_VHD/helloImageTemplateVHD.json":                                                                                    "no identity at api-version 2020-02-14 or later, where AIB requires one",
	"Everink_AzureImageBuilder/AzureImageBuilder.json":                                                                                                                              "galleryImageId built from parameters left empty or malformed",
	"Martijn125_AVD/armTemplateWVD.json":                                                                                                                                            "parameter declarations without a valid type (ARM refuses the deployment)",
	"TheCloudTheory_Blog/content/1/image-template-sub.json":                                                                                                                         "identity object without a type",
	"TheCloudTheory_Blog/content/1/image-template.json":                                                                                                                             "identity object without a type",
	"achawla5_PSScripts/Templates/AddOfficeAppsTemplate.json":                                                                                                                       "two customizers share a name; AIB requires unique names",
	"achawla5_PSScripts/Templates/RemoveOfficeAppsTemplate.json":                                                                                                                    "two customizers share a name; AIB requires unique names",
	"achawla5_PSScripts/_history/4357acc0e8/Templates/TestTemplate.json":                                                                                                            "empty location",
	"adybfadel_azure-image-builder/json/linux-vm-image-template.json":                                                                                                               "empty location",
	"adybfadel_azure-image-builder/json/ubuntu1804-image-template.json":                                                                                                             "empty location",
	"aniisch_AIB_config/helloImageTemplateLinux.json":                                                                                                                               "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"bradcstevens_azvmimagebuilder/imageTemplates/rhel73_iso_1customize_sigmdi.json":                                                                                                "ISO source whose URL and checksum parameters are left empty",
	"bradcstevens_azvmimagebuilder/imageTemplates/ubuntu1804_mp_1customize_mdi.json":                                                                                                "Shell customizer whose script parameter is left empty",
	"casa-de-vops_azvmimagebuilder/_history/1b4c5679a2/templates/1_Creating_a_Custom_Linux_Shared_Image_Gallery_Image/GoldenImage.json":                                             "identity type UserAssigned without an identity id",
	"casa-de-vops_azvmimagebuilder/_history/551dd6dd2d/templates/0_Creating_a_Custom_Linux_Managed_Image/helloImageTemplateLinux.json":                                              "identity type UserAssigned without an identity id",
	"casa-de-vops_azvmimagebuilder/quickquickstarts/0_Creating_a_Custom_Linux_Managed_Image/helloImageTemplateLinux.json":                                                           "identity type UserAssigned without an identity id",
	"casa-de-vops_azvmimagebuilder/quickquickstarts/1_Creating_a_Custom_Linux_Shared_Image_Gallery_Image/helloImageTemplateforSIG.json":                                             "identity type UserAssigned without an identity id",
	"cramboeck_AzureImageBuilder/templates/1_image_template.json":                                                                                                                   "no identity at api-version 2020-02-14 or later, where AIB requires one",
	"danielsollondon_azvmimagebuilder/_history/2834d0fcbc/solutions/3_rhel_sig_vhd/rhel_iso_image_deploy_sigvhd.json":                                                               "galleryImageId built from parameters left empty or malformed",
	"danielsollondon_azvmimagebuilder/_history/8542e1545a/quickquickstarts/6_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences_to_VHD/helloImageTemplateRhelBYOSVhd.json": "VHD distribution in api-version 2018-02-01-preview, which has none",
	"danielsollondon_azvmimagebuilder/_history/856f878f9f/quickquickstarts/2_Creating_a_Custom_Win_Shared_Image_Gallery_Image_from_SIG/helloImageTemplateforSIGfromWinSIG.json":     "the deployment resource has no name (ARM requires one)",
	"danielsollondon_azvmimagebuilder/rawImageBuilderConfigTemplates/rhel73_iso_1customize_sigmdi.json":                                                                             "ISO source whose URL and checksum parameters are left empty",
	"danielsollondon_azvmimagebuilder/rawImageBuilderConfigTemplates/ubuntu1804_mp_1customize_mdi.json":                                                                             "Shell customizer whose script parameter is left empty",
	"danielsollondon_azvmimagebuilder/solutions/3_Building_Images_Azure_Stack_Public/rhel_iso_image_deploy_sigvhd.json":                                                             "galleryImageId built from parameters left empty or malformed",
	"danielsollondon_azvmimagebuilder/solutions/3_rhel_sig_vhd/rhel_iso_image_deploy_sigmdi.json":                                                                                   "inline holds a nested array",
	"danielsollondon_azvmimagebuilder/testingArea/7_Creating_Custom_Win_Image_using_MSI_to_Access_Storage/helloImageTemplateMsi.json":                                               "a placeholder left unclosed (<pathToPowerShellFileInAzureStorage) where the script URL belongs",
	"danielsollondon_azvmimagebuilder/testingArea/suse/0_Creating_a_Custom_SLES_Managed_Image/SLESImageTemplateLinux.json":                                                          "uses 'script', which api-version 2019-05-01-preview renamed 'scriptUri'",
	"ganeshkumarsm_AzureImageBuilder/AIBWin10MS.json":                                                                                                                               "sharedImage without replicationRegions at the api-version its repository deploys with (targetRegions needs 2022-07-01)",
	"gbeaud_avd-automated-pipeline/avd-azure-image-builder/Backup files/helloImageTemplateWin.json":                                                                                 "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"gbeaud_avd-automated-pipeline/avd-azure-image-builder/helloImageTemplateWin.json":                                                                                              "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"gbeaud_avd-automated-pipeline/helloImageTemplateWin.json":                                                                                                                      "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"kkamegawa_windowsjpimagebuilder/_history/13597b9d6b/windows2019image_gen2.json":                                                                                                "two customizers share a name; AIB requires unique names",
	"kkamegawa_windowsjpimagebuilder/_history/2e2e0e57e9/windows2022image.json":                                                                                                     "two customizers share a name; AIB requires unique names",
	"kkamegawa_windowsjpimagebuilder/_history/4f9e283df7/windows2022image.json":                                                                                                     "two customizers share a name; AIB requires unique names",
	"kkamegawa_windowsjpimagebuilder/windows2019image.json":                                                                                                                         "two customizers share a name; AIB requires unique names",
	"kkamegawa_windowsjpimagebuilder/windows2022image.json":                                                                                                                         "two customizers share a name; AIB requires unique names",
	"lahavana_AIB_customization/armTemplateWVD_V2.json":                                                                                                                             "validExitCodes given as a string",
	"lnochili_E2E_Example_Workflow_AzureImageBuilder/aib-template.json":                                                                                                             "File customizer writes outside /tmp on Linux, which AIB does not allow",
	"lnochili_E2E_Example_Workflow_AzureImageBuilder/aib_template.json":                                                                                                             "File customizer writes outside /tmp on Linux, which AIB does not allow",
	"lnochili_E2E_Example_Workflow_AzureImageBuilder/arm-template/aib_template.json":                                                                                                "File customizer writes outside /tmp on Linux, which AIB does not allow",
	"macquarie-cloud-services_azure-avd-azvmimagebuilder/AVD-Template-MSIXVM-to-SIG.json":                                                                                           "sharedImage without replicationRegions at the api-version its repository deploys with (targetRegions needs 2022-07-01)",
	"shaunjacob_AzureImageBuilder/AzureImageBuilder-ManagedImage.json":                                                                                                              "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
}
