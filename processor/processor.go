package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/processor/bots"
	"github.com/pixelpipe/pixelpipe/processor/device"
	"github.com/pixelpipe/pixelpipe/processor/geo"
	"github.com/pixelpipe/pixelpipe/processor/session"
	"github.com/pixelpipe/pixelpipe/processor/source"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Deps are what a processor reads from and writes to.
type Deps struct {
	// Reader is a consumer-group reader of the hits topic (kafkaconn).
	Reader *kafka.Reader
	// Events, Sessions and DLQ are synchronous writers of the events,
	// sessions and dead-letter topics (kafkaconn).
	Events, Sessions, DLQ *kafka.Writer
	// State keeps session and duplicate state in Redis.
	State *state.Store
}

// Processor is one member of the processor consumer group.
type Processor struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	d      Deps
	keyer  *visitor.Keyer
	now    func() time.Time

	geo     *geo.Locator
	ua      *device.Parser
	sources *source.List
	bots    *bots.Labeler

	parts  map[int]*part
	cache  *lru.Cache[uint64, cached]
	epochs uint64

	// Per batch, reused.
	hits   []decoded
	events []kafka.Message
	closed []kafka.Message
	dlq    []kafka.Message
}

// part is the state of one partition of the hits topic held by this
// processor.
type part struct {
	id     int
	loaded bool
	epoch  uint64
	clock  state.Clock
	// saved is clock.Next as last loaded or checkpointed.
	saved int64
	open  map[uint64]int64
	dirty map[uint64]*session.State
	// held are the states read during the current batch, so that a visitor
	// read twice in it (its hit, and a sweep) is one object.
	held map[uint64]*session.State
}

type cached struct {
	part  int
	epoch uint64
	st    *session.State
}

type decoded struct {
	hit     pixelpb.RawHit
	err     string // dead-letter reason, "" when valid
	visitor uint64
	idSrc   pixelpb.IdentitySource
	// prev is the cookieless key of the same visitor under the previous
	// day's salt, for a hit shortly after midnight (see linkMidnight).
	prev uint64
}

// New returns a processor. The processor closes the reader and writers when
// Run returns.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, d Deps) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	loc, err := geo.New(cfg.Geo, logger, reg)
	if err != nil {
		return nil, err
	}
	sources := source.DefaultList()
	if cfg.ReferrerList != "" {
		if err := loadFile(cfg.ReferrerList, sources.Load); err != nil {
			return nil, err
		}
	}
	bcfg := bots.Config{MaxPerMinute: uint32(cfg.MaxPerMinute), UACache: cfg.UACache}
	if cfg.DatacenterList != "" {
		f, err := os.Open(cfg.DatacenterList)
		if err != nil {
			return nil, fmt.Errorf("processor.datacenterList: %w", err)
		}
		bcfg.Datacenter, err = bots.LoadCIDRs(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("processor.datacenterList %s: %w", cfg.DatacenterList, err)
		}
	}
	cache, err := lru.New[uint64, cached](cfg.VisitorCache)
	if err != nil {
		return nil, err
	}
	return &Processor{
		cfg: cfg, logger: logger, m: newMetrics(reg), d: d,
		keyer: visitor.NewKeyer(cfg.VisitorSecret), now: time.Now,
		geo: loc, ua: device.NewParser(cfg.UACache, reg), sources: sources, bots: bots.New(bcfg),
		parts: map[int]*part{}, cache: cache,
	}, nil
}

