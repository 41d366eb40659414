package schemas

import (
	"strconv"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// AppendCountKey appends the pixel.counts.v1 message key of a snapshot:
// "<content id>|<kind number>|<class>|<granularity number>|<bucket start ms>".
func AppendCountKey(dst []byte, contentID string, kind pixelpb.Kind, class string, g pixelpb.Granularity, bucketStartMs int64) []byte {
	dst = append(dst, contentID...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(kind), 10)
	dst = append(dst, '|')
	dst = append(dst, class...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(g), 10)
	dst = append(dst, '|')
	return strconv.AppendInt(dst, bucketStartMs, 10)
}
