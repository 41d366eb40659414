// Package schemas is the wire contract between the parts of pixelpipe: topic
// names, partition keys, schema versions, and the records themselves.
//
// The records are Protocol Buffers messages defined in schemas/proto and
// generated into package pixelpb (make generate). Downstream consumers in any
// language build from the same .proto files.
//
// On the edge's hot path, AppendRawHit encodes a hit straight from borrowed
// request bytes into a caller's buffer without allocating; its output decodes
// with the generated pixelpb.RawHit.
//
// Package schemas imports nothing else from this repository.
package schemas
