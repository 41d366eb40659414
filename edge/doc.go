// Package edge is the public pixel server. It answers every pixel request at
// once with a 1x1 transparent GIF, whatever the request holds, and hands one
// raw hit per request to Kafka (pixel.hits.v1, keyed by visitor key).
//
// The request path never waits on Kafka. The handler encodes the hit into a
// pooled buffer and appends it to the disk spool (package edge/spool) before
// it returns, so a hit that got its answer is on disk: it survives the edge
// being killed, even with SIGKILL (and, with edge.spool.sync=always, power
// loss). A publisher goroutine reads the spool in order, writes batches to
// Kafka (one produce request per partition, records read from the spooled
// bytes through kafka-go's Client.Produce; partitions chosen as kafka-go's
// Hash balancer chooses them), waits for every in-sync replica to
// acknowledge them, retries what failed, and only then marks them delivered
// in the spool. While Kafka is
// slow or down the spool grows; /readyz fails from its high-water mark, and
// only past its size bound are hits dropped, each counted in
// pixel_edge_hits_total{result="dropped"}. Kafka may receive a hit twice
// (a retry after an ambiguous error, or a replay after a crash); the
// processor drops duplicates by event id.
//
// Routes: the pixel (/p.gif), the beacon (/b), batches of JSON events (/e,
// one hit per event), signed or allow-listed click redirects (/c) and the
// opt-out (/optout). Requests fasthttp cannot read get 400, 408, 413 or 431
// and a closed connection (Server.requestError); requests whose framing a
// proxy could read differently get 400 and a closed connection before any
// route (ambiguousFraming). badinput_test.go checks these over a socket.
//
// Before a hit is encoded the edge removes e-mail addresses and phone
// numbers from its text (internal/pii), decodes the TCF v2 consent string
// (edge/tcf) and applies the per-client-IP rate policy (edge/ratelimit):
// above edge.rate.flag hits are flagged as bot traffic, above
// edge.rate.shed answered and not recorded (safety.go).
//
// The edge never talks to Redis and keeps no state across requests besides the
// per-node sequence number and the spool. Buffers borrowed from fasthttp are
// copied into the encoded hit before the handler returns and never kept.
package edge
