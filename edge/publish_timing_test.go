//go:build integration

package edge

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/procstat"
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
	broker := procstat.ListenerPID(kc.Brokers[0])
	b.ResetTimer()
	cpu0, bcpu0 := selfCPU(), procstat.CPU(broker)
	stop := make(chan struct{})
	close(stop) // drain what is there, then return
	s.pub.run(stop, b.Context())
	cpu1, bcpu1 := selfCPU(), procstat.CPU(broker)
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

// benchBatches are the publisher's batch (hits per WriteMessages call) and
// the kafka-go Writer's BatchSize (hits per partition per produce request;
// kafka-go allocates a slice that long per partition per call).
var benchBatches = []struct{ read, writer int }{{2000, 2000}, {2000, 500}, {8000, 8000}, {8000, 2000}}

var benchCodecs = []struct {
	name string
	c    kafka.Compression
}{{"none", 0}, {"lz4", kafka.Lz4}, {"snappy", kafka.Snappy}}
