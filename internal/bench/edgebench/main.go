// Command edgebench is `make bench-edge`: it runs, on 127.0.0.1, the edge
// (spooling and publishing to a real Kafka on a topic prefix of its own), a
// bare fasthttp server answering the same GIF (internal/bench/baregif), and
// nginx with empty_gif and a buffered access log, and loads each with wrk in
// interleaved rounds. It reports requests/s, latency p50/p99 and server CPU
// per request (from /proc/PID/stat) as medians over the rounds, the ratios
// edge/bare and edge/nginx, the edge's p99 at about half of its peak
// throughput (open loop) with its CPU per request next to bare fasthttp's on
// the same schedule, and the edge's RSS while Kafka is unreachable. The Kafka
// broker's CPU per request is reported on its own when the broker runs on
// this machine (it shares the cores but is not the edge's CPU). -baseline
// adds a second edge binary to the same rounds, for a before/after.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/procstat"

	"github.com/valyala/fasthttp"
)

var (
	pixelpipe = flag.String("pixelpipe", "bin/pixelpipe", "pixelpipe binary")
	baregif   = flag.String("baregif", "bin/baregif", "baregif binary")
	nginxBin  = flag.String("nginx", "/usr/sbin/nginx", "nginx binary")
	brokers   = flag.String("kafka", "127.0.0.1:19092", "Kafka the edge publishes to")
	rounds    = flag.Int("rounds", 3, "interleaved rounds (medians are reported)")
	duration  = flag.Duration("duration", 8*time.Second, "wrk duration of one measurement (at most 10s)")
	conns     = flag.Int("conns", 64, "wrk connections at peak")
	threads   = flag.Int("threads", 2, "wrk threads")
	outageFor = flag.Duration("outage", 10*time.Second, "how long the edge is loaded with Kafka unreachable")
	edgeFlags = flag.String("edgeflags", "", "extra space-separated flags for the edge, e.g. -edge.batchWait=20ms")
	visitors  = flag.Int("visitors", 10000, "distinct visitors (visitor cookies) the requests cycle through, over 100 content ids, so hits spread over the topic's partitions as real traffic does; 1 sends the same request every time")
	baseline  = flag.String("baseline", "", "a second pixelpipe binary (e.g. built from an earlier commit) loaded as \"edge (baseline)\" in the same interleaved rounds, for a before/after in one run")
)

const target = "/p.gif?cid=bench-article-1&site=news&k=view&cmp=spring&url=https%3A%2F%2Fnews.example%2Fa%2F1&cb=12345"

// request returns the path and visitor cookie of the i-th request of the
// cycle: -visitors visitors (cookie ppuid, a 32-hex-digit id as the edge
// issues), 100 content ids, a cache buster per request.
func request(i int) (path, cookie string) {
	if *visitors <= 1 {
		return target, ""
	}
	v := i % *visitors
	return fmt.Sprintf("/p.gif?cid=bench-article-%d&site=news&k=view&cmp=spring&url=https%%3A%%2F%%2Fnews.example%%2Fa%%2F%d&cb=%d", v%100, v%100, i),
		fmt.Sprintf("ppuid=%016x%016x", uint64(v)*0x9e3779b97f4a7c15, uint64(v)+1)
}

// wrkScript writes a wrk Lua script that cycles through the requests of
// request (built once per wrk thread, so wrk only hands out strings) and
// returns its path, or "" with -visitors 1.
func wrkScript(dir string) string {
	if *visitors <= 1 {
		return ""
	}
	var b strings.Builder
	b.WriteString("local paths, cookies = {}, {}\n")
	for i := range *visitors {
		path, cookie := request(i)
		fmt.Fprintf(&b, "paths[%d] = %q\ncookies[%d] = %q\n", i+1, path, i+1, cookie)
	}
	fmt.Fprintf(&b, `local reqs, n = {}, 0
init = function(args)
  for i = 1, %d do
    reqs[i] = wrk.format("GET", paths[i], {["User-Agent"] = %q, ["Accept"] = "image/avif,image/webp,*/*", ["Referer"] = "https://news.example/a/1", ["Cookie"] = cookies[i]})
  end
end
request = function()
  n = n %% %d + 1
  return reqs[n]
end
`, *visitors, userAgent, *visitors)
	p := filepath.Join(dir, "requests.lua")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		log.Fatalf("write wrk script: %v", err)
	}
	return p
}

// luaScript is the wrk script of this run ("" for one fixed request), and
// cycle the requests of the open-loop load, built once.
var (
	luaScript string
	cycle     []struct{ path, cookie string }
)