func loadFile(path string, load func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := load(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Run consumes until ctx is done. The batch in hand when ctx ends is
// written, checkpointed and committed before Run returns.
func (p *Processor) Run(ctx context.Context) error {
	defer p.close()
	gctx, stopGeo := context.WithCancel(ctx)
	geoDone := make(chan error, 1)
	go func() { geoDone <- p.geo.Run(gctx) }()
	defer func() { stopGeo(); <-geoDone }()

	p.logger.Info("processor consuming", "topic", p.cfg.HitsTopic, "group", p.cfg.Group)
	var in []kafka.Message
	for ctx.Err() == nil {
		in = in[:0]
		m, err := p.d.Reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("fetch from %s: %w", p.cfg.HitsTopic, err)
		}
		in = append(in, m)
		deadline := time.Now().Add(p.cfg.MaxWait)
		for len(in) < p.cfg.MaxBatch {
			fctx, cancel := context.WithDeadline(ctx, deadline)
			m, err := p.d.Reader.FetchMessage(fctx)
			cancel()
			if err != nil {
				break
			}
			in = append(in, m)
		}
		// The batch is finished even when ctx ends meanwhile: its hits are
		// fetched, and committing them after writing is what keeps them.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err = p.handle(wctx, ctx, in)
		cancel()
		if err != nil {
			return err
		}
	}
	p.logger.Info("processor stopped")
	return nil
}

func (p *Processor) close() {
	if err := p.d.Reader.Close(); err != nil {
		p.logger.Warn("close hits reader", "err", err)
	}
	for _, w := range []*kafka.Writer{p.d.Events, p.d.Sessions, p.d.DLQ} {
		if err := w.Close(); err != nil {
			p.logger.Warn("close writer", "topic", w.Topic, "err", err)
		}
	}
}

// handle processes one batch to the end: transform with the session state,
// write, checkpoint, commit. A failure of Redis or Kafka is retried with
// backoff from the last checkpoint until stop ends; then it returns an
// error without committing, and the hits are replayed.
func (p *Processor) handle(ctx, stop context.Context, in []kafka.Message) error {
	backoff := 100 * time.Millisecond
	for {
		err := p.transform(ctx, in)
		if err == nil {
			err = p.deliver(ctx)
		}
		if err == nil {
			break
		}
		// Whatever this batch did to the in-memory state is dropped: the
		// retry starts again from the checkpoint in Redis.
		p.forget(in)
		if stop.Err() != nil || ctx.Err() != nil {
			return fmt.Errorf("batch of %d hits not finished while stopping (offsets not committed, hits will be replayed): %w", len(in), err)
		}
		p.logger.Warn("batch failed, retrying from the last checkpoint", "hits", len(in), "err", err)
		select {
		case <-time.After(backoff):
		case <-stop.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	now := p.now()
	for i := range p.events {
		p.m.lag.Observe(now.Sub(p.events[i].Time).Seconds())
	}
	if err := p.d.Reader.CommitMessages(ctx, in...); err != nil {
		// At-least-once: an uncommitted batch is replayed; the checkpoint
		// makes the processor skip what it already wrote, and the events
		// carry the same positions, which the aggregator skips.
		p.logger.Warn("commit hits offsets", "err", err)
	}
	return nil
}

// forget drops the in-memory state of the batch's partitions.
func (p *Processor) forget(in []kafka.Message) {
	for i := range in {
		if pt := p.parts[in[i].Partition]; pt != nil {
			pt.loaded = false
		}
	}
}

// deliver writes the batch's records, waiting for Kafka's acknowledgement,
// then checkpoints the state of every partition it touched.
func (p *Processor) deliver(ctx context.Context) error {
	for _, w := range []struct {
		wr   *kafka.Writer
		msgs []kafka.Message
	}{{p.d.Events, p.events}, {p.d.Sessions, p.closed}, {p.d.DLQ, p.dlq}} {
		if len(w.msgs) == 0 {
			continue
		}
		if err := w.wr.WriteMessages(ctx, w.msgs...); err != nil {
			p.m.writeErr.Inc()
			return fmt.Errorf("write %d records to %s: %w", len(w.msgs), w.wr.Topic, err)
		}
	}
	var changed []*session.State
	open := 0
	for _, pt := range p.parts {
		if !pt.loaded {
			continue
		}
		open += len(pt.open)
		if len(pt.dirty) == 0 && pt.clock.Next == pt.saved {
			clear(pt.held)
			continue
		}
		changed = changed[:0]
		for _, st := range pt.dirty {
			changed = append(changed, st)
		}
		ok, err := p.d.State.Checkpoint(ctx, p.statePart(pt.id), pt.clock, changed)
		if err != nil {
			p.m.stateErr.Inc()
			return err
		}
		if !ok {
			p.m.stateStale.Inc()
			p.logger.Info("partition state was checkpointed further by another processor; reloading", "partition", pt.id, "offset", pt.clock.Next)
			pt.loaded = false
			continue
		}
		for v, st := range pt.held {
			p.cache.Add(v, cached{part: pt.id, epoch: pt.epoch, st: st})
		}
		for v, st := range pt.dirty {
			p.cache.Add(v, cached{part: pt.id, epoch: pt.epoch, st: st})
		}
		clear(pt.dirty)
		clear(pt.held)
		pt.saved = pt.clock.Next
	}
	p.m.openSessions.Set(float64(open))
	return nil
}

func (p *Processor) statePart(id int) state.Partition {
	return state.Partition{Group: p.cfg.Group, Topic: p.cfg.HitsTopic, ID: id}
}

// partition returns the in-memory state of partition id, loading it from
// Redis when it is not held or when first (the batch's first offset of it)
// does not continue it: after a rebalance another processor may have moved
// it on.
func (p *Processor) partition(ctx context.Context, id int, first int64) (*part, error) {
	pt := p.parts[id]
	if pt != nil && pt.loaded && first <= pt.clock.Next {
		return pt, nil
	}
	clock, open, err := p.d.State.Load(ctx, p.statePart(id))
	if err != nil {
		p.m.stateErr.Inc()
		return nil, err
	}
	if clock.Next < 0 {
		clock.Next = first
	}
	p.epochs++
	pt = &part{id: id, loaded: true, epoch: p.epochs, clock: clock, saved: clock.Next, open: open,
		dirty: map[uint64]*session.State{}, held: map[uint64]*session.State{}}
	p.parts[id] = pt
	return pt, nil
}

// states returns the states of visitors of pt, from this batch's changes,
// the cache, or Redis; a visitor never seen gets a fresh state.
func (p *Processor) states(ctx context.Context, pt *part, visitors []uint64) (map[uint64]*session.State, error) {
	out := make(map[uint64]*session.State, len(visitors))
	var missing []uint64
	for _, v := range visitors {
		if _, ok := out[v]; ok {
			continue
		}
		if st := pt.dirty[v]; st != nil {
			out[v] = st
			continue
		}
		if st := pt.held[v]; st != nil {
			out[v] = st
			continue
		}
		if c, ok := p.cache.Get(v); ok && c.part == pt.id && c.epoch == pt.epoch {
			out[v] = c.st
			continue
		}
		out[v] = nil
		missing = append(missing, v)
	}
	if len(missing) > 0 {
		sts, err := p.d.State.Visitors(ctx, p.statePart(pt.id), missing)
		if err != nil {
			p.m.stateErr.Inc()
			return nil, err
		}
		for i, v := range missing {
			if sts[i] == nil {
				sts[i] = &session.State{Visitor: v}
			}
			out[v] = sts[i]
			pt.held[v] = sts[i]
		}
	}
	return out, nil
}

// transform turns the batch's raw hits into event, session and dead-letter
// messages, updating the partitions' session state in memory.
func (p *Processor) transform(ctx context.Context, in []kafka.Message) error {
	p.events, p.closed, p.dlq = p.events[:0], p.closed[:0], p.dlq[:0]
	if cap(p.hits) < len(in) {
		p.hits = make([]decoded, len(in))
	}
	p.hits = p.hits[:len(in)]

	// Decode everything first, to load the state of every visitor of the
	// batch with one Redis round trip per partition.
	byPart := map[int][]uint64{}
	firsts := map[int]int64{}
	for i := range in {
		src, d := &in[i], &p.hits[i]
		if _, ok := firsts[src.Partition]; !ok {
			firsts[src.Partition] = src.Offset
		}
		d.hit.Reset()
		d.err = ""
		if err := proto.Unmarshal(src.Value, &d.hit); err != nil {
			d.err = "decode: " + err.Error()
			continue
		}
		if reason := validate(&d.hit); reason != "" {
			d.err = "invalid: " + reason
			continue
		}
		h := &d.hit
		d.visitor, d.idSrc = p.keyer.Key(h.GetOrigin().GetReceivedAtMs(), []byte(h.GetSiteId()),
			[]byte(h.GetUserId()), []byte(h.GetCookieId()), h.GetClientIp(), []byte(h.GetUserAgent()))
		byPart[src.Partition] = append(byPart[src.Partition], d.visitor)
		d.prev = 0
		if d.idSrc == pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS {
			d.prev = p.keyer.PreviousDayKey(h.GetOrigin().GetReceivedAtMs(), p.cfg.Session.Timeout,
				[]byte(h.GetSiteId()), h.GetClientIp(), []byte(h.GetUserAgent()))
			if d.prev != 0 {
				byPart[src.Partition] = append(byPart[src.Partition], d.prev)
			}
		}
	}
	parts := make(map[int]*part, len(firsts))
	states := make(map[int]map[uint64]*session.State, len(firsts))
	for id, first := range firsts {
		pt, err := p.partition(ctx, id, first)
		if err != nil {
			return err
		}
		parts[id] = pt
		if states[id], err = p.states(ctx, pt, byPart[id]); err != nil {
			return err
		}
		// The keys linked visitors are counted under (Alias), in a second
		// round trip, needed only after midnight.
		var aliases []uint64
		for _, st := range states[id] {
			if _, ok := states[id][st.Alias]; st.Alias != 0 && !ok {
				aliases = append(aliases, st.Alias)
			}
		}
		if len(aliases) > 0 {
			more, err := p.states(ctx, pt, aliases)
			if err != nil {
				return err
			}
			for v, st := range more {
				states[id][v] = st
			}
		}
	}

	now := p.now().UnixMilli()
	for i := range in {
		src, d := &in[i], &p.hits[i]
		pt := parts[src.Partition]
		if src.Offset < pt.clock.Next {
			// Its output was written before the last checkpoint (or earlier
			// in this batch, when Kafka delivers a message twice).
			p.m.replayed.Inc()
			continue
		}
		pt.clock.Next = src.Offset + 1
		if d.err != "" {
			if d.err[0] == 'd' {
				p.m.dlqDecode.Inc()
			} else {
				p.m.dlqInvalid.Inc()
			}
			p.dlq = append(p.dlq, kafkaconn.DeadLetter(src, d.err))
			continue
		}
		st := states[src.Partition][d.visitor]
		if d.idSrc == pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS {
			st = p.linkMidnight(pt, states[src.Partition], d, st)
		}
		if err := p.apply(ctx, pt, st, src, d, now); err != nil {
			return err
		}
	}
	return nil
}

// linkMidnight keeps a cookieless visit that spans midnight one visitor.
// The cookieless key rotates with the day's salt; a visitor's first hit
// under a new day's key (st fresh) that continues a session open under the
// previous day's key d.prev (its last hit within the session timeout) is
// counted under that key, and the new key is linked to it (Alias) for the
// rest of the day, so the visit is one session, and the visitor one unique,
// on both days and across them. Hits of a linked key are counted under its
// alias. It returns the state to apply the hit to and sets d.visitor to its
// key. The edge partitions cookieless hits by a key without the salt, so
// both keys' states are in this partition; hits from edges that partition
// by the day's key are simply not linked.
func (p *Processor) linkMidnight(pt *part, sts map[uint64]*session.State, d *decoded, st *session.State) *session.State {
	if st.Alias != 0 {
		if t := sts[st.Alias]; t != nil {
			d.visitor = st.Alias
			return t
		}
		return st
	}
	if d.prev == 0 || st.NewestMs != 0 || st.Open != nil || len(st.Seen) > 0 {
		return st
	}
	key, prev := d.prev, sts[d.prev]
	if prev != nil && prev.Alias != 0 { // linked itself the midnight before
		key, prev = prev.Alias, sts[prev.Alias]
	}
	at := d.hit.GetOrigin().GetReceivedAtMs()
	if prev == nil || prev.Open == nil || at > prev.Open.LastMs+p.cfg.Session.Timeout.Milliseconds() {
		return st
	}
	st.Alias = key
	pt.dirty[st.Visitor] = st
	p.m.midnightLinks.Inc()
	d.visitor = key
	return prev
}

// apply runs one valid hit through sessions, enrichment and labelling.
func (p *Processor) apply(ctx context.Context, pt *part, st *session.State, src *kafka.Message, d *decoded, now int64) error {
	hit := &d.hit
	at := hit.GetOrigin().GetReceivedAtMs()
	pageURL, referrer := pii.RedactPII(hit.GetPageUrl()), pii.RedactPII(hit.GetReferrer())
	srcInfo := p.sources.Classify(pageURL, referrer)
	campaign := hit.GetCampaignId()
	if campaign == "" {
		campaign = srcInfo.UTMCampaign
	}
	var sh session.Hit
	copy(sh.EventID[:], hit.GetOrigin().GetEventId())
	sh.AtMs, sh.Site, sh.Campaign, sh.Page, sh.Referrer = at, hit.GetSiteId(), campaign, pageURL, referrer
	sh.IsPage = hit.GetKind() == pixelpb.Kind_KIND_VIEW
	res := p.cfg.Session.Apply(st, &sh)
	if res.Duplicate {
		p.m.duplicate.Inc()
		return nil
	}
	pt.dirty[d.visitor] = st
	if st.Open != nil {
		pt.open[d.visitor] = st.Open.LastMs
	} else {
		delete(pt.open, d.visitor)
	}
	if res.Closed != nil {
		p.emitSession(res.Closed)
	}

	ip, _ := netip.AddrFromSlice(hit.GetClientIp())
	g := p.geo.Lookup(ip)
	dev := p.ua.Parse(hit.GetUserAgent())
	reasons, machineOpen := p.bots.Label(&bots.Input{
		Kind: hit.GetKind(), UserAgent: hit.GetUserAgent(), Device: dev, Purpose: hit.GetPurpose(),
		PresentHeaders: hit.GetPresentHeaders(), IP: ip, RatePerMinute: res.RatePerMinute,
	}, nil)
	ev := &pixelpb.Event{
		SchemaVersion:  schemas.EventVersion,
		Origin:         hit.GetOrigin(),
		Source:         &pixelpb.SourcePosition{Partition: int32(src.Partition), Offset: src.Offset},
		Kind:           hit.GetKind(),
		ContentId:      hit.GetContentId(),
		SiteId:         hit.GetSiteId(),
		CampaignId:     hit.GetCampaignId(),
		VisitorKey:     d.visitor,
		IdentitySource: d.idSrc,
		PageUrl:        pageURL,
		Referrer:       referrer,
		IpTruncated:    truncateIP(hit.GetClientIp(), p.cfg.IPv4Bits, p.cfg.IPv6Bits),
		ProcessedAtMs:  now,

		Country: g.Country, Region: g.Region, City: g.City, Asn: g.ASN,
		DeviceType: dev.Type, Os: dev.OS, OsVersion: dev.OSVersion, Browser: dev.Browser, BrowserVersion: dev.BrowserVersion,
		Bot: len(reasons) > 0, BotReasons: reasons, MachineOpen: machineOpen,

		ReferrerDomain: srcInfo.ReferrerDomain, ReferrerMedium: srcInfo.Medium,
		UtmSource: srcInfo.UTMSource, UtmMedium: srcInfo.UTMMedium, UtmCampaign: srcInfo.UTMCampaign,
		UtmTerm: srcInfo.UTMTerm, UtmContent: srcInfo.UTMContent,
		ClickId: srcInfo.ClickID, ClickNetwork: srcInfo.ClickNetwork,

		SessionId:  res.SessionID[:],
		SessionSeq: res.Seq,

		AdId: hit.GetAdId(), CreativeId: hit.GetCreativeId(), PlacementId: hit.GetPlacementId(),
		OrderId: hit.GetOrderId(), ValueMicros: hit.GetValueMicros(), Currency: hit.GetCurrency(),
		Verified: hit.GetVerified(), Props: redactProps(hit.GetProps()), Route: hit.GetRoute(),
	}
	if ev.Bot {
		p.m.bot.Inc()
	}
	if machineOpen {
		p.m.machineOpen.Inc()
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		panic("BUG: marshal event: " + err.Error())
	}
	p.m.events.Inc()
	p.events = append(p.events, kafka.Message{Key: []byte(ev.GetContentId()), Value: b, Time: time.UnixMilli(at)})

	// Event time moves the partition's clock; once a minute of it, sessions
	// idle past the timeout are closed. Sweeping at fixed points of event
	// time, not at batch ends, makes a replay close the same sessions at the
	// same hits.
	if at > pt.clock.WatermarkMs {
		pt.clock.WatermarkMs = at
	}
	if pt.clock.WatermarkMs >= pt.clock.NextSweepMs {
		if err := p.sweep(ctx, pt); err != nil {
			return err
		}
		pt.clock.NextSweepMs = (pt.clock.WatermarkMs/60_000 + 1) * 60_000
	}
	return nil
}

// sweep closes the sessions of pt that ended more than the timeout before
// the watermark.
func (p *Processor) sweep(ctx context.Context, pt *part) error {
	cut := pt.clock.WatermarkMs - p.cfg.Session.Timeout.Milliseconds()
	var due []uint64
	for v, last := range pt.open {
		if last < cut {
			due = append(due, v)
		}
	}
	if len(due) == 0 {
		return nil
	}
	// Map order is random; close in visitor order so replays write the same
	// sequence of summaries.
	sortUint64(due)
	sts, err := p.states(ctx, pt, due)
	if err != nil {
		return err
	}
	for _, v := range due {
		st := sts[v]
		if sum := p.cfg.Session.Expire(st, pt.clock.WatermarkMs); sum != nil {
			p.emitSession(sum)
		}
		delete(pt.open, v)
		pt.dirty[v] = st
	}
	return nil
}

func (p *Processor) emitSession(s *pixelpb.Session) {
	b, err := proto.Marshal(s)
	if err != nil {
		panic("BUG: marshal session: " + err.Error())
	}
	p.m.sessionsClosed.Inc()
	p.closed = append(p.closed, kafka.Message{
		Key:   schemas.AppendVisitorPartitionKey(nil, s.GetVisitorKey()),
		Value: b,
		Time:  time.UnixMilli(s.GetEndMs()),
	})
}

func redactProps(in []*pixelpb.Prop) []*pixelpb.Prop {
	for i, pr := range in {
		k, v := pii.RedactPII(pr.GetKey()), pii.RedactParam(pr.GetKey(), pr.GetValue())
		if k != pr.GetKey() || v != pr.GetValue() {
			in[i] = &pixelpb.Prop{Key: k, Value: v}
		}
	}
	return in
}

func sortUint64(s []uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// validate returns why a decoded hit cannot become an event, or "".
func validate(h *pixelpb.RawHit) string {
	switch {
	case h.GetInvalidReason() != "":
		return h.GetInvalidReason()
	case h.GetSchemaVersion() != schemas.RawHitVersion:
		return "unknown schema version " + strconv.Itoa(int(h.GetSchemaVersion()))
	case h.GetContentId() == "":
		return "missing_cid"
	case h.GetOrigin() == nil || len(h.GetOrigin().GetEventId()) != 16 || h.GetOrigin().GetReceivedAtMs() <= 0:
		return "bad_origin"
	case h.GetKind() == pixelpb.Kind_KIND_UNSPECIFIED:
		return "bad_kind"
	}
	return ""
}

// TruncateIP keeps the network part of an address: /24 of IPv4, /48 of IPv6.
// Anything else gives nil.
func TruncateIP(ip []byte) []byte { return truncateIP(ip, 24, 48) }

// truncateIP keeps the first v4 bits of an IPv4 address and v6 bits of an
// IPv6 one; anything else gives nil.
func truncateIP(ip []byte, v4, v6 int) []byte {
	bits := v4
	switch len(ip) {
	case 4:
	case 16:
		bits = v6
	default:
		return nil
	}
	out := make([]byte, len(ip))
	full := bits / 8
	copy(out, ip[:full])
	if rem := bits % 8; rem != 0 {
		out[full] = ip[full] & byte(0xff<<(8-rem))
	}
	return out
}
