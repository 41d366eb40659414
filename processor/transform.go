package processor

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/processor/bots"
	"github.com/pixelpipe/pixelpipe/processor/device"
	"github.com/pixelpipe/pixelpipe/processor/session"
	"github.com/pixelpipe/pixelpipe/processor/signing"
	"github.com/pixelpipe/pixelpipe/processor/source"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

type decoded struct {
	hit pixelpb.RawHit
	// tick: the record is a clock tick of time tickMs, not a hit.
	tick   bool
	tickMs int64
	err    string // dead-letter reason, "" when valid
	// undecodable: err is a decoding failure, not a hit that failed
	// validation (they are counted apart).
	undecodable bool
	visitor     uint64
	idSrc       pixelpb.IdentitySource
	// prev is the cookieless key of the same visitor under the previous
	// day's salt, for a hit shortly after midnight (see linkMidnight).
	prev uint64
	// audit is what the completeness audit reads of the hit; tracked
	// whether its lane checks it by number.
	audit   audit.Hit
	tracked bool
}

// transform turns the batch's raw hits into event, session and dead-letter
// messages, updating the partitions' state in memory.
func (p *Processor) transform(ctx context.Context, in []kafka.Message) error {
	p.events, p.closed, p.dlq, p.hitTimes = p.events[:0], p.closed[:0], p.dlq[:0], p.hitTimes[:0]
	p.evBuf, p.evEnds = p.evBuf[:0], p.evEnds[:0]
	now := p.now()
	// A batch holds a few partitions: a slice beats a map here.
	var parts []*part
	for i := range in {
		src, d := &in[i], &p.hit
		var pt *part
		for _, x := range parts {
			if x.id == src.Partition {
				pt = x
				break
			}
		}
		if pt == nil {
			// The batch's first hit of the partition decides whether the
			// held state continues it.
			var err error
			if pt, err = p.partition(ctx, src.Partition, src.Offset); err != nil {
				return err
			}
			pt.touched = now
			parts = append(parts, pt)
		}
		p.decode(src, d)
		p.step(pt, src, d, now.UnixMilli(), false)
	}
	start := 0
	for i, e := range p.evEnds {
		p.events[i].Key, p.events[i].Value = p.evBuf[start:e[0]:e[0]], p.evBuf[e[0]:e[1]:e[1]]
		start = e[1]
	}
	return nil
}

// marshalEvent encodes events; deterministic is not needed (no maps).
var marshalEvent = proto.MarshalOptions{}

// mergeHit decodes a raw hit into an emptied message whose origin is
// already allocated.
var mergeHit = proto.UnmarshalOptions{Merge: true}

// decode fills d from the record src.
func (p *Processor) decode(src *kafka.Message, d *decoded) {
	// The origin message is kept across hits (Unmarshal would allocate a
	// new one each time); merging into the emptied hit is an Unmarshal.
	origin := d.hit.Origin
	d.hit.Reset()
	if origin != nil {
		origin.Reset()
		d.hit.Origin = origin
	}
	d.err, d.undecodable, d.visitor, d.prev = "", false, 0, 0
	d.tick, d.tickMs = false, 0
	if kafkaconn.IsClockTick(src) {
		if at, ok := schemas.ParseClockTick(src.Value); ok {
			d.tick, d.tickMs = true, at
			return
		}
		// A tick header on something else: a dead letter like any record
		// that is no hit.
		d.err, d.undecodable = schemas.DeadLetterReason(schemas.DeadLetterDecode, "clock tick without its 8-byte time"), true
		return
	}
	if err := mergeHit.Unmarshal(src.Value, &d.hit); err != nil {
		d.err, d.undecodable = schemas.DeadLetterReason(schemas.DeadLetterDecode, err.Error()), true
		return
	}
	if reason := validate(&d.hit); reason != "" {
		d.err = schemas.DeadLetterReason(schemas.DeadLetterInvalid, string(reason))
		return
	}
	h := &d.hit
	d.visitor, d.idSrc = p.keyer.Key(h.GetOrigin().GetReceivedAtMs(), []byte(h.GetSiteId()),
		[]byte(h.GetUserId()), []byte(h.GetCookieId()), h.GetClientIp(), []byte(h.GetUserAgent()))
	if d.idSrc == pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS {
		d.prev = p.keyer.PreviousDayKey(h.GetOrigin().GetReceivedAtMs(), p.cfg.Session.Timeout,
			[]byte(h.GetSiteId()), h.GetClientIp(), []byte(h.GetUserAgent()))
	}
}

