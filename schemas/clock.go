package schemas

import "encoding/binary"

// ClockHeader names the Kafka header that marks a clock tick in
// pixel.hits.v1: a record that carries no hit. Processors write one to each
// partition of the topic every -processor.clockTick; the processor of the
// partition reads it like a hit, and it moves the partition's event time
// on, so a visitor's session ends after its timeout even when no newer hit
// comes. The tick is in the log, so a replay closes the same sessions at
// the same offsets. Every other reader of the topic skips records with
// this header. Its value is AppendClockTick's encoding.
const ClockHeader = "pixelpipe-clock"

// AppendClockTick appends the value of a clock tick written at atMs (Unix
// milliseconds, the writer's wall clock): 8 bytes, big endian.
func AppendClockTick(dst []byte, atMs int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(atMs))
}

// ParseClockTick returns the time of a clock tick's value, false when it
// is no tick value.
func ParseClockTick(v []byte) (atMs int64, ok bool) {
	if len(v) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}