func buildCycle() {
	cycle = make([]struct{ path, cookie string }, max(*visitors, 1))
	for i := range cycle {
		cycle[i].path, cycle[i].cookie = request(i)
	}
}

const userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"

type server struct {
	name string
	addr string
	cmd  *exec.Cmd
}

type sample struct {
	rps, p50, p99, cpuUs float64 // cpuUs: server CPU-µs per request
	brokerUs             float64 // the Kafka broker's CPU-µs per request, when it runs here
	errors               int
}

// brokerPID is the process listening on the Kafka address, when it runs on
// this machine (it shares the cores with the servers), else 0.
var brokerPID int

func main() {
	log.SetFlags(0)
	flag.Parse()
	if *duration > 10*time.Second {
		log.Fatal("-duration is at most 10s")
	}
	tmp, err := os.MkdirTemp("", "pixelpipe-bench-edge-")
	if err != nil {
		log.Fatal(err)
	}
	luaScript = wrkScript(tmp)
	buildCycle()
	defer os.RemoveAll(tmp)
	var started []*server
	stopAll := func() {
		for _, s := range started {
			stop(s)
		}
	}
	defer stopAll()
	fail := func(format string, args ...any) {
		stopAll()
		log.Fatalf(format, args...)
	}

	prefix := fmt.Sprintf("bench%d.", time.Now().Unix())
	if out, err := exec.Command(*pixelpipe, "topics", "-kafka.brokers="+*brokers, "-kafka.topicPrefix="+prefix).CombinedOutput(); err != nil {
		fail("create topics: %v\n%s", err, out)
	}
	edgeAdmin := freeAddr()
	brokerPID = procstat.ListenerPID(*brokers)
	edge := start(tmp, "edge", *pixelpipe, append([]string{"edge", "-kafka.brokers=" + *brokers, "-kafka.topicPrefix=" + prefix,
		"-visitor.secret=bench-secret", "-edge.listenAddr=" + freeAddr(), "-admin.listenAddr=" + edgeAdmin,
		"-edge.spool.dir=" + filepath.Join(tmp, "spool"), "-log.level=warn"}, strings.Fields(*edgeFlags)...)...)
	started = append(started, edge)
	var base *server
	if *baseline != "" {
		base = start(tmp, "edge (baseline)", *baseline, "edge", "-kafka.brokers="+*brokers, "-kafka.topicPrefix="+prefix,
			"-visitor.secret=bench-secret", "-edge.listenAddr="+freeAddr(), "-admin.listenAddr="+freeAddr(),
			"-edge.spool.dir="+filepath.Join(tmp, "spool-baseline"), "-log.level=warn")
		started = append(started, base)
	}
	bare := start(tmp, "bare fasthttp", *baregif, "-addr="+freeAddr())
	started = append(started, bare)
	ngx := startNginx(tmp)
	started = append(started, ngx)
	for _, s := range started {
		if err := waitHTTP(s.addr); err != nil {
			fail("%s did not come up: %v (log in %s)", s.name, err, tmp)
		}
	}
	targets := []*server{edge, bare, ngx}
	if base != nil {
		targets = append(targets, base)
	}
	for _, s := range targets { // warm up
		if _, _, err := wrk(s.addr, *conns, 2*time.Second); err != nil {
			fail("warm-up of %s: %v", s.name, err)
		}
	}

	results := map[string][]sample{}
	for r := range *rounds {
		for i := range targets {
			s := targets[(i+r)%len(targets)]
			res, err := measure(s, *conns, *duration)
			if err != nil {
				fail("%s: %v", s.name, err)
			}
			log.Printf("round %d %-15s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  %5.2f CPU-µs/req  broker %5.2f CPU-µs/req  errors %d", r+1, s.name, res.rps, res.p50, res.p99, res.cpuUs, res.brokerUs, res.errors)
			results[s.name] = append(results[s.name], res)
		}
	}
	med := map[string]sample{}
	for name, ss := range results {
		m := sample{
			rps: median(ss, func(s sample) float64 { return s.rps }), p50: median(ss, func(s sample) float64 { return s.p50 }),
			p99: median(ss, func(s sample) float64 { return s.p99 }), cpuUs: median(ss, func(s sample) float64 { return s.cpuUs }),
			brokerUs: median(ss, func(s sample) float64 { return s.brokerUs }),
		}
		for _, s := range ss {
			m.errors += s.errors
		}
		med[name] = m
	}

	// p99 at half of peak, open loop: requests sent on a fixed schedule at
	// half the edge's median peak, latency counted from when each request was
	// due (so a stall is not hidden by the client waiting, as with wrk).
	// bare fasthttp gets the same schedule right after, so the two are
	// also compared at the same request rate: at different rates the
	// kernel's work per request differs (fewer requests per wakeup cost
	// more each), which the closed loop mixes into the comparison.
	halfRate := med["edge"].rps / 2
	var halfRes, bareHalf []sample
	for range *rounds {
		res, err := openLoop(edge, halfRate, *duration)
		if err != nil {
			fail("half load: %v", err)
		}
		halfRes = append(halfRes, res)
		log.Printf("half load: %.0f req/s sent at a fixed rate, p50 %.3f ms, p99 %.3f ms, %.2f CPU-µs/req, errors %d", res.rps, res.p50, res.p99, res.cpuUs, res.errors)
		res, err = openLoop(bare, halfRate, *duration)
		if err != nil {
			fail("half load, bare fasthttp: %v", err)
		}
		bareHalf = append(bareHalf, res)
		log.Printf("half load, bare fasthttp: %.0f req/s, p50 %.3f ms, p99 %.3f ms, %.2f CPU-µs/req, errors %d", res.rps, res.p50, res.p99, res.cpuUs, res.errors)
	}
	medOf := func(ss []sample) sample {
		return sample{
			rps: median(ss, func(s sample) float64 { return s.rps }), p50: median(ss, func(s sample) float64 { return s.p50 }),
			p99: median(ss, func(s sample) float64 { return s.p99 }), cpuUs: median(ss, func(s sample) float64 { return s.cpuUs }),
		}
	}
	halfMed, bareHalfMed := medOf(halfRes), medOf(bareHalf)

	// Delivery: every hit the edge accepted must reach Kafka.
	accepted, published := 0.0, 0.0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		m := metrics(edgeAdmin)
		accepted, published = m[`pixel_edge_hits_total{result="accepted"}`], m["pixel_edge_published_total"]
		if accepted > 0 && published >= accepted {
			break
		}
	}
	stop(edge)
	stop(bare)
	if base != nil {
		stop(base)
	}

	// RSS while Kafka is unreachable: an edge pointed at a closed port,
	// loaded at peak for -outage, RSS sampled every 250 ms.
	down := start(tmp, "edge, Kafka down", *pixelpipe, append([]string{"edge", "-kafka.brokers=" + closedAddr(),
		"-visitor.secret=bench-secret", "-edge.listenAddr=" + freeAddr(), "-admin.listenAddr=" + freeAddr(),
		"-edge.spool.dir=" + filepath.Join(tmp, "spool-down"), "-log.level=error"}, strings.Fields(*edgeFlags)...)...)
	started = append(started, down)
	if err := waitHTTP(down.addr); err != nil {
		fail("edge (Kafka down) did not come up: %v", err)
	}
	rssBefore := procstat.RSS(down.cmd.Process.Pid)
	var rssMax, rssAtHalf int64
	done := make(chan struct{})
	var downRPS float64
	go func() {
		defer close(done)
		downRPS, _, _ = wrk(down.addr, *conns, *outageFor)
	}()
	begin := time.Now()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(250 * time.Millisecond):
			v := procstat.RSS(down.cmd.Process.Pid)
			rssMax = max(rssMax, v)
			if rssAtHalf == 0 && time.Since(begin) > *outageFor/2 {
				rssAtHalf = v
			}
		}
	}
	rssEnd := procstat.RSS(down.cmd.Process.Pid)
	spoolBytes := dirSize(filepath.Join(tmp, "spool-down"))
	log.Printf("Kafka down: %.0f req/s for %v; RSS %.1f MiB idle, %.1f MiB half-way, %.1f MiB at the end, %.1f MiB max; spool %.1f MiB",
		downRPS, *outageFor, mib(rssBefore), mib(rssAtHalf), mib(rssEnd), mib(rssMax), mib(spoolBytes))

	// The report, as Markdown.
	fmt.Printf("\n| server | requests/s | p50 | p99 | server CPU per request | Kafka broker CPU per request | wrk errors |\n|---|---|---|---|---|---|---|\n")
	for _, s := range targets {
		m := med[s.name]
		fmt.Printf("| %s | %.0f | %.3f ms | %.3f ms | %.2f µs | %.2f µs | %d |\n", s.name, m.rps, m.p50, m.p99, m.cpuUs, m.brokerUs, m.errors)
	}
	e, b, n := med["edge"], med["bare fasthttp"], med["nginx"]
	fmt.Printf("\n| ratio | requests/s | CPU per request |\n|---|---|---|\n")
	fmt.Printf("| edge / bare fasthttp | %.2f | %.2f |\n", e.rps/b.rps, e.cpuUs/b.cpuUs)
	fmt.Printf("| edge / nginx | %.2f | %.2f |\n", e.rps/n.rps, e.cpuUs/n.cpuUs)
	if base != nil {
		bl := med[base.name]
		fmt.Printf("| edge (baseline) / bare fasthttp | %.2f | %.2f |\n", bl.rps/b.rps, bl.cpuUs/b.cpuUs)
		fmt.Printf("| edge / edge (baseline) | %.2f | %.2f |\n", e.rps/bl.rps, e.cpuUs/bl.cpuUs)
	}
	if brokerPID == 0 {
		fmt.Printf("\nThe Kafka broker does not run on this machine (no local process listens on %s): its CPU is not measured.\n", *brokers)
	}
	fmt.Printf("\nEdge at half of peak, open loop (fixed schedule, latency from when each request was due): %.0f req/s of %.0f peak, p50 %.3f ms, p99 %.3f ms, %.2f CPU-µs per request (median of %d).\n",
		halfMed.rps, e.rps, halfMed.p50, halfMed.p99, halfMed.cpuUs, *rounds)
	fmt.Printf("Same schedule, bare fasthttp: %.0f req/s, p50 %.3f ms, p99 %.3f ms, %.2f CPU-µs per request: edge / bare fasthttp at the same rate %.2f.\n",
		bareHalfMed.rps, bareHalfMed.p50, bareHalfMed.p99, bareHalfMed.cpuUs, halfMed.cpuUs/bareHalfMed.cpuUs)
	fmt.Printf("Delivery: the edge accepted %.0f hits and Kafka acknowledged %.0f.\n", accepted, published)
	fmt.Printf("Kafka unreachable (closed port), %v at %d connections, %.0f req/s: RSS %.1f MiB idle, %.1f MiB half-way, %.1f MiB at the end, max %.1f MiB; spool on disk %.1f MiB.\n",
		*outageFor, *conns, downRPS, mib(rssBefore), mib(rssAtHalf), mib(rssEnd), mib(rssMax), mib(spoolBytes))
	fmt.Printf("Rounds: %d interleaved, wrk -t%d -c%d -d%v --latency, each server's CPU from /proc/PID/stat (nginx: master and workers).\n", *rounds, *threads, *conns, *duration)
}

