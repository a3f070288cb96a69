// Package bench measures goldsmith's distribution against a plain copy.
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
package bench
