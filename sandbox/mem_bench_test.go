package sandbox

import (
	"runtime"
	"testing"
)

// BenchmarkIdleRuntime reports the heap an idle pooled runtime holds (the module loaded,
// ready for a call) as B/runtime: the live heap after creating b.N runtimes, over b.N.
func BenchmarkIdleRuntime(b *testing.B) {
	s := mustCompile(b, benchHandle)
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := make([]*instance, 0, n)
	for range n {
		in, err := newInstance(s, discardLogger(), Limits{}, true)
		if err != nil {
			b.Fatal(err)
		}
		if err := in.load(); err != nil {
			b.Fatal(err)
		}
		keep = append(keep, in)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	for b.Loop() {
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/runtime")
}
