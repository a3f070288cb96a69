package customize

// The package's test helpers, for its external tests (vm_test.go is package
// customize_test: it imports machine, which imports customize).
var (
	NewFiles = newFiles
	Digest   = digest
	Shell    = shell
)

type SyncBuf = syncBuf
