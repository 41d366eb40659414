//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// proc is a pixelpipe process whose JSON log lines are kept, and shown when
// the test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []string
	addr chan string
	done chan error
}

// buildBinary builds the part binary, as make build does.
func buildBinary(t *testing.T) string {
	t.Helper()
	return buildBinaryTags(t, "")
}

// buildDevBinary builds the binary with dev mode, as make run does.
func buildDevBinary(t *testing.T) string {
	t.Helper()
	return buildBinaryTags(t, "devmode")
}

func buildBinaryTags(t *testing.T, tags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pixelpipe")
	out, err := exec.Command("go", "build", "-tags="+tags, "-o", bin, "../cmd/pixelpipe").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// start runs bin with args; addrMsg is the log message whose "addr"
// attribute is the address the process serves on.
func start(t *testing.T, bin, name, addrMsg string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, addr: make(chan string, 1), done: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs = append(p.logs, line)
			p.mu.Unlock()
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == addrMsg && entry.Addr != "" {
				select {
				case p.addr <- entry.Addr:
				default:
				}
			}
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("--- %s log:\n%s", p.name, strings.Join(p.logs, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

func (p *proc) waitAddr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-p.addr:
		return a
	case err := <-p.done:
		t.Fatalf("%s exited before serving: %v", p.name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not log its address in 30s", p.name)
	}
	return ""
}

// stop sends SIGTERM and requires a clean exit within timeout.
func (p *proc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want 0", p.name, err)
		}
	case <-time.After(timeout):
		t.Errorf("%s still running %s after SIGTERM", p.name, timeout)
	}
}

// TestBinaries runs the real binary as four processes configured by flags
// and environment variables, sends hits over HTTP, reads the counts from the
// query API, and stops every process with SIGTERM.
func TestBinaries(t *testing.T) {
	bin := buildBinary(t)
	kc, _ := pipetest.Kafka(t) // checks the broker is there
	_, redisPrefix := pipetest.Redis(t)
	topicPrefix := redisPrefix + "."
	broker := kc.Brokers[0]
	env := []string{
		"PIXEL_KAFKA_BROKERS=" + broker,
		"PIXEL_KAFKA_TOPICPREFIX=" + topicPrefix,
		"PIXEL_VISITOR_SECRET=binary-test",
		"PIXEL_REDIS_ADDR=" + pipetest.RedisAddr(),
		"PIXEL_REDIS_KEYPREFIX=" + redisPrefix,
		"PIXEL_ADMIN_LISTENADDR=127.0.0.1:0",
	}
	out, err := exec.Command(bin, "topics", "-kafka.brokers="+broker, "-kafka.topicPrefix="+topicPrefix).CombinedOutput()
	if err != nil || !strings.Contains(string(out), topicPrefix+"pixel.hits.v1 ready") {
		t.Fatalf("pixelpipe topics: %v\n%s", err, out)
	}
	t.Cleanup(func() { deleteTopics(t, broker, topicPrefix) })

	edge := start(t, bin, "edge", "edge serving", env, "edge", "-edge.listenAddr=127.0.0.1:0", "-edge.spool.dir="+t.TempDir())
	prc := start(t, bin, "processor", "processor consuming", env, "processor")
	agg := start(t, bin, "aggregator", "aggregator consuming", env, "aggregator", "-aggregator.flushInterval=200ms")
	qry := start(t, bin, "query", "query API serving", env, "query", "-query.listenAddr=127.0.0.1:0", "-query.token=bin-token")
	edgeAddr := edge.waitAddr(t)
	queryAddr := qry.waitAddr(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL: "http://" + edgeAddr, Total: 500, Workers: 4,
		Contents: 5, ContentPrefix: "bin-", Visitors: 50, Seed: 3,
	})
	if err != nil || res.Acked != 500 {
		t.Fatalf("loadgen: %v, acked %d (first error %v)", err, res.Acked, res.FirstErr)
	}
	day := time.Now().UTC().Format("2006-01-02")
	pipetest.Eventually(t, 60*time.Second, func() string {
		for cid, want := range res.PerContent {
			req, _ := http.NewRequest("GET", "http://"+queryAddr+"/v1/stats/"+cid+"?from="+day, nil)
			req.Header.Set("Authorization", "Bearer bin-token")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var got struct{ Total, Uniques int }
			if err := json.Unmarshal(body, &got); err != nil {
				return fmt.Sprintf("%s: %s", cid, body)
			}
			if got.Total != want.Hits || got.Uniques != len(want.Visitors) {
				return fmt.Sprintf("%s: got total %d uniques %d, want %d and %d", cid, got.Total, got.Uniques, want.Hits, len(want.Visitors))
			}
		}
		return ""
	})
	for _, p := range []*proc{edge, prc, agg, qry} {
		p.stop(t, 30*time.Second)
	}
}

func deleteTopics(t *testing.T, broker, prefix string) {
	t.Helper()
	names := []string{}
	for _, n := range []string{"pixel.hits.v1", "pixel.events.v1", "pixel.sessions.v1", "pixel.counts.v1", "pixel.dlq.v1"} {
		names = append(names, prefix+n)
	}
	deleteTopicNames(t, broker, names)
}
