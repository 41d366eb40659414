package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// memSample is the process's memory at one moment, after two collections
// and returning freed memory to the OS.
type memSample struct {
	rss, heap uint64 // bytes
}

func sampleMem(t *testing.T) memSample {
	t.Helper()
	runtime.GC()
	runtime.GC() // sync.Pools are emptied over two cycles
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{rss: procStatus(t, "VmRSS:"), heap: ms.HeapInuse}
}

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(t *testing.T, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", field, rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestRSSBoundedAfterAttacks is the edge's resource bound under attack
// (T-S2, T-S3, T-S5, T-S13): the process's memory after a
// round of oversized requests (64 KB URLs, 1,000 headers, a 100 KB
// cookie), slowloris connections and a pipelined flood of pixel hits is
// back near where it started, and the peak during the attack stays under a
// fixed bound, however much was sent. It is not parallel so that other
// tests' memory does not blur the figures.
func TestRSSBoundedAfterAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("sends about 60 MB of attack traffic")
	}
	s := socketServer(t, func(c *Config) { c.Spool.MaxBytes = 256 << 20 })
	before := sampleMem(t)
	var sent int64

	// Oversized requests, 50 connections at a time.
	var thousand strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&thousand, "X-H%d: v\r\n", i)
	}
	big := []string{
		"GET /p.gif?cid=a&url=" + strings.Repeat("u", 64<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /p.gif?cid=a HTTP/1.1\r\nHost: x\r\n" + thousand.String() + "\r\n",
		"GET /p.gif?cid=a HTTP/1.1\r\nHost: x\r\nCookie: c=" + strings.Repeat("c", 100<<10) + "\r\n\r\n",
	}
	for round := range 20 {
		var wg sync.WaitGroup
		for i := range 50 {
			req := big[(round+i)%len(big)]
			sent += int64(len(req))
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", s.Addr())
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				go func() { _, _ = io.WriteString(c, req) }()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				if !strings.HasPrefix(line, "HTTP/1.1 431") {
					t.Errorf("oversized request answered %q", line)
				}
			}()
		}
		wg.Wait()
	}

	// Slowloris: 300 connections trickling a request line until ReadTimeout
	// closes them, while a flood of 20,000 pipelined hits goes through.
	stop := make(chan struct{})
	var slow sync.WaitGroup
	for range 300 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		slow.Add(1)
		go func() {
			defer slow.Done()
			defer c.Close()
			for _, b := range []byte("GET /p.gif?cid=slow HTTP/1.1\r\nHost: x\r\n") {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
	}
	const flood, conns = 20_000, 4
	var fw sync.WaitGroup
	for ci := range conns {
		var req bytes.Buffer
		for i := range flood / conns {
			fmt.Fprintf(&req, "GET /p.gif?cid=flood-%d-%d&url=https%%3A%%2F%%2Fnews.example%%2Fa HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.66\r\n\r\n", ci, i)
		}
		sent += int64(req.Len())
		c := dial(t, s)
		fw.Add(1)
		go func() {
			defer fw.Done()
			go func() { _, _ = c.Write(req.Bytes()) }()
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			br := bufio.NewReader(c)
			for range flood / conns {
				line, err := br.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
					t.Errorf("flood answer %q: %v", line, err)
					return
				}
				for { // headers, then the 43-byte GIF
					h, err := br.ReadString('\n')
					if err != nil {
						t.Error(err)
						return
					}
					if h == "\r\n" {
						break
					}
				}
				if _, err := br.Discard(len(transparentGIF)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	fw.Wait()
	peak := procStatus(t, "VmHWM:")
	close(stop)
	slow.Wait()
	// The spool holds the flood on disk; drain it so only memory is left.
	for {
		recs, pos, err := s.spool.Read(1000, 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		if err := s.spool.Ack(pos, len(recs)); err != nil {
			t.Fatal(err)
		}
	}
	after := sampleMem(t)
	t.Logf("sent %d MB of attack traffic; RSS %d MB before, %d MB after (peak %d MB); heap in use %d MB before, %d MB after",
		sent>>20, before.rss>>20, after.rss>>20, peak>>20, before.heap>>20, after.heap>>20)
	const rssGrowth, heapGrowth, peakBound = 48 << 20, 8 << 20, 512 << 20
	if !raceEnabled && after.rss > before.rss+rssGrowth || after.heap > before.heap+heapGrowth || peak > peakBound {
		t.Fatalf("memory not bounded: RSS %d -> %d MB (allowed +%d), heap %d -> %d MB (allowed +%d), peak %d MB (allowed %d)",
			before.rss>>20, after.rss>>20, rssGrowth>>20, before.heap>>20, after.heap>>20, heapGrowth>>20, peak>>20, peakBound>>20)
	}
}
