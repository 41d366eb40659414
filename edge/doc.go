// Package edge is the public pixel server. It answers every pixel request at
// once with a 1x1 transparent GIF, whatever the request holds, and hands one
// raw hit per request to Kafka (pixel.hits.v1, keyed by visitor key).
//
// The request path never waits on Kafka: the handler encodes the hit into a
// pooled buffer and queues it; a publisher goroutine writes queued hits in
// batches and waits for every in-sync replica to acknowledge them, retrying
// until shutdown. The queue is bounded; when it is full the hit is dropped and
// counted (pixel_edge_hits_total{result="dropped"}).
//
// The edge never talks to Redis and keeps no state across requests besides the
// per-node sequence number. Buffers borrowed from fasthttp are copied into the
// encoded hit before the handler returns and never kept.
package edge
