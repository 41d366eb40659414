//go:build integration

package edge

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// BenchmarkPublish measures what delivering spooled hits to the real Kafka
// (PIXEL_TEST_KAFKA) costs per hit: the spool is filled with b.N pixel hits
// from the handler, then the publisher drains it. It reports the process's
// CPU per hit (the publisher is all that runs while timing) and, when the
// broker runs on this machine as a process listening on the broker port,
// the broker's CPU per hit, by batch sizes and compression. Hits come from
// many visitors, so they spread over the topic's partitions.
func BenchmarkPublish(b *testing.B) {
	for _, batch := range benchBatches {
		for _, codec := range benchCodecs {
			b.Run(fmt.Sprintf("batch=%d/writer=%d/compression=%s", batch.read, batch.writer, codec.name), func(b *testing.B) {
				benchPublish(b, batch.read, batch.writer, codec.c)
			})
		}
	}
}

func benchPublish(b *testing.B, batch, writerBatch int, codec kafka.Compression) {
	kc, topics := pipetest.Kafka(b)
	w := kafkaconn.NewWriter(kc, topics.Hits, nil)
	w.BatchSize = writerBatch
	w.Compression = codec
	s := newTestServer(b, func(c *Config) { c.BatchSize = batch })
	s.pub.w = w
	defer w.Close()
	// Fill the spool with distinct hits (the cache buster and visitor vary).
	req := benchRequest()
	for i := range b.N {
		req.SetRequestURI("/p.gif?cid=article-" + strconv.Itoa(i%500) + "&site=news&k=impression&cmp=spring&url=https%3A%2F%2Fx.example%2Fa%2F" + strconv.Itoa(i%500) + "&cb=" + strconv.Itoa(i))
		servePixel(s, req, i)
	}
	req.Reset()
	broker := brokerPID(kc.Brokers[0])
	b.ResetTimer()
	cpu0, bcpu0 := selfCPU(), procCPU(broker)
	stop := make(chan struct{})
	close(stop) // drain what is there, then return
	s.pub.run(stop, b.Context())
	cpu1, bcpu1 := selfCPU(), procCPU(broker)
	b.StopTimer()
	if got := s.spool.Stats().Records; got != 0 {
		b.Fatalf("%d hits left in the spool", got)
	}
	b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/hit")
	if broker > 0 {
		b.ReportMetric(float64(bcpu1-bcpu0)/float64(time.Microsecond)/float64(b.N), "broker-cpu-µs/hit")
	}
}

func servePixel(s *Server, req *fasthttp.Request, i int) {
	var ctx fasthttp.RequestCtx
	ctx.Init(req, &net.TCPAddr{IP: net.IPv4(198, 51, byte(i>>8), byte(i)), Port: 4000}, nil)
	s.handle(&ctx)
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// brokerPID finds the process listening on the broker's port, or 0.
func brokerPID(addr string) int {
	_, port, _ := strings.Cut(addr, ":")
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

// procCPU is the utime+stime of pid from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	u, _ := strconv.ParseInt(rest[11], 10, 64)
	st, _ := strconv.ParseInt(rest[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond // USER_HZ 100
}

// benchBatches are the publisher's batch (hits per WriteMessages call) and
// the kafka-go Writer's BatchSize (hits per partition per produce request;
// kafka-go allocates a slice that long per partition per call).
var benchBatches = []struct{ read, writer int }{{2000, 2000}, {2000, 500}, {8000, 8000}, {8000, 2000}}

var benchCodecs = []struct {
	name string
	c    kafka.Compression
}{{"none", 0}, {"lz4", kafka.Lz4}, {"snappy", kafka.Snappy}}
