package armtemplate

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
)

// uniqueString reproduces ARM's uniqueString(): the arguments joined with
// '-', hashed with the 64-bit MurmurHash variant from Microsoft's
// ResourceStack library, and written as 13 characters of lower-case
// RFC 4648 base-32 taken from the most significant bits.
func uniqueString(parts ...string) string {
	h := murmur64([]byte(strings.Join(parts, "-")))
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	out := make([]byte, 13)
	for i := range out {
		out[i] = alphabet[h>>59]
		h <<= 5
	}
	return string(out)
}

// murmur64 is the two-lane 32-bit MurmurHash3-style hash that ARM uses
// (seed 0), combined into a 64-bit value as high<<32 | low.
func murmur64(data []byte) uint64 {
	const (
		c1 = 0x239b961b
		c2 = 0xab0e9789
	)
	var h1, h2 uint32
	n := len(data)
	i := 0
	for ; i+8 <= n; i += 8 {
		k1 := binary.LittleEndian.Uint32(data[i:])
		k2 := binary.LittleEndian.Uint32(data[i+4:])
		h1 ^= bits.RotateLeft32(k1*c1, 15) * c2
		h1 = bits.RotateLeft32(h1, 19) + h2
		h1 = h1*5 + 0x561ccd1b
		h2 ^= bits.RotateLeft32(k2*c2, 17) * c1
		h2 = bits.RotateLeft32(h2, 13) + h1
		h2 = h2*5 + 0x0bcaa747
	}
	if rest := data[i:]; len(rest) > 0 {
		h1 ^= bits.RotateLeft32(littleEndianPartial(rest[:min(4, len(rest))])*c1, 15) * c2
		if len(rest) > 4 {
			h2 ^= bits.RotateLeft32(littleEndianPartial(rest[4:])*c2, 17) * c1
		}
	}
	h2 ^= uint32(n)
	h1 ^= uint32(n)
	h1 += h2
	h2 += h1
	h1 = fmix32(h1)
	h2 = fmix32(h2)
	h1 += h2
	h2 += h1
	return uint64(h2)<<32 | uint64(h1)
}

func littleEndianPartial(b []byte) uint32 {
	var v uint32
	for i, c := range b {
		v |= uint32(c) << (8 * i)
	}
	return v
}

func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// armGUIDNamespace is the fixed namespace ARM's guid() hashes under.
var armGUIDNamespace = [16]byte{0x11, 0xfb, 0x06, 0xfb, 0x71, 0x2d, 0x4d, 0xdd, 0x98, 0xc7, 0xe7, 0x1b, 0xbd, 0x58, 0x88, 0x30}

// armGUID reproduces ARM's guid(): a name-based (version 5, SHA-1) UUID
// of the arguments joined with '-', in ARM's fixed namespace.
func armGUID(parts ...string) string {
	return uuidV5(armGUIDNamespace, strings.Join(parts, "-"))
}

func uuidV5(ns [16]byte, name string) string {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return formatUUID(u)
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func randomGUID() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return formatUUID(u), nil
}
