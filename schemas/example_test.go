package schemas_test

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// A raw hit encoded by the edge decodes with the generated type.
func ExampleAppendRawHit() {
	h := schemas.HitFields{
		ReceivedAtMs: 1764331200000,
		NodeID:       "edge-1",
		Seq:          1,
		Kind:         pixelpb.Kind_KIND_VIEW,
		ContentID:    []byte("article-7"),
	}
	b := schemas.AppendRawHit(nil, &h)

	var hit pixelpb.RawHit
	if err := proto.Unmarshal(b, &hit); err != nil {
		panic(err)
	}
	fmt.Println(hit.GetContentId(), hit.GetKind(), hit.GetOrigin().GetSeq())
	// Output: article-7 KIND_VIEW 1
}
