//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestDownstreamContract reads processor output the way a downstream team
// without this code would: raw bytes from the real topic with kcat
// (librdkafka, from Debian), decoded by protoc --decode with nothing but the
// .proto files of schemas/proto. The decoded text must be the very event the
// Go code wrote. It fails when kcat or protoc is missing: install them with
// `apt-get install -y kcat protobuf-compiler` (deploy/local/services.sh up
// does).
func TestDownstreamContract(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: apt-get install -y kcat protobuf-compiler (or make services-up)")
	}
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Fatal("protoc is not installed: apt-get install -y kcat protobuf-compiler (or make services-up)")
	}
	s := newStack(t)
	w := newSessionWorkload(t, 20, 6, 5)
	produce(t, s.kc, s.topics.Hits, w.msgs)
	got := collect(t, s.kc, s.topics.Events, s.topics.Sessions)
	s.startProcessor("contract")
	pipetest.Eventually(t, time.Minute, func() string {
		if n, _ := got.counts(); n != w.hits {
			return fmt.Sprintf("%d events, want %d", n, w.hits)
		}
		return ""
	})

	decode := func(typ, file, topic string, partition int, offset int64) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		raw, err := exec.CommandContext(ctx, kcat, "-C", "-b", s.kc.Brokers[0], "-t", topic,
			"-p", strconv.Itoa(partition), "-o", strconv.FormatInt(offset, 10), "-c", "1", "-e", "-q", "-f", "%s").Output()
		if err != nil {
			t.Fatalf("kcat: %v", err)
		}
		cmd := exec.CommandContext(ctx, protoc, "--decode="+typ, "-I", "../schemas/proto", file)
		cmd.Stdin = bytes.NewReader(raw)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		text, err := cmd.Output()
		if err != nil {
			t.Fatalf("protoc --decode=%s: %v\n%s", typ, err, stderr.String())
		}
		return text
	}

	// Every event of one partition of the events topic, by its position
	// there; events are keyed by content id, so any partition with records
	// will do.
	r := newPartitionDump(t, s, s.topics.Events)
	if len(r) == 0 {
		t.Fatal("no events in the events topic")
	}
	checked := 0
	for _, rec := range r {
		text := decode("pixelpipe.v1.Event", "pixelpipe/v1/event.proto", s.topics.Events, rec.partition, rec.offset)
		var fromProtoc pixelpb.Event
		if err := prototext.Unmarshal(text, &fromProtoc); err != nil {
			t.Fatalf("protoc's text does not parse: %v\n%s", err, text)
		}
		if !proto.Equal(&fromProtoc, rec.event) {
			t.Fatalf("protoc decoded\n%s\nthe processor wrote\n%v", text, rec.event)
		}
		fields := []string{"content_id:", "session_id:", "session_seq:", "referrer_medium:", "visitor_key:"}
		if rec.event.GetKind() == pixelpb.Kind_KIND_SESSION {
			// A visit: no hit's fields, its summary instead.
			fields = []string{"kind: KIND_SESSION", "content_id:", "session_id:", "visitor_key:", "session {", "pages:"}
		}
		for _, field := range fields {
			if !bytes.Contains(text, []byte(field)) {
				t.Fatalf("protoc's decoding lacks %s:\n%s", field, text)
			}
		}
		if checked++; checked == 5 {
			break
		}
	}
}

type dumped struct {
	partition int
	offset    int64
	event     *pixelpb.Event
}

// newPartitionDump reads the records of the first non-empty partition of
// topic with a plain kafka-go reader.
func newPartitionDump(t *testing.T, s *stack, topic string) []dumped {
	t.Helper()
	for p := range 6 {
		out := readPartition(t, s, topic, p)
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// TestTailCommand runs `pixelpipe tail` against the real events and
// sessions topics and requires one protojson line per record, decoding back
// to what the processor wrote.
func TestTailCommand(t *testing.T) {
	bin := buildBinary(t)
	s := newStack(t)
	w := newSessionWorkload(t, 20, 6, 9)
	produce(t, s.kc, s.topics.Hits, w.msgs)
	got := collect(t, s.kc, s.topics.Events, s.topics.Sessions)
	s.startProcessor("tail")
	pipetest.Eventually(t, time.Minute, func() string {
		if n, _ := got.counts(); n != w.hits {
			return fmt.Sprintf("%d events, want %d", n, w.hits)
		}
		return ""
	})
	// The visits the hits closed, written with them, collected too.
	visits := 0
	for _, v := range pipetest.ReadTopic(t, s.kc.Brokers[0], s.topics.Events) {
		var ev pixelpb.Event
		if err := proto.Unmarshal(v, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.GetKind() == pixelpb.Kind_KIND_SESSION {
			visits++
		}
	}
	pipetest.Eventually(t, time.Minute, func() string {
		got.mu.Lock()
		defer got.mu.Unlock()
		if len(got.visits) != visits {
			return fmt.Sprintf("%d visits collected, the topic holds %d", len(got.visits), visits)
		}
		return ""
	})
	prefix := strings.TrimSuffix(s.topics.Hits, schemas.TopicHits)
	out, err := exec.Command(bin, "tail", "-kafka.brokers="+s.kc.Brokers[0], "-kafka.topicPrefix="+prefix, "events").Output()
	if err != nil {
		t.Fatalf("pixelpipe tail: %v", err)
	}
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	got.mu.Lock()
	defer got.mu.Unlock()
	for sc.Scan() {
		var ev pixelpb.Event
		if err := protojson.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not a protojson Event: %v\n%s", lines+1, err, sc.Text())
		}
		src := ev.GetSource()
		want := got.events[[2]int64{int64(src.GetPartition()), src.GetOffset()}]
		if ev.GetKind() == pixelpb.Kind_KIND_SESSION {
			want = got.visits[[3]int64{int64(src.GetPartition()), src.GetOffset(), int64(src.GetIndex())}]
		}
		if len(want) == 0 || !proto.Equal(&ev, want[0]) {
			t.Fatalf("tail printed an event the processor did not write:\n%s", sc.Text())
		}
		if !strings.Contains(sc.Text(), `"content_id"`) {
			t.Fatalf("want the .proto field names: %s", sc.Text())
		}
		lines++
	}
	if lines != w.hits+visits || visits == 0 {
		t.Fatalf("tail printed %d events, want %d hits' and %d visits (the workload closes some)", lines, w.hits, visits)
	}
}

func readPartition(t *testing.T, s *stack, topic string, partition int) []dumped {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", s.kc.Brokers[0], topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	last, err := conn.ReadLastOffset()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if last == 0 {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.kc.Brokers, Topic: topic, Partition: partition, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	var out []dumped
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s/%d: %v", topic, partition, err)
		}
		ev := new(pixelpb.Event)
		if err := proto.Unmarshal(m.Value, ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, dumped{partition: partition, offset: m.Offset, event: ev})
		if m.Offset >= last-1 {
			return out
		}
	}
}