// step runs one decoded hit through pt's state. Quiet (a restore) updates
// the state alone: no records, no enrichment.
func (p *Processor) step(pt *part, src *kafka.Message, d *decoded, now int64, quiet bool) {
	if src.Offset < pt.clock.Next {
		// Its output was written before the state's position (or earlier
		// in this batch, when Kafka delivers a message twice).
		p.m.replayed.Inc()
		return
	}
	pt.clock.Next = src.Offset + 1
	p.at, p.closes = pixelpb.SourcePosition{Partition: int32(src.Partition), Offset: src.Offset}, 0
	if d.tick {
		// A clock tick: event time moves on to the tick's time less one
		// interval (the hits received before then have reached the
		// partition), never back.
		if !quiet {
			p.m.ticks.Inc()
		}
		p.advance(pt, d.tickMs-p.cfg.ClockTick.Milliseconds(), quiet)
		return
	}
	// The audit first: a hit whose number its lane has seen is a copy (an
	// edge retry), dropped before anything counts it; the others are
	// counted below by what becomes of them.
	d.audit, d.tracked = audit.Hit{}, false
	if o := d.hit.GetOrigin(); !d.undecodable {
		d.audit = audit.Hit{Node: o.GetNodeId(), BootMs: o.GetBootMs(), Seq: o.GetSeq(), Lane: o.GetLane(), AtMs: o.GetReceivedAtMs()}
	}
	if d.audit.AtMs <= 0 { // undecodable, or without its origin: the record's time
		d.audit.AtMs = src.Time.UnixMilli()
	}
	if !d.undecodable {
		var dup bool
		if d.tracked, dup = pt.audit.Check(&d.audit); dup {
			pt.audit.Count(src.Offset, &d.audit, audit.Duplicate, true)
			if !quiet {
				p.m.duplicate.Inc()
			}
			return
		}
	}
	if !d.tracked && !quiet {
		p.m.unsequenced.Inc()
	}
	if d.err != "" {
		pt.audit.Count(src.Offset, &d.audit, audit.DeadLettered, d.tracked)
		if quiet {
			return
		}
		if d.undecodable {
			p.m.dlqDecode.Inc()
		} else {
			p.m.dlqInvalid.Inc()
		}
		p.dlq = append(p.dlq, kafkaconn.DeadLetter(src, d.err))
		return
	}
	st := pt.state(d.visitor)
	if d.idSrc == pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS {
		st = p.linkMidnight(pt, d, st, quiet)
	}
	p.apply(pt, st, src, d, now, quiet)
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
func (p *Processor) linkMidnight(pt *part, d *decoded, st *session.State, quiet bool) *session.State {
	if st.Alias != 0 {
		if t := pt.visitors[st.Alias]; t != nil {
			d.visitor = st.Alias
			return t
		}
		return st
	}
	if d.prev == 0 || st.NewestMs != 0 || st.Open != nil || len(st.Seen) > 0 {
		return st
	}
	key, prev := d.prev, pt.visitors[d.prev]
	if prev != nil && prev.Alias != 0 { // linked itself the midnight before
		key, prev = prev.Alias, pt.visitors[prev.Alias]
	}
	at := d.hit.GetOrigin().GetReceivedAtMs()
	if prev == nil || prev.Open == nil || at > prev.Open.LastMs+p.cfg.Session.Timeout.Milliseconds() {
		return st
	}
	// Both keys are kept until the new key's day is over.
	const dayMs = 24 * 60 * 60 * 1000
	hold := (at/dayMs + 1) * dayMs
	st.Alias, st.HoldMs = key, hold
	prev.HoldMs = max(prev.HoldMs, hold)
	pt.touch(st)
	pt.touch(prev)
	if !quiet {
		p.m.midnightLinks.Inc()
	}
	d.visitor = key
	return prev
}

// apply runs one valid hit through sessions and, unless quiet, enrichment
// and labelling into an event.
func (p *Processor) apply(pt *part, st *session.State, src *kafka.Message, d *decoded, now int64, quiet bool) {
	hit := &d.hit
	at := hit.GetOrigin().GetReceivedAtMs()
	// Sessions keep the redacted pages and the campaign, so a restore
	// computes them as the live run did.
	pageURL, referrer := pii.RedactPII(hit.GetPageUrl()), pii.RedactPII(hit.GetReferrer())
	srcInfo := p.sources.Classify(pageURL, referrer)
	campaign := hit.GetCampaignId()
	if campaign == "" {
		campaign = srcInfo.UTMCampaign
	}
	var sh session.Hit
	copy(sh.EventID[:], hit.GetOrigin().GetEventId())
	sh.AtMs, sh.Site, sh.Campaign, sh.Page, sh.Referrer = at, hit.GetSiteId(), campaign, pageURL, referrer
	sh.Content = hit.GetContentId()
	sh.IsPage = hit.GetKind() == pixelpb.Kind_KIND_VIEW
	res := p.cfg.Session.Apply(st, &sh)
	if res.Duplicate {
		pt.audit.Count(src.Offset, &d.audit, audit.Duplicate, d.tracked)
		if !quiet {
			p.m.duplicate.Inc()
		}
		return
	}
	pt.audit.Count(src.Offset, &d.audit, audit.Event, d.tracked)
	pt.touch(st)
	// Labels decide whether the session is a person's visit, which its
	// summary says when it closes: they are worked out on a restore too,
	// so the restored state is the live one.
	var lab label
	p.label(&lab, hit, res.RatePerMinute)
	if len(lab.reasons) == 0 && !lab.machineOpen {
		session.MarkHuman(st, &res)
	}
	if res.Closed != nil {
		p.emitSession(res.Closed, quiet)
	}
	if !quiet {
		p.emitEvent(src, d, res, &lab, pageURL, referrer, &srcInfo, now)
	}
	p.advance(pt, at, quiet)
}

// advance moves pt's event time to atMs when that is later. Each minute of
// it (or each session timeout, when shorter) sessions idle past the
// timeout are closed and idle visitors forgotten. Sweeping at fixed points
// of event time, not at batch ends, makes a replay close the same sessions
// at the same records.
func (p *Processor) advance(pt *part, atMs int64, quiet bool) {
	if atMs > pt.clock.WatermarkMs {
		pt.clock.WatermarkMs = atMs
	}
	if pt.clock.WatermarkMs >= pt.clock.NextSweepMs {
		p.sweep(pt, quiet)
		every := min(60_000, p.cfg.Session.Timeout.Milliseconds())
		pt.clock.NextSweepMs = (pt.clock.WatermarkMs/every + 1) * every
	}
}

// label is what the processor decides of a hit's device and traffic class.
type label struct {
	ip          netip.Addr
	dev         device.Device
	reasons     []string
	machineOpen bool
}

func (p *Processor) label(l *label, hit *pixelpb.RawHit, ratePerMinute uint32) {
	l.ip, _ = netip.AddrFromSlice(hit.GetClientIp())
	l.dev = p.ua.Parse(hit.GetUserAgent())
	l.reasons, l.machineOpen = p.bots.Label(&bots.Input{
		Kind: hit.GetKind(), UserAgent: hit.GetUserAgent(), Device: l.dev, Purpose: hit.GetPurpose(),
		PresentHeaders: hit.GetPresentHeaders(), IP: l.ip, RatePerMinute: ratePerMinute,
	}, nil)
}

func (p *Processor) emitEvent(src *kafka.Message, d *decoded, res session.Result, lab *label, pageURL, referrer string, srcInfo *source.Source, now int64) {
	hit := &d.hit
	at := hit.GetOrigin().GetReceivedAtMs()
	g := p.geo.Lookup(lab.ip)
	dev, reasons, machineOpen := &lab.dev, lab.reasons, lab.machineOpen
	p.evSrc = pixelpb.SourcePosition{Partition: int32(src.Partition), Offset: src.Offset}
	p.ev = pixelpb.Event{
		SchemaVersion:  schemas.EventVersion,
		Origin:         hit.GetOrigin(),
		Source:         &p.evSrc,
		Kind:           hit.GetKind(),
		ContentId:      hit.GetContentId(),
		SiteId:         hit.GetSiteId(),
		CampaignId:     p.campaignOf(hit, srcInfo),
		VisitorKey:     d.visitor,
		IdentitySource: d.idSrc,
		PageUrl:        pageURL,
		Referrer:       referrer,
		IpTruncated:    pii.AppendTruncatedIP(p.ipBuf[:0], hit.GetClientIp(), p.cfg.IPv4Bits, p.cfg.IPv6Bits),
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
		ClickDestination: clickDestination(hit),
	}
	ev := &p.ev
	if uid := hit.GetUserId(); uid != "" {
		tenant := schemas.Tenant(hit.GetContentId())
		ev.RecipientKey = p.keyer.RecipientKey(p.recBuf[:0], tenant, uid)
		if p.recipientIDs.Allow(tenant, ev.GetCampaignId()) {
			ev.RecipientId = uid
		}
	}
	if pol := p.signing.For(hit.GetContentId()); pol != signing.Off {
		ev.SignaturePolicy = pol.String()
		if !hit.GetVerified() {
			ev.UnverifiedReason = cmp.Or(hit.GetSignatureError(), string(schemas.Unsigned))
			p.m.unverified[pol].Inc()
		}
	}
	if ev.Bot {
		p.m.bot.Inc()
	}
	if machineOpen {
		p.m.machineOpen.Inc()
	}
	// Key and value go into the batch's one buffer; the messages get their
	// slices of it when the batch is complete (the buffer may move as it
	// grows).
	p.evBuf = append(p.evBuf, ev.GetContentId()...)
	keyEnd := len(p.evBuf)
	var err error
	if p.evBuf, err = marshalEvent.MarshalAppend(p.evBuf, ev); err != nil {
		panic("BUG: marshal event: " + err.Error())
	}
	p.evEnds = append(p.evEnds, [2]int{keyEnd, len(p.evBuf)})
	p.m.events.Inc()
	p.events = append(p.events, kafka.Message{Time: time.UnixMilli(at)})
	p.hitTimes = append(p.hitTimes, at)
}

// campaignOf is an event's campaign: the hit's own, else (with
// Config.UTMCampaigns) its page's utm_campaign when that is a valid id.
func (p *Processor) campaignOf(hit *pixelpb.RawHit, src *source.Source) string {
	if c := hit.GetCampaignId(); c != "" || !p.cfg.UTMCampaigns {
		return c
	}
	if c := src.UTMCampaign; schemas.ValidID(c) {
		return c
	}
	return ""
}

// clickDestination returns where a click hit redirected to, redacted as the
// page URL is (the edge redacted it already; hits spooled by older edges
// may not be), and "" for every other kind. Like the page URL it is not
// cut here: the edge bounds it. It allocates only when there is something
// to redact.
func clickDestination(h *pixelpb.RawHit) string {
	if h.GetKind() != pixelpb.Kind_KIND_CLICK {
		return ""
	}
	return pii.RedactPII(h.GetClickDestination())
}

// sweep closes the sessions of pt that ended more than the timeout before
// the watermark, then forgets the visitors idle for Config.StateTTL.
func (p *Processor) sweep(pt *part, quiet bool) {
	cut := pt.clock.WatermarkMs - p.cfg.Session.Timeout.Milliseconds()
	var due []uint64
	for v, st := range pt.visitors {
		if st.Open != nil && st.Open.LastMs < cut {
			due = append(due, v)
		}
	}
	// Map order is random; close in visitor order so replays write the same
	// sequence of summaries.
	slices.Sort(due)
	for _, v := range due {
		st := pt.visitors[v]
		if sum := p.cfg.Session.Expire(st, pt.clock.WatermarkMs); sum != nil {
			p.emitSession(sum, quiet)
		}
		pt.touch(st)
	}
	pt.audit.Expire(pt.clock.WatermarkMs)
	pt.openSessions = 0
	for v, st := range pt.visitors {
		if session.Idle(st, pt.clock.WatermarkMs, p.cfg.StateTTL) {
			pt.forget(v)
		} else if st.Open != nil {
			pt.openSessions++
		}
	}
	if len(pt.visitors) > p.cfg.MaxVisitors {
		p.shed(pt, quiet)
	}
}

// shed forgets the visitors of pt seen least recently (by newest hit, then
// key: the same on a replay) down to nine tenths of Config.MaxVisitors,
// closing their open sessions early. Their duplicate windows go with them:
// a retry of one of their hits would be counted again, which the metric
// makes visible.
func (p *Processor) shed(pt *part, quiet bool) {
	all := make([]*session.State, 0, len(pt.visitors))
	for _, st := range pt.visitors {
		all = append(all, st)
	}
	slices.SortFunc(all, func(a, b *session.State) int {
		if c := cmp.Compare(max(a.NewestMs, a.HoldMs), max(b.NewestMs, b.HoldMs)); c != 0 {
			return c
		}
		return cmp.Compare(a.Visitor, b.Visitor)
	})
	n := len(all) - p.cfg.MaxVisitors*9/10
	for _, st := range all[:n] {
		if st.Open != nil {
			sum := session.Summary(st.Visitor, st.Open)
			st.Open = nil
			pt.openSessions--
			p.emitSession(sum, quiet)
		}
		pt.forget(st.Visitor)
	}
	if !quiet {
		p.m.shed.Add(float64(n))
		p.logger.Warn("partition holds more visitors than -processor.maxVisitors; forgot the least recently seen",
			"partition", pt.id, "forgotten", n, "max", p.cfg.MaxVisitors)
	}
}

// emitSession writes a closed session's summary to the sessions topic and,
// when it is a visit (a page view or more), an event of kind session to the
// events topic. The event's position is the record being processed (p.at)
// with the visit's index among those it closed, so a replay writes each
// visit at the same position and the aggregators count it once. Quiet (a
// restore) writes nothing but numbers the visit all the same.
func (p *Processor) emitSession(s *pixelpb.Session, quiet bool) {
	var idx uint32
	if s.GetPages() > 0 {
		idx = p.closes
		p.closes++
	}
	if quiet {
		return
	}
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
	if s.GetPages() == 0 || s.GetContentId() == "" {
		// Not a visit; or a session restored from a state written before
		// sessions kept their landing content id.
		return
	}
	ev := &pixelpb.Event{
		SchemaVersion: schemas.EventVersion,
		Origin:        &pixelpb.Origin{ReceivedAtMs: s.GetStartMs()},
		Source:        &pixelpb.SourcePosition{Partition: p.at.Partition, Offset: p.at.Offset, Index: idx},
		Kind:          pixelpb.Kind_KIND_SESSION,
		ContentId:     s.GetContentId(),
		SiteId:        s.GetSiteId(),
		CampaignId:    s.GetCampaignId(),
		VisitorKey:    s.GetVisitorKey(),
		SessionId:     s.GetSessionId(),
		PageUrl:       s.GetLandingPage(),
		Referrer:      s.GetReferrer(),
		Bot:           s.GetBot(),
		ProcessedAtMs: p.now().UnixMilli(),
		Session:       s,
	}
	p.evBuf = append(p.evBuf, ev.GetContentId()...)
	keyEnd := len(p.evBuf)
	if p.evBuf, err = marshalEvent.MarshalAppend(p.evBuf, ev); err != nil {
		panic("BUG: marshal visit: " + err.Error())
	}
	p.evEnds = append(p.evEnds, [2]int{keyEnd, len(p.evBuf)})
	p.events = append(p.events, kafka.Message{Time: time.UnixMilli(s.GetEndMs())})
	p.m.visits.Inc()
}
