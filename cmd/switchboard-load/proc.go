package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. The kernel fixes
// it at 100 on every architecture Go supports on Linux (sysconf(_SC_CLK_TCK) says so too),
// and reading it otherwise would need cgo.
const clockTicks = 100

// procSample is what /proc tells of a process at one moment.
type procSample struct {
	CPU   time.Duration // user + system time since the process started
	HWM   int64         // peak resident set size, bytes (VmHWM)
	RSS   int64         // resident set size now, bytes (VmRSS)
	Valid bool
}

// readProc samples process pid ("self" for this process when pid is 0).
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procSample{}, fmt.Errorf("reading process stats: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return procSample{}, fmt.Errorf("parsing %s/stat: %w", dir, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return procSample{}, fmt.Errorf("reading process status: %w", err)
	}
	hwm, rss, err := parseStatusMemory(status)
	if err != nil {
		return procSample{}, fmt.Errorf("parsing %s/status: %w", dir, err)
	}
	return procSample{CPU: cpu, HWM: hwm, RSS: rss, Valid: true}, nil
}

// parseStatCPU returns utime+stime from the contents of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may hold spaces and parentheses itself, so the fields
// are counted from after the last ')': field 3 (state) comes first, utime and stime are
// fields 14 and 15.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	fields := strings.Fields(string(stat[i+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, want at least %d", len(fields), stime+1)
	}
	var ticks int64
	for _, f := range []string{fields[utime], fields[stime]} {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time %q: %w", f, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// parseStatusMemory returns VmHWM and VmRSS, in bytes, from /proc/<pid>/status.
func parseStatusMemory(status []byte) (hwm, rss int64, err error) {
	found := 0
	for line := range strings.Lines(string(status)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected value %q", name, strings.TrimSpace(value))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		if name == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("no VmHWM and VmRSS (a kernel thread or a zombie?)")
	}
	return hwm, rss, nil
}
