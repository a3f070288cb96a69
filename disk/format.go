package disk

import (
	"bytes"
	"fmt"
	"os"
)

// Format names, as qemu-img spells them.
const (
	FormatRaw   = "raw"
	FormatQCOW2 = "qcow2"
	FormatVHD   = "vpc" // qemu-img's name for VHD
	FormatVMDK  = "vmdk"
)

// DetectFormat looks at a disk image's content: the qcow2 magic, a VHD
// footer at the end (fixed) or its copy at the start (dynamic), the VMDK
// sparse magic; anything else is raw. For a fixed VHD it also validates the
// footer, since a raw disk can end in anything.
func DetectFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	head := make([]byte, 512)
	n, _ := f.ReadAt(head, 0)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return FormatQCOW2, nil
	case bytes.HasPrefix(head, []byte("KDMV")):
		return FormatVMDK, nil
	case bytes.HasPrefix(head, []byte(vhdCookie)):
		if _, err := ParseVHDFooter(head); err == nil {
			return FormatVHD, nil // dynamic or differencing: footer copy at offset 0
		}
	}
	if st.Size() >= VHDFooterSize+512 {
		tail := make([]byte, VHDFooterSize)
		if err := readFullAt(f, tail, st.Size()-VHDFooterSize); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		if bytes.HasPrefix(tail, []byte(vhdCookie)) {
			if _, err := ParseVHDFooter(tail); err != nil {
				return "", fmt.Errorf("%s: ends in a damaged VHD footer: %w", path, err)
			}
			return FormatVHD, nil
		}
	}
	return FormatRaw, nil
}
