// Package bench holds goldsmith's benchmarks.
//
// # Distribution against a plain copy
//
//	go test -run '^$' -bench . -benchtime 3x ./bench
//
// The image: 4 GiB virtual, ~1 GiB of random data in four 256 MiB extents,
// made once under $GOLDSMITH_BENCH_DIR (default /var/tmp/goldsmith-bench)
// with the build outputs the engine would write for it (qcow2 for images and
// gallery versions, a fixed VHD). BenchmarkDistribution times the service's
// distribution of one run to a managed image, a gallery version in two
// regions and a VHD (from the executor's return to the run's end);
// BenchmarkCopy times `cp --sparse=always` of the raw image, with and
// without a sync after it.
//
// # goldsmith build against Packer, side by side
//
//	./bench/setup                  # once: goldsmith's setup and Debian's packer 1.6.6
//	go run ./bench/sidebyside -n 5
//
// The command in bench/sidebyside runs the same work through `goldsmith
// build` and through Packer 1.6.6 (qemu builder), from the same base disk:
// the catalog's Debian 12 image, its exact version pinned for the run. The
// work (bench/sidebyside/work) is a script by URI with its sha256, a File
// with its sha256, an inline sudo step, `sudo shutdown -r now`, a check
// after the reboot, deprovision, and a fixed VHD. Pairs are interleaved,
// goldsmith first in odd pairs and Packer first in even ones; each pair
// also rebuilds goldsmith's template with only the last customizer changed
// (the layer-cache case; a per-pair nonce in the first script makes the warm
// build a cache miss). It prints every pair, each side's median and range,
// the ratio, goldsmith's median phases and Packer's split into the same
// phases, and writes the whole run as JSON.
package bench
