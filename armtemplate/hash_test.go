package armtemplate

import "testing"

func TestUniqueStringKnownValues(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		// Outputs of real ARM deployments, recorded in a comment of
		// KingslandConsulting/Kingsland.ArmLinter,
		// src/Kingsland.ArmLinter/Functions/ArmFunctions_UniqueString.cs.
		{[]string{"aaa"}, "zavj67f3en4hc"},
		{[]string{"bbb"}, "w5eragfxe33cy"},
		{[]string{"zzz"}, "cryksdzzzawae"},
		{[]string{"xxx", "yyy", "zzz"}, "lghi7k5js7itq"},
		// The self-test of a public pure-bash re-implementation,
		// uniquestring.sh ("verified against Bicep uniqueString() output").
		{[]string{"test"}, "rbgf3xv4ufgzg"},
		{[]string{"hello", "world"}, "a7wkljktk6wne"},
		{[]string{"abc"}, "cgtzqvhu4i23s"},
		{[]string{"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg"}, "bmg7c6xu4tw46"},
		{[]string{"foo", "bar", "baz"}, "xzi4ioaxtmth4"},
	}
	for _, tt := range tests {
		if got := uniqueString(tt.args...); got != tt.want {
			t.Errorf("uniqueString(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
	// Every tail length (0-7 bytes past a block) takes a different path.
	for n := 0; n < 20; n++ {
		s := uniqueString(string(make([]byte, n)))
		if len(s) != 13 {
			t.Errorf("length %d input gave %q", n, s)
		}
	}
}

func TestGUID(t *testing.T) {
	// The version-5 mechanics, against RFC 9562 appendix A.4:
	// uuid5(NAMESPACE_DNS, "www.example.com").
	dns := [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	if got := uuidV5(dns, "www.example.com"); got != "2ed6657d-e927-568b-95e1-2665a8aea6a2" {
		t.Errorf("uuidV5 RFC vector = %s", got)
	}
	// ARM's guid() is uuid5 in namespace 11fb06fb-712d-4ddd-98c7-e71bbd588830
	// of the arguments joined with '-' (as public re-implementations, e.g.
	// Terraform configurations that recreate role assignment names, do).
	// Expected values computed independently with Python's uuid.uuid5.
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"a", "b"}, "2d796349-8c7e-55ec-9624-54ece82ed031"},
		{[]string{"a-b"}, "2d796349-8c7e-55ec-9624-54ece82ed031"},
		{[]string{"hello"}, "520f8434-fe3a-5d99-888d-450a827486a1"},
	}
	for _, tt := range tests {
		if got := armGUID(tt.args...); got != tt.want {
			t.Errorf("guid(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
	if armGUID("ab") == armGUID("a", "b") {
		t.Error("guid must separate arguments with '-'")
	}
}
