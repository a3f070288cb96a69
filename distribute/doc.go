// Package distribute owns the byte-level and naming rules of AIB's
// distribution targets, apart from the resources they create (package
// resource keeps those): where a gallery image version replicates to
// (replicationRegions or targetRegions, always with the gallery's region),
// which version number it gets (explicit, versioning Latest or Source, or
// the automatic 0.YYDDD.SSSSS scheme of the apiVersions before versioning),
// copying a disk into several regions' blob stores in parallel with every
// copy verified, placing a fixed VHD, and exporting a stored disk to raw,
// qcow2, fixed VHD or VMDK.
package distribute
