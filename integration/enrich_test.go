//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestPoisonAndLabelledHits sends undecodable and invalid records between
// good ones, and bot, prefetch and machine-open hits, through a processor on
// real Kafka: the bad records land in the dead-letter topic with their
// reason and source, the stream moves on (offsets committed to the end), and
// labelled hits are written as events, labelled, not dropped.
func TestPoisonAndLabelledHits(t *testing.T) {
	s := newStack(t)
	hit := func(uid, ua, purpose string, kind pixelpb.Kind, invalid string) []byte {
		h := &pixelpb.RawHit{
			SchemaVersion: schemas.RawHitVersion,
			Origin:        &pixelpb.Origin{EventId: []byte(fmt.Sprintf("%-16s", uid)), ReceivedAtMs: time.Now().UnixMilli(), NodeId: "t"},
			Kind:          kind, ContentId: "c-" + uid, SiteId: "s", ClientIp: []byte{17, 58, 0, 9},
			UserAgent: ua, UserId: uid, Purpose: purpose, InvalidReason: invalid,
		}
		b, err := proto.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	msgs := []kafka.Message{
		{Key: []byte("k1"), Value: []byte("\xff\xfe not protobuf")},
		{Key: []byte("k2"), Value: hit("human", chrome, "", pixelpb.Kind_KIND_VIEW, "")},
		{Key: []byte("k3"), Value: hit("bad", chrome, "", pixelpb.Kind_KIND_VIEW, "bad_cid")},
		{Key: []byte("k4"), Value: hit("crawler", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "", pixelpb.Kind_KIND_VIEW, "")},
		{Key: []byte("k5"), Value: hit("prefetch", chrome, "prefetch", pixelpb.Kind_KIND_VIEW, "")},
		{Key: []byte("k6"), Value: hit("mpp", "Mozilla/5.0", "", pixelpb.Kind_KIND_OPEN, "")},
	}
	produce(t, s.kc, s.topics.Hits, msgs)
	got := collect(t, s.kc, s.topics.Events, s.topics.Sessions)
	s.startProcessor("poison")

	pipetest.Eventually(t, time.Minute, func() string {
		if n, _ := got.counts(); n != 4 {
			return fmt.Sprintf("%d events, want 4", n)
		}
		return ""
	})
	got.mu.Lock()
	byUID := map[string]*pixelpb.Event{}
	for _, evs := range got.events {
		byUID[strings.TrimPrefix(evs[0].GetContentId(), "c-")] = evs[0]
	}
	got.mu.Unlock()
	for uid, want := range map[string]string{"human": "", "crawler": "known_crawler", "prefetch": "prefetch", "mpp": "apple_mpp"} {
		ev := byUID[uid]
		if ev == nil {
			t.Fatalf("no event for %s", uid)
		}
		if reasons := strings.Join(ev.GetBotReasons(), ","); reasons != want || ev.GetBot() != (want != "") {
			t.Errorf("%s: bot=%v reasons %q, want %q", uid, ev.GetBot(), reasons, want)
		}
		if ev.GetMachineOpen() != (uid == "mpp") {
			t.Errorf("%s: machine_open=%v", uid, ev.GetMachineOpen())
		}
	}

	dlq := kafka.NewReader(kafka.ReaderConfig{Brokers: s.kc.Brokers, Topic: s.topics.DLQ, Partition: 0, MaxWait: 250 * time.Millisecond})
	defer dlq.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reasons := map[string]bool{}
	for range 2 {
		m, err := dlq.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letters: %v", err)
		}
		var reason, src string
		for _, h := range m.Headers {
			switch h.Key {
			case "reason":
				reason = string(h.Value)
			case "source":
				src = string(h.Value)
			}
		}
		if !strings.HasPrefix(src, s.topics.Hits+"/") {
			t.Fatalf("dead letter source %q", src)
		}
		reason, _, _ = strings.Cut(reason, ":")
		reasons[reason+":"+string(m.Key)] = true
	}
	if !reasons["decode:k1"] || !reasons["invalid:k3"] {
		t.Fatalf("dead letters %v, want the undecodable k1 and the invalid k3", reasons)
	}

	// The stream moved on: the group's committed offsets cover every record.
	client := &kafka.Client{Addr: kafka.TCP(s.kc.Brokers...)}
	pipetest.Eventually(t, 30*time.Second, func() string {
		resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "poison", Topics: map[string][]int{s.topics.Hits: {0, 1, 2, 3, 4, 5}}})
		if err != nil {
			return err.Error()
		}
		var committed int64
		for _, p := range resp.Topics[s.topics.Hits] {
			committed += max(p.CommittedOffset, 0)
		}
		if committed != int64(len(msgs)) {
			return fmt.Sprintf("committed offsets sum to %d, want %d", committed, len(msgs))
		}
		return ""
	})
}