// openLoop sends GETs to s at rate per second for d: 64 workers, each on
// its own keep-alive connection with its own fixed schedule (rate/64),
// sending each request when it is due, or at once when the worker is
// behind, and measuring latency from when the request was due, so a stall
// counts for every request it delays (no coordinated omission).
func openLoop(s *server, rate float64, d time.Duration) (sample, error) {
	const workers = 64
	c := &fasthttp.HostClient{Addr: s.addr, MaxConns: workers, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	pids := pidsOf(s)
	cpu0 := cpuTicks(pids)
	interval := time.Duration(float64(workers) / rate * float64(time.Second))
	perWorker := int(d / interval)
	lat := make([][]float64, workers)
	var errs atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.Set("User-Agent", userAgent)
			req.Header.Set("Referer", "https://news.example/a/1")
			l := make([]float64, 0, perWorker)
			for i := range perWorker {
				if c := cycle[(i*workers+w)%len(cycle)]; len(cycle) > 1 {
					req.SetRequestURI("http://" + s.addr + c.path)
					// SetCookie replaces the cookie; Set("Cookie") would add
					// to the cookies already set.
					name, value, _ := strings.Cut(c.cookie, "=")
					req.Header.SetCookie(name, value)
				} else if i == 0 {
					req.SetRequestURI("http://" + s.addr + c.path)
				}
				due := begin.Add(time.Duration(w)*interval/workers + time.Duration(i)*interval)
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					errs.Add(1)
				}
				l = append(l, float64(time.Since(due))/float64(time.Millisecond))
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	el := time.Since(begin).Seconds()
	cpu1 := cpuTicks(pidsOf(s))
	all := slices.Concat(lat...)
	slices.Sort(all)
	n := len(all)
	const clkTck = 100
	return sample{
		rps: float64(n) / el, p50: all[n/2], p99: all[n*99/100],
		cpuUs: float64(cpu1-cpu0) / clkTck * 1e6 / float64(n), errors: int(errs.Load()),
	}, nil
}

func measure(s *server, c int, d time.Duration) (sample, error) {
	pids := pidsOf(s)
	cpu0, bcpu0 := cpuTicks(pids), brokerTicks()
	t0 := time.Now()
	rps, lat, err := wrk(s.addr, c, d)
	if err != nil {
		return sample{}, err
	}
	cpu1, bcpu1 := cpuTicks(pidsOf(s)), brokerTicks()
	el := time.Since(t0).Seconds()
	reqs := rps * el
	const clkTck = 100 // USER_HZ on Linux
	return sample{rps: rps, p50: lat.p50, p99: lat.p99, cpuUs: float64(cpu1-cpu0) / clkTck * 1e6 / reqs,
		brokerUs: float64(bcpu1-bcpu0) / clkTck * 1e6 / reqs, errors: lat.errors}, nil
}

func brokerTicks() int64 {
	if brokerPID == 0 {
		return 0
	}
	return cpuTicks([]int{brokerPID})
}

// cpuTicks is the CPU time of pids, in clock ticks.
func cpuTicks(pids []int) int64 {
	var t int64
	for _, p := range pids {
		t += procstat.CPUTicks(p)
	}
	return t
}

type latency struct {
	p50, p99 float64 // ms
	errors   int
}

var (
	reRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reLat    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSock   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrk(addr string, c int, d time.Duration) (float64, latency, error) {
	args := []string{"-t" + strconv.Itoa(min(*threads, c)), "-c" + strconv.Itoa(c), "-d" + d.String(), "--latency",
		"-H", "User-Agent: " + userAgent, "-H", "Accept: image/avif,image/webp,*/*", "-H", "Referer: https://news.example/a/1"}
	if luaScript != "" {
		args = append(args, "-s", luaScript)
	}
	out, err := exec.Command("wrk", append(args, "http://"+addr+target)...).CombinedOutput()
	if err != nil {
		return 0, latency{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	m := reRPS.FindSubmatch(out)
	if m == nil {
		return 0, latency{}, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	var lat latency
	for _, l := range reLat.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(l[2]), 64)
		switch string(l[3]) {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if string(l[1]) == "50" {
			lat.p50 = v
		} else {
			lat.p99 = v
		}
	}
	if m := reNon2xx.FindSubmatch(out); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		lat.errors += n
	}
	if m := reSock.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.Atoi(string(g))
			lat.errors += n
		}
	}
	return rps, lat, nil
}

func start(tmp, name, bin string, args ...string) *server {
	addr := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "-edge.listenAddr="); ok {
			addr = v
		}
		if v, ok := strings.CutPrefix(a, "-addr="); ok {
			addr = v
		}
	}
	logf, err := os.Create(filepath.Join(tmp, strings.ReplaceAll(name, " ", "-")+".log"))
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatalf("start %s: %v", name, err)
	}
	return &server{name: name, addr: addr, cmd: cmd}
}

