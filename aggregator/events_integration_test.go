//go:build integration

package aggregator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// viewEvent is a view of dk's content id at atMs from source partition p,
// offset o, by a visitor of its own.
func viewEvent(dk hllstore.DayKey, atMs int64, p int32, o int64) *pixelpb.Event {
	return &pixelpb.Event{
		ContentId: dk.ContentID, Kind: pixelpb.Kind_KIND_VIEW, VisitorKey: uint64(p)<<32 | uint64(o),
		Origin: &pixelpb.Origin{ReceivedAtMs: atMs},
		Source: &pixelpb.SourcePosition{Partition: p, Offset: o},
	}
}

// sendViews writes the views of source partition 0, offsets from to to,
// to the events topic, retrying while a fresh topic refuses.
func sendViews(t *testing.T, prod *kafkaconn.Producer, dk hllstore.DayKey, atMs, from, to int64) {
	t.Helper()
	var msgs []kafka.Message
	for o := from; o <= to; o++ {
		b, err := proto.Marshal(viewEvent(dk, atMs, 0, o))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(dk.ContentID), Value: b})
	}
	pipetest.Eventually(t, 30*time.Second, func() string {
		if err := prod.WriteMessages(context.Background(), msgs...); err != nil {
			return err.Error()
		}
		return ""
	})
}

// viewTotal is a pipetest.Eventually condition: Redis holds want human
// views for dk's day.
func viewTotal(store *hllstore.Store, dk hllstore.DayKey, want uint64) func() string {
	return func() string {
		recs, err := store.Load(context.Background(), []hllstore.Key{dk.Key(hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: hllstore.DayRecord})})
		if err != nil {
			return err.Error()
		}
		if recs[0].Total != want {
			return fmt.Sprintf("total %d, want %d", recs[0].Total, want)
		}
		return ""
	}
}
