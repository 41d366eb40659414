//go:build integration

package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// sessionWorkload is raw hits with chosen event times (the injected clock):
// visitors whose hits are seconds to hours apart, so sessions split on
// inactivity and campaign changes, plus edge-retry duplicates.
type sessionWorkload struct {
	msgs []kafka.Message // in the order they are produced
	hits int             // distinct hits
	dups int             // duplicates among msgs
}

var workloadT0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC).UnixMilli()

func newSessionWorkload(t *testing.T, visitors, perVisitor int, seed uint64) sessionWorkload {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	keyer := visitor.NewKeyer(secret)
	type timed struct {
		at  int64
		msg kafka.Message
	}
	var all []timed
	gaps := []time.Duration{20 * time.Second, 3 * time.Minute, 12 * time.Minute, 29 * time.Minute, 31 * time.Minute, 2 * time.Hour}
	var w sessionWorkload
	for v := range visitors {
		uid := fmt.Sprintf("sv-%d", v)
		at := workloadT0 + rng.Int64N(int64(time.Hour/time.Millisecond))
		campaign := ""
		for i := range perVisitor {
			if i > 0 {
				at += gaps[rng.IntN(len(gaps))].Milliseconds()
			}
			if rng.IntN(10) == 0 {
				campaign = fmt.Sprintf("cmp-%d", rng.IntN(3))
			}
			h := &pixelpb.RawHit{
				SchemaVersion: schemas.RawHitVersion,
				Origin:        &pixelpb.Origin{EventId: make([]byte, 16), ReceivedAtMs: at, NodeId: "wl", Seq: uint64(len(all) + 1)},
				Kind:          pixelpb.Kind_KIND_VIEW, ContentId: fmt.Sprintf("page-%d", rng.IntN(20)), SiteId: "site",
				ClientIp: []byte{203, 0, 113, byte(v)}, UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
				UserId: uid, CampaignId: campaign, PageUrl: fmt.Sprintf("https://site.example/p/%d", i),
			}
			binary.BigEndian.PutUint64(h.Origin.EventId, rng.Uint64())
			binary.BigEndian.PutUint64(h.Origin.EventId[8:], rng.Uint64())
			b, err := proto.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := keyer.Key(at, []byte("site"), []byte(uid), nil, h.ClientIp, []byte(h.UserAgent))
			m := kafka.Message{Key: schemas.AppendVisitorPartitionKey(nil, key), Value: b}
			all = append(all, timed{at, m})
			w.hits++
			if rng.IntN(12) == 0 {
				// An edge retry: the same bytes again, shortly after.
				all = append(all, timed{at + rng.Int64N(90_000), m})
				w.dups++
			}
		}
	}
	// Hits arrive roughly in event time, as from live edges.
	sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
	for _, x := range all {
		w.msgs = append(w.msgs, x.msg)
	}
	return w
}

func produce(t *testing.T, kc kafkaconn.Config, topic string, msgs []kafka.Message) {
	t.Helper()
	w := kafkaconn.NewWriter(kc, topic, nil)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for len(msgs) > 0 {
		n := min(len(msgs), 500)
		if err := w.WriteMessages(ctx, msgs[:n]...); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		msgs = msgs[n:]
	}
}

// outputs collects what processors wrote: events by source position (every
// copy) and session summaries by session id (every copy).
type outputs struct {
	mu     sync.Mutex
	events map[[2]int64][]*pixelpb.Event
	// visits are the events of kind session, by (partition, offset, index)
	// of the record that closed them.
	visits   map[[3]int64][]*pixelpb.Event
	sessions map[string][]*pixelpb.Session
}