func startNginx(tmp string) *server {
	addr := freeAddr()
	dir := filepath.Join(tmp, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log %[1]s/access.log combined buffer=64k flush=1s;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    keepalive_requests 1000000;
    server {
        listen %[2]s;
        location / {
            empty_gif;
            add_header Cache-Control "no-cache, no-store, must-revalidate";
            add_header Pragma no-cache;
            add_header Expires 0;
        }
    }
}
`, dir, addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		log.Fatal(err)
	}
	s := start(tmp, "nginx", *nginxBin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	s.addr = addr
	return s
}

// stop ends a server by its PID: SIGTERM, then SIGKILL after 10 s.
func stop(s *server) {
	if s.cmd.ProcessState != nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// pidsOf is the server's process and its children (nginx workers).
func pidsOf(s *server) []int {
	pid := s.cmd.Process.Pid
	pids := []int{pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		if procstat.Field(p, 4) == strconv.Itoa(pid) {
			pids = append(pids, p)
		}
	}
	return pids
}

func metrics(addr string) map[string]float64 {
	out := map[string]float64{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		out[k], _ = strconv.ParseFloat(v, 64)
	}
	return out
}

func waitHTTP(addr string) error {
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var resp *http.Response
		resp, err = http.Get("http://" + addr + target)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	return err
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// closedAddr is a 127.0.0.1 port nothing listens on.
func closedAddr() string { return freeAddr() }

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func median(ss []sample, f func(sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
