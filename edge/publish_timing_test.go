//go:build integration

package edge

import (
	"encoding/binary"
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
// from the handler, then drained. It reports the process's CPU per hit (the
// drain is all that runs while timing) and, when the broker runs on this
// machine as a process listening on the broker port, the broker's CPU per
// hit. Hits come from many visitors, so they spread over the topic's
// partitions. path=produce is the edge's publisher (kafka-go's
// Client.Produce over the spooled bytes); path=writer, the reference, hands
// the same batches to a kafka-go Writer as Messages (BatchSize 2000 per
// partition), as the edge did before.
func BenchmarkPublish(b *testing.B) {
	for _, batch := range []int{2000, 8000} {
		for _, codec := range benchCodecs {
			b.Run(fmt.Sprintf("path=produce/batch=%d/compression=%s", batch, codec.name), func(b *testing.B) {
				benchPublish(b, batch, codec.c, false)
			})
		}
		b.Run(fmt.Sprintf("path=writer/batch=%d/compression=none", batch), func(b *testing.B) {
			benchPublish(b, batch, 0, true)
		})
	}
}

func benchPublish(b *testing.B, batch int, codec kafka.Compression, viaWriter bool) {
	kc, topics := pipetest.Kafka(b)
	w := kafkaconn.NewWriter(kc, topics.Hits, nil)
	w.BatchSize = 2000
	w.Compression = codec
	defer w.Close()
	s := newTestServer(b, func(c *Config) {
		c.BatchSize = batch
		c.Kafka.Brokers, c.Kafka.Topic = kc.Brokers, topics.Hits
	})
	s.pub.prod.codec = codec
	defer s.pub.prod.close()
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
	if viaWriter {
		drainWithWriter(b, s, w, batch)
	} else {
		stop := make(chan struct{})
		close(stop) // drain what is there, then return
		s.pub.run(stop, b.Context())
	}
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

// drainWithWriter is the reference: the spool's batches as kafka.Messages
// through kafka-go's Writer.
func drainWithWriter(b *testing.B, s *Server, w *kafka.Writer, batch int) {
	msgs := make([]kafka.Message, 0, batch)
	for {
		recs, pos, err := s.spool.Read(batch, 8<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			return
		}
		msgs = msgs[:0]
		for _, r := range recs {
			msgs = append(msgs, kafka.Message{
				Key:   r[:keyLen],
				Value: r[headerLen:],
				Time:  time.UnixMilli(int64(binary.BigEndian.Uint64(r[keyLen:headerLen]))),
			})
		}
		if err := w.WriteMessages(b.Context(), msgs...); err != nil {
			b.Fatal(err)
		}
		if err := s.spool.Ack(pos, len(recs)); err != nil {
			b.Fatal(err)
		}
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

var benchCodecs = []struct {
	name string
	c    kafka.Compression
}{{"none", 0}, {"lz4", kafka.Lz4}, {"snappy", kafka.Snappy}}