// collect reads the events and sessions topics from the start until the test
// ends.
func collect(t *testing.T, kc kafkaconn.Config, eventsTopic, sessionsTopic string) *outputs {
	t.Helper()
	o := &outputs{events: map[[2]int64][]*pixelpb.Event{}, visits: map[[3]int64][]*pixelpb.Event{}, sessions: map[string][]*pixelpb.Session{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, topic := range []string{eventsTopic, sessionsTopic} {
		r := kafkaconn.NewGroupReader(kc, topic, "collect-"+topic, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				o.mu.Lock()
				if topic == eventsTopic {
					ev := new(pixelpb.Event)
					if err := proto.Unmarshal(m.Value, ev); err != nil {
						t.Errorf("undecodable event: %v", err)
					}
					src := ev.GetSource()
					if ev.GetKind() == pixelpb.Kind_KIND_SESSION {
						pos := [3]int64{int64(src.GetPartition()), src.GetOffset(), int64(src.GetIndex())}
						o.visits[pos] = append(o.visits[pos], ev)
					} else {
						pos := [2]int64{int64(src.GetPartition()), src.GetOffset()}
						o.events[pos] = append(o.events[pos], ev)
					}
				} else {
					s := new(pixelpb.Session)
					if err := proto.Unmarshal(m.Value, s); err != nil {
						t.Errorf("undecodable session: %v", err)
					}
					o.sessions[string(s.GetSessionId())] = append(o.sessions[string(s.GetSessionId())], s)
				}
				o.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return o
}

// maxOffset is the highest source offset of partition part among the
// events seen, -1 when none.
func (o *outputs) maxOffset(part int) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := int64(-1)
	for pos := range o.events {
		if pos[0] == int64(part) && pos[1] > m {
			m = pos[1]
		}
	}
	return m
}

// snapshotPositions reads the stored snapshot position of each hits
// partition of the processor group, -1 where there is none.
func snapshotPositions(t *testing.T, s *stack, group string) []int64 {
	t.Helper()
	out := make([]int64, 6)
	for part := range out {
		out[part] = -1
		v, err := s.rdb.HGet(context.Background(), fmt.Sprintf("%s:proc:{%s|%s|%d}:snap", s.prefix, group, s.topics.Hits, part), "pos").Result()
		if err != nil {
			continue
		}
		next, _, _ := strings.Cut(v, " ")
		fmt.Sscan(next, &out[part])
	}
	return out
}

func (o *outputs) counts() (positions, sessions int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.events), len(o.sessions)
}

// sameAs compares o with a reference run: the same source positions with
// the same session id and sequence number, every copy of an event alike,
// the same closed sessions with the same summaries, and within every closed
// session the sequence numbers 1..events exactly once (no split, no
// duplicate).
func (o *outputs) sameAs(ref *outputs) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ref.mu.Lock()
	defer ref.mu.Unlock()
	if len(o.events) != len(ref.events) || len(o.sessions) != len(ref.sessions) {
		return fmt.Sprintf("%d event positions and %d sessions, reference %d and %d", len(o.events), len(o.sessions), len(ref.events), len(ref.sessions))
	}
	seqs := map[string]map[uint32]int{}
	for pos, evs := range o.events {
		want := ref.events[pos]
		if len(want) == 0 {
			return fmt.Sprintf("event at %v not in the reference", pos)
		}
		for _, ev := range evs {
			if string(ev.GetSessionId()) != string(want[0].GetSessionId()) || ev.GetSessionSeq() != want[0].GetSessionSeq() {
				return fmt.Sprintf("event at %v: session %x seq %d, reference %x seq %d", pos, ev.GetSessionId(), ev.GetSessionSeq(), want[0].GetSessionId(), want[0].GetSessionSeq())
			}
		}
		id := string(evs[0].GetSessionId())
		if seqs[id] == nil {
			seqs[id] = map[uint32]int{}
		}
		seqs[id][evs[0].GetSessionSeq()]++
	}
	for id, ss := range o.sessions {
		want := ref.sessions[id]
		if len(want) == 0 {
			return fmt.Sprintf("session %x not in the reference", id)
		}
		for _, s := range ss {
			if !proto.Equal(s, want[0]) {
				return fmt.Sprintf("session %x differs from the reference:\n got %v\nwant %v", id, s, want[0])
			}
		}
		n := ss[0].GetEvents()
		for seq := uint32(1); seq <= n; seq++ {
			if seqs[id][seq] != 1 {
				return fmt.Sprintf("session %x: sequence number %d appears %d times among its events, want once", id, seq, seqs[id][seq])
			}
		}
		if len(seqs[id]) != int(n) {
			return fmt.Sprintf("session %x: %d distinct sequence numbers, summary says %d events", id, len(seqs[id]), n)
		}
	}
	// Visits: the same ones at the same positions, every copy alike, and
	// each visit (session id) at one position only.
	if len(o.visits) != len(ref.visits) {
		return fmt.Sprintf("%d visit positions, reference %d", len(o.visits), len(ref.visits))
	}
	visitAt := map[string][3]int64{}
	for pos, evs := range o.visits {
		want := ref.visits[pos]
		if len(want) == 0 {
			return fmt.Sprintf("visit at %v not in the reference", pos)
		}
		for _, ev := range evs {
			if !proto.Equal(ev.GetSession(), want[0].GetSession()) || ev.GetContentId() != want[0].GetContentId() {
				return fmt.Sprintf("visit at %v differs from the reference:\n got %v\nwant %v", pos, ev.GetSession(), want[0].GetSession())
			}
		}
		id := string(evs[0].GetSessionId())
		if other, ok := visitAt[id]; ok {
			return fmt.Sprintf("visit %x at two positions, %v and %v", id, other, pos)
		}
		visitAt[id] = pos
		if s := o.sessions[id]; len(s) == 0 || s[0].GetPages() == 0 {
			return fmt.Sprintf("visit %x has no session with a page view", id)
		}
	}
	return ""
}

// referenceRun processes w's hits topic in one uninterrupted processor of
// its own group, writing to separate events and sessions topics.
func referenceRun(t *testing.T, s *stack, want int) *outputs {
	t.Helper()
	_, refTopics := pipetest.Kafka(t)
	ref := collect(t, s.kc, refTopics.Events, refTopics.Sessions)
	p, _ := s.newProcessor("reference", func(c *processor.Config) {
		c.EventsTopic, c.SessionsTopic, c.DLQTopic = refTopics.Events, refTopics.Sessions, refTopics.DLQ
	})
	s.run("reference processor", p)
	pipetest.Eventually(t, 2*time.Minute, func() string {
		if n, _ := ref.counts(); n != want {
			return fmt.Sprintf("reference run: %d events, want %d", n, want)
		}
		return ""
	})
	return ref
}

// TestSessionsSurviveRestartAndRebalance runs the same hits through an
// uninterrupted reference processor and through processors of another group
// that are joined, stopped and restarted mid-stream (each change a consumer-
// group rebalance), and requires the same events, session ids, sequence
// numbers and session summaries from both: no session split or duplicated,
// and every edge-retry duplicate dropped, also across the restarts.
func TestSessionsSurviveRestartAndRebalance(t *testing.T) {
	s := newStack(t)
	w := newSessionWorkload(t, 240, 16, 11)
	got := collect(t, s.kc, s.topics.Events, s.topics.Sessions)
	runOne := func(name string) (stop func()) {
		p, _ := s.newProcessor("subject", func(c *processor.Config) { c.MaxBatch = 200 })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	// The hits go in six chunks; between two chunks the group changes, so
	// every change happens with sessions open across it.
	stops := map[string]func(){}
	changes := []func(){
		func() { stops["A"] = runOne("A") },
		func() { stops["B"] = runOne("B") },               // rebalance: A and B share the partitions
		func() { stops["A"]() },                           // rebalance: B takes A's partitions, and their state from Redis
		func() { stops["B"](); stops["C"] = runOne("C") }, // restart from committed offsets and snapshots
		func() { stops["D"] = runOne("D") },
		func() { stops["C"]() },
	}
	chunk := (len(w.msgs) + len(changes) - 1) / len(changes)
	distinct := map[string]bool{}
	for i, change := range changes {
		change()
		msgs := w.msgs[i*chunk : min((i+1)*chunk, len(w.msgs))]
		produce(t, s.kc, s.topics.Hits, msgs)
		for _, m := range msgs {
			distinct[string(m.Value)] = true
		}
		pipetest.Eventually(t, 2*time.Minute, func() string {
			if n, _ := got.counts(); n != len(distinct) {
				return fmt.Sprintf("after chunk %d: %d events, want %d", i, n, len(distinct))
			}
			return ""
		})
	}
	defer stops["D"]()

	ref := referenceRun(t, s, w.hits)
	pipetest.Eventually(t, 2*time.Minute, func() string {
		if n, _ := got.counts(); n != w.hits {
			return fmt.Sprintf("%d events, want one per distinct hit: %d", n, w.hits)
		}
		return got.sameAs(ref)
	})
	if _, n := got.counts(); n < w.hits/16 {
		t.Fatalf("only %d sessions closed; the workload should close many", n)
	}
}

// TestSessionsSurviveKill9 runs the real binary as the processor and kills
// it with SIGKILL three times while it works through the hits (between its
// writes, snapshots and commits, wherever it is), restarting it each time,
// and requires the same output as an uninterrupted reference run.
func TestSessionsSurviveKill9(t *testing.T) {
	bin := buildBinary(t)
	s := newStack(t)
	w := newSessionWorkload(t, 300, 16, 23)
	topicPrefix := strings.TrimSuffix(s.topics.Hits, schemas.TopicHits)
	env := []string{
		"PIXEL_KAFKA_BROKERS=" + s.kc.Brokers[0],
		"PIXEL_KAFKA_TOPICPREFIX=" + topicPrefix,
		"PIXEL_VISITOR_SECRET=" + secret,
		"PIXEL_REDIS_ADDR=" + pipetest.RedisAddr(),
		"PIXEL_REDIS_KEYPREFIX=" + s.prefix,
		"PIXEL_ADMIN_LISTENADDR=127.0.0.1:0",
		"PIXEL_PROCESSOR_GROUP=killed",
		"PIXEL_PROCESSOR_MAXBATCH=100",
		// Snapshots (bases and deltas) several times a round: a round's
		// hits arrive over about a second.
		"PIXEL_PROCESSOR_SNAPSHOTINTERVAL=150ms",
		// No clock ticks: the uninterrupted reference run writes none, and
		// ticks would close sessions at other records than its hits do.
		"PIXEL_PROCESSOR_CLOCKTICK=0s",
		"PIXEL_LOG_LEVEL=info",
	}
	got := collect(t, s.kc, s.topics.Events, s.topics.Sessions)
	third := len(w.msgs) / 3
	var procs []*proc
	for round := range 3 {
		msgs := w.msgs[round*third : (round+1)*third]
		if round == 2 {
			msgs = w.msgs[2*third:]
		}
		// A first chunk, so the processor is seen consuming; the rest is
		// produced slowly while it runs, so its work spans several
		// snapshots.
		produce(t, s.kc, s.topics.Hits, msgs[:50])
		p := start(t, bin, fmt.Sprintf("processor-%d", round), "", env, "processor")
		procs = append(procs, p)
		before, _ := got.counts()
		pipetest.Eventually(t, time.Minute, func() string {
			if n, _ := got.counts(); n <= before {
				return fmt.Sprintf("round %d: %d events, want the processor consuming", round, n)
			}
			return ""
		})
		startPos := snapshotPositions(t, s, "killed")
		produced := make(chan error, 1)
		go func() {
			w := kafkaconn.NewWriter(s.kc, s.topics.Hits, nil)
			defer w.Close()
			for i := 50; i < len(msgs); i += 50 {
				if err := w.WriteMessages(context.Background(), msgs[i:min(i+50, len(msgs))]...); err != nil {
					produced <- err
					return
				}
				time.Sleep(30 * time.Millisecond)
			}
			produced <- nil
		}()
		// Kill once some partition's snapshot is behind what the processor
		// has written: the restart then loads that snapshot and replays
		// the hits after it.
		behind := false
		for deadline := time.Now().Add(30 * time.Second); !behind && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for part, pos := range snapshotPositions(t, s, "killed") {
				if pos > startPos[part] && got.maxOffset(part) >= pos {
					behind = true
				}
			}
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
		n, _ := got.counts()
		t.Logf("round %d: killed (snapshot behind the written events: %v) with %d events written of the %d distinct hits produced so far", round, behind, n, w.hits*min(round+1, 3)/3)
	}
	last := start(t, bin, "processor-last", "", env, "processor")
	defer last.stop(t, 30*time.Second)

	s.logger.Info("killed the processor three times; comparing with a reference run")
	ref := referenceRun(t, s, w.hits)
	pipetest.Eventually(t, 2*time.Minute, func() string {
		if n, _ := got.counts(); n != w.hits {
			return fmt.Sprintf("%d events, want one per distinct hit: %d", n, w.hits)
		}
		return got.sameAs(ref)
	})
	// The restarts rebuilt state from a snapshot and the hits after it, not
	// only from hits (which a test without snapshots would pass too).
	fromSnapshot := 0
	for _, p := range append(procs, last) {
		p.mu.Lock()
		for _, line := range p.logs {
			var e struct {
				Msg      string `json:"msg"`
				Snapshot int64  `json:"snapshot"`
				Replayed int64  `json:"replayed"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "partition state loaded" && e.Snapshot > 0 && e.Replayed > 0 {
				fromSnapshot++
			}
		}
		p.mu.Unlock()
	}
	if fromSnapshot == 0 {
		t.Fatal("no restart loaded a snapshot and replayed the hits after it")
	}
	t.Logf("%d partition loads from a snapshot plus replayed hits", fromSnapshot)
}
