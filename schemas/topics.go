package schemas

// Topic names. The version suffix changes only with an incompatible schema
// change (see schemas/proto/pixelpipe/v1/common.proto for the policy).
const (
	// TopicHits carries RawHit records, keyed by the visitor's partition key
	// (8 bytes, big endian: a hash, not secret, of the explicit id, else the
	// cookie, else site, IP and user agent, without the daily salt, see
	// visitor.Keyer.PartitionKey), so one processor sees all of a visitor's
	// hits, also of a visit that spans midnight.
	TopicHits = "pixel.hits.v1"
	// TopicEvents carries Event records, keyed by content id, so one
	// aggregator owns a content id's counts.
	TopicEvents = "pixel.events.v1"
	// TopicSessions carries Session records, keyed by visitor key.
	TopicSessions = "pixel.sessions.v1"
	// TopicCounts is compacted and carries CountSnapshot records, keyed by
	// CountKey.
	TopicCounts = "pixel.counts.v1"
	// TopicDLQ carries records that could not be processed, with the reason
	// in the "reason" header and the source topic, partition and offset in
	// the "source" header; the value is the original bytes.
	TopicDLQ = "pixel.dlq.v1"
)

// Schema versions carried in each record's schema_version field.
const (
	RawHitVersion        = 1
	EventVersion         = 1
	SessionVersion       = 1
	CountSnapshotVersion = 1
)

// TopicSpec describes how a topic is created.
type TopicSpec struct {
	// Name is the topic name.
	Name string
	// Partitions is the default partition count. It bounds how many
	// processors or aggregators can share the topic's work; it is never
	// changed on a live topic, because that moves keys between partitions.
	Partitions int
	// Compacted topics keep the latest record per key.
	Compacted bool
}

// Topics returns the pipeline's topics with their default partition counts.
func Topics() []TopicSpec {
	return []TopicSpec{
		{Name: TopicHits, Partitions: 6},
		{Name: TopicEvents, Partitions: 6},
		{Name: TopicSessions, Partitions: 3},
		{Name: TopicCounts, Partitions: 3, Compacted: true},
		{Name: TopicDLQ, Partitions: 1},
	}
}

// Bits of RawHit.present_headers: which request headers were present. A
// browser always sends some of them; their absence is a bot signal.
const (
	HeaderAccept uint32 = 1 << iota
	HeaderAcceptLanguage
	HeaderAcceptEncoding
	HeaderSecFetchSite
	HeaderSecFetchMode
	HeaderSecChUA
	HeaderReferer
	HeaderCookie
)

// Bits 16 and up of RawHit.present_headers are the edge's own verdicts on a
// hit, not headers; the processor turns them into bot reasons.
const (
	// EdgeFlagRate: the hit's client IP was above the edge's flag rate
	// (edge.rate.flag hits/s); the processor labels it bot, reason "rate".
	EdgeFlagRate uint32 = 1 << 16
	// EdgeFlags masks every edge verdict bit.
	EdgeFlags uint32 = 0xffff0000
)
