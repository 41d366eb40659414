// Package procstat reads what the benchmarks measure of other processes
// from Linux's /proc: which process listens on a port, its CPU time and its
// resident memory. Every function answers zero when /proc does not say.
package procstat

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// TickDuration is one clock tick of /proc/PID/stat's CPU times (USER_HZ,
// 100 on every Linux this runs on).
const TickDuration = 10 * time.Millisecond

// ListenerPID returns the local process listening on addr's TCP port
// ("host:port"), or 0.
func ListenerPID(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(port)
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // LISTEN
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i >= 0 {
				if v, _ := strconv.ParseInt(fs[1][i+1:], 16, 32); int(v) == p {
					inodes["socket:["+fs[9]+"]"] = true
				}
			}
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// Field returns field n of /proc/PID/stat, numbered from 1 as in proc(5)
// (4 ppid, 14 utime, 15 stime), or "" when there is none.
func Field(pid, n int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces
	if i < 0 {
		return ""
	}
	rest := strings.Fields(string(b[i+1:])) // rest[0] is field 3, the state
	if n-3 < 0 || n-3 >= len(rest) {
		return ""
	}
	return rest[n-3]
}

// CPUTicks returns the user plus system CPU time of pid in clock ticks
// (TickDuration each).
func CPUTicks(pid int) int64 {
	u, _ := strconv.ParseInt(Field(pid, 14), 10, 64)
	s, _ := strconv.ParseInt(Field(pid, 15), 10, 64)
	return u + s
}

// CPU returns the user plus system CPU time of pid.
func CPU(pid int) time.Duration { return time.Duration(CPUTicks(pid)) * TickDuration }

// RSS returns the resident memory of pid in bytes (VmRSS).
func RSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
