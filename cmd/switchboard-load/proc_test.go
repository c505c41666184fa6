package main

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"
)

func TestReadProcSelf(t *testing.T) {
	before, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel's tick-granular clock moves (at most a second).
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(time.Second)
	var after procSample
	for after.CPU <= before.CPU && time.Now().Before(deadline) {
		for range 20 {
			sha256.Sum256(buf)
		}
		if after, err = readProc(0); err != nil {
			t.Fatal(err)
		}
	}
	if after.CPU <= before.CPU {
		t.Errorf("cpu time did not grow: %v then %v", before.CPU, after.CPU)
	}
	if after.RSS <= 0 || after.HWM < after.RSS {
		t.Errorf("rss %d, peak %d: want 0 < rss <= peak", after.RSS, after.HWM)
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Error("readProc of a pid that cannot exist: no error")
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250 and stime 150 ticks.
	stat := []byte("4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 150 0 0 20 0 8 0 12345 1000000 500 18446744073709551615\n")
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 4 * time.Second; got != want {
		t.Errorf("cpu = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 1"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := []byte("Name:\tnode\nVmPeak:\t 1000 kB\nVmHWM:\t   81920 kB\nVmRSS:\t   40960 kB\nThreads:\t7\n")
	hwm, rss, err := parseStatusMemory(status)
	if err != nil {
		t.Fatal(err)
	}
	if hwm != 80<<20 || rss != 40<<20 {
		t.Errorf("hwm %d rss %d, want %d %d", hwm, rss, 80<<20, 40<<20)
	}
	if _, _, err := parseStatusMemory([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("no VmHWM: no error")
	}
}
