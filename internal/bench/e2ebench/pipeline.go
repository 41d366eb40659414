package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/internal/procstat"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
)

// proc is a process the harness started. Its output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited and is reaped
	err  error         // its exit, valid after done
}

// startProc starts bin in its own process group (so a terminal's Ctrl-C
// reaches the harness alone, which then stops the pipeline in order), with
// deathSig sent by the kernel should the harness die without cleaning up,
// and without the PIXEL_* variables of the harness's environment (the
// parts read their flags from them: only the command line configures them).
// setup, when not nil, may set the command's stdin and stdout (its log file
// is the default).
func startProc(dir, name, bin string, deathSig syscall.Signal, setup func(*exec.Cmd), args ...string) (*proc, error) {
	logPath := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if setup != nil {
		setup(cmd)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIXEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (the parts drain and exit), then SIGKILL after timeout.
func (p *proc) stop(timeout time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once (load generators).
func (p *proc) kill() {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pipeline is one pixelpipe binary running as four processes on a topic
// prefix, Redis key prefix and consumer groups of its own.
type pipeline struct {
	label, bin    string
	cfg           *config
	dir           string // logs, spool, generated load files
	topicPrefix   string
	keyPrefix     string
	token         string
	edgeAddr      string
	edgeAdmin     string
	processorAdm  string
	aggregatorAdm string
	queryAddr     string
	edge          *proc
	processor     *proc
	aggregator    *proc
	query         *proc
	rdb           redis.UniversalClient
	httpc         *http.Client // the query API and /metrics
	markc         *http.Client // marker hits to the edge
	out           io.Writer
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startPipeline creates the topics and starts the four parts, then waits
// until they serve and a warm-up hit is visible through the query API (so
// consumer groups have joined before any measured load).
func startPipeline(ctx context.Context, cfg *config, label, bin string, out io.Writer) (*pipeline, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("pixelpipe binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "pixelpipe-bench-e2e-")
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("e2e%d%s", time.Now().Unix(), randomHex(3))
	p := &pipeline{
		label: label, bin: abs, cfg: cfg, dir: dir,
		topicPrefix: id + ".", keyPrefix: id, token: randomHex(16),
		httpc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}},
		markc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}},
		out:   out,
	}
	if p.rdb, err = redisconn.Open(cfg.redis, redis.UniversalOptions{DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}); err != nil {
		return p, fmt.Errorf("-redis: %w", err)
	}
	fmt.Fprintf(out, "[%s] pipeline %s: topics %s*, Redis keys %s:*, consumer groups %s-processor and %s-aggregator, logs in %s\n",
		time.Now().Format("15:04:05"), label, p.topicPrefix, p.keyPrefix, id, id, dir)
	tctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if msg, err := exec.CommandContext(tctx, abs, "topics", "-kafka.brokers="+cfg.kafka, "-kafka.topicPrefix="+p.topicPrefix, "-kafka.replicationFactor="+strconv.Itoa(cfg.kafkaReplicas)).CombinedOutput(); err != nil {
		return p, fmt.Errorf("pixelpipe topics: %v\n%s", err, msg)
	}
	addrs := make([]string, 6)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return p, err
		}
	}
	p.edgeAddr, p.edgeAdmin, p.processorAdm, p.aggregatorAdm, p.queryAddr = addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	secret := randomHex(16)
	kafkaFlags := []string{"-kafka.brokers=" + cfg.kafka, "-kafka.topicPrefix=" + p.topicPrefix}
	redisFlags := []string{"-redis.addr=" + cfg.redis, "-redis.keyPrefix=" + p.keyPrefix}
	start := func(name string, args ...string) (*proc, error) {
		return startProc(dir, name, abs, syscall.SIGTERM, nil, args...)
	}
	// The edge trusts 127.0.0.1 as its load balancer: the client IP of a
	// hit is then its X-Forwarded-For, one public address per visitor.
	if p.edge, err = start("edge", concat(
		[]string{"edge", "-log.level=warn", "-admin.listenAddr=" + p.edgeAdmin, "-edge.listenAddr=" + p.edgeAddr,
			"-visitor.secret=" + secret, "-edge.spool.dir=" + filepath.Join(dir, "spool"), "-edge.trustedProxies=127.0.0.1/32"},
		kafkaFlags, strings.Fields(cfg.edgeFlags))...); err != nil {
		return p, err
	}
	if p.processor, err = start("processor", concat(
		[]string{"processor", "-log.level=warn", "-admin.listenAddr=" + p.processorAdm, "-visitor.secret=" + secret, "-processor.group=" + id + "-processor"},
		kafkaFlags, redisFlags, strings.Fields(cfg.processorFlags))...); err != nil {
		return p, err
	}
	if p.aggregator, err = start("aggregator", concat(
		[]string{"aggregator", "-log.level=warn", "-admin.listenAddr=" + p.aggregatorAdm, "-aggregator.group=" + id + "-aggregator"},
		kafkaFlags, redisFlags, strings.Fields(cfg.aggregatorFlags))...); err != nil {
		return p, err
	}
	if p.query, err = start("query", concat(
		[]string{"query", "-log.level=warn", "-admin.listenAddr=" + addrs[5], "-query.listenAddr=" + p.queryAddr, "-query.token=" + p.token},
		redisFlags, strings.Fields(cfg.queryFlags))...); err != nil {
		return p, err
	}
	for _, c := range []struct {
		pr  *proc
		url string
	}{
		{p.edge, "http://" + p.edgeAdmin + "/readyz"},
		{p.processor, "http://" + p.processorAdm + "/readyz"},
		{p.aggregator, "http://" + p.aggregatorAdm + "/readyz"},
		{p.query, "http://" + p.queryAddr + "/v1/freshness"},
	} {
		if err := p.waitHTTP(ctx, c.pr, c.url, 30*time.Second); err != nil {
			return p, err
		}
	}
	// Warm-up: a few hits of a campaign of their own, visible end to end.
	warm := time.Now()
	day := time.Now().UTC()
	for i := range 5 {
		if err := p.sendMarker(ctx, fmt.Sprintf("warmup-%d", i), "e2e-warmup", i); err != nil {
			return p, fmt.Errorf("warm-up hit: %w", err)
		}
	}
	for {
		n, _, err := p.campaignTotal(ctx, "e2e-warmup", day)
		if err == nil && n == 5 {
			break
		}
		if err := p.alive(); err != nil {
			return p, err
		}
		if time.Since(warm) > 60*time.Second {
			return p, fmt.Errorf("warm-up: the query API shows %d of 5 warm-up hits after 60s (%v); logs in %s", n, err, dir)
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "[%s] pipeline %s up; warm-up hits visible after %.2fs\n", time.Now().Format("15:04:05"), label, time.Since(warm).Seconds())
	return p, nil
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// alive reports a part that exited.
func (p *pipeline) alive() error {
	for _, pr := range p.procs() {
		if pr.exited() {
			return fmt.Errorf("%s exited (%v); log %s:\n%s", pr.name, pr.err, pr.log, pr.tail(20))
		}
	}
	return nil
}

func (p *pipeline) procs() []*proc {
	var out []*proc
	for _, pr := range []*proc{p.edge, p.processor, p.aggregator, p.query} {
		if pr != nil {
			out = append(out, pr)
		}
	}
	return out
}

func (p *pipeline) waitHTTP(ctx context.Context, pr *proc, url string, timeout time.Duration) error {
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if pr.exited() {
			return fmt.Errorf("%s exited before serving (%v); log %s:\n%s", pr.name, pr.err, pr.log, pr.tail(20))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+p.token)
		resp, err := p.httpc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after %v (%s); log %s:\n%s", pr.name, url, timeout, last, pr.log, pr.tail(20))
}

// close stops the parts in pipeline order (the edge first, so its spool is
// delivered; then the consumers), and, unless kept, deletes the run's
// topics, Redis keys and files. Logs stay when keepLogs is set.
func (p *pipeline) close(keepLogs bool) {
	timeout := 30 * time.Second
	for _, pr := range p.procs() {
		pr.stop(timeout)
	}
	if !p.cfg.keep {
		p.deleteData()
	}
	if p.rdb != nil {
		p.rdb.Close()
	}
	p.httpc.CloseIdleConnections()
	p.markc.CloseIdleConnections()
	if !p.cfg.keep && !keepLogs {
		os.RemoveAll(p.dir)
	} else {
		fmt.Fprintf(p.out, "[%s] pipeline %s: logs and files kept in %s\n", time.Now().Format("15:04:05"), p.label, p.dir)
	}
}

// deleteData deletes the run's topics and Redis keys. (Kafka drops the
// consumer groups' committed offsets with the topics, and then the empty
// groups themselves.)
func (p *pipeline) deleteData() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(strings.Split(p.cfg.kafka, ",")...), Timeout: 30 * time.Second}
	var names []string
	for _, n := range []string{"pixel.hits.v1", "pixel.events.v1", "pixel.sessions.v1", "pixel.counts.v1", "pixel.dlq.v1"} {
		names = append(names, p.topicPrefix+n)
	}
	if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
		fmt.Fprintf(p.out, "delete topics %s*: %v\n", p.topicPrefix, err)
	}
	keys, err := redisconn.Keys(ctx, p.rdb, p.keyPrefix+":*")
	if err != nil {
		fmt.Fprintf(p.out, "scan Redis keys %s:*: %v\n", p.keyPrefix, err)
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if _, err := redisconn.Del(ctx, p.rdb, keys[:n]...); err != nil {
			fmt.Fprintf(p.out, "delete Redis keys %s:*: %v\n", p.keyPrefix, err)
		}
		keys = keys[n:]
	}
}

// freeAddr returns a free 127.0.0.1 port below the kernel's ephemeral range
// (ip_local_port_range), so the port cannot be taken, between this check
// and the part's bind, by an outgoing connection's local port (the parts
// and the load generators open many).
func freeAddr() (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	if low <= 20000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer l.Close()
		return l.Addr().String(), nil
	}
	for range 1000 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+mrand.IntN(low-20000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free port in 20000-%d", low-1)
}

// servicePID is the pid in pidfile when that process is alive, else the
// process listening on addr, else 0.
func servicePID(pidfile, addr string) int {
	if pidfile == "" {
		return procstat.ListenerPID(addr)
	}
	if b, err := os.ReadFile(pidfile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			return pid
		}
	}
	return procstat.ListenerPID(addr)
}

// repoRoot is the folder of this module's go.mod, found upwards from the
// working directory (the repository root for make, the package folder for
// go test); "." when there is none.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/pixelpipe/pixelpipe\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "."
		}
		dir = parent
	}
}
