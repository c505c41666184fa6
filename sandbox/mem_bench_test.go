package sandbox

import (
	"runtime"
	"testing"
)

// BenchmarkIdleRuntime reports the heap an idle runtime holds, as B/runtime: the live heap
// after making 200 runtimes, over 200. "frozen" is a pool's runtime with the module
// loaded, "after-call" the same once it has served a call (which touched the library), and
// "every-family" the same once its script has named every lazily frozen global (what
// freezing everything costs), and "unfrozen" a runtime with writable intrinsics
// (CallOnce's).
func BenchmarkIdleRuntime(b *testing.B) {
	s := mustCompile(b, benchHandle)
	arg := benchArg(b)
	for _, mode := range []string{"frozen", "after-call", "every-family", "unfrozen"} {
		b.Run(mode, func(b *testing.B) {
			const n = 200
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			keep := make([]*instance, 0, n)
			for range n {
				in, err := newInstance(s, discardLogger(), Limits{}, mode != "unfrozen")
				if err != nil {
					b.Fatal(err)
				}
				if err := in.load(); err != nil {
					b.Fatal(err)
				}
				if mode == "after-call" {
					if _, _, err := in.run(b.Context(), arg, Env{}); err != nil {
						b.Fatal(err)
					}
				}
				if mode == "every-family" {
					if _, err := in.vm.RunString("Math; Date; Map; Proxy; Buffer"); err != nil {
						b.Fatal(err)
					}
				}
				keep = append(keep, in)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(keep)
			for b.Loop() {
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/runtime")
		})
	}
}
