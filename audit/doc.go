// Package audit is the completeness audit: it compares what each edge node
// accepted with what the pipeline did with it, per node and minute.
//
// The edge numbers its hits per lane: a lane is (node, boot, partition of
// the hits topic), and its hits carry 1, 2, 3, ... without gaps and all go to
// that partition. The processor of a partition keeps, per lane, the highest
// number seen and the numbers below it not seen (gaps), as part of the
// partition's state (snapshotted and rebuilt like sessions, so exact through
// kill -9 and rebalances). A number seen twice is a duplicate and dropped. A
// gap is a hit the edge accepted that has not reached the partition: lost
// before Kafka (a spool that failed, a disk that was lost), or still on its
// way (an edge retrying a batch delivers it out of order, an edge whose
// Kafka is down holds it in its spool).
//
// Per node and minute of the edge's receive time the processor counts what
// it did with each hit: an event, a dead letter, a duplicate dropped; and
// whether the hit had a lane at all (hits from edges that did not know the
// partition count are counted but cannot be checked by number). Those
// figures and the gaps go to Redis with each state snapshot, in the same
// guarded script, so they are written exactly once per hit whatever
// crashes and replays happen. The reader adds them up per node and minute:
//
//	accepted = events + dead_lettered + missing
//
// and splits events into counted (the minute's newest event is below the
// counts' freshness watermark, the slowest aggregator partition's) and not
// yet counted.
//
// Layout, for consumer group G, hits topic T, partition P and UTC day D
// (YYYYMMDD), one hash per partition and day, in the partition's Redis
// Cluster slot (the same {hash tag} as its state snapshot):
//
//	PREFIX:audit:{G|T|P}:D    hash, expires after the retention
//	  m|MINUTE|NODE   "events dead duplicates unsequenced newest"  (MINUTE: Unix minutes;
//	                  newest: the newest receive time of its events, Unix ms; the others add up)
//	  g|BOOT|NODE     "FROM-TO@MS,..."  the lane's gaps whose next hit was received on D
//	PREFIX:audit:parts        set of "G|T|P": the partitions that have audit hashes
package audit
