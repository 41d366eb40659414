package edge

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// postBatch serves one POST /e in memory and returns the answer, its
// decoded JSON and every hit it recorded.
func postBatch(t *testing.T, s *Server, body string, headers map[string]string) (*fasthttp.Response, batchAnswer, []*pixelpb.RawHit) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod("POST")
	req.SetRequestURI("/e")
	req.Header.SetContentType("text/plain;charset=UTF-8") // what sendBeacon sends for a string
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.SetBodyString(body)
	ctx.Init(req, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 1}, nil)
	s.handle(&ctx)
	resp := &fasthttp.Response{}
	ctx.Response.CopyTo(resp)
	var ans batchAnswer
	if err := json.Unmarshal(resp.Body(), &ans); err != nil {
		t.Fatalf("answer %q is not JSON: %v", resp.Body(), err)
	}
	if ct := string(resp.Header.ContentType()); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var hits []*pixelpb.RawHit
	for {
		h, _ := spooled(t, s)
		if h == nil {
			break
		}
		hits = append(hits, h)
	}
	return resp, ans, hits
}

func TestBatch(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)

	t.Run("events become hits", func(t *testing.T) {
		body := `[
			{"cid":"a-1","k":"impression","site":"news","cmp":"spring","url":"https://news.example/x","uid":"u-1"},
			{"cid":"a-2","k":"conversion","oid":"o-9","val":12.5,"cur":"EUR"},
			{"cid":"a-3","k":"conversion","oid":"o-10","val":"7","cur":"USD","unknown":"ignored"}
		]`
		resp, ans, hits := postBatch(t, s, body, map[string]string{"User-Agent": "ua", "Referer": "https://news.example/page"})
		if resp.StatusCode() != 200 || ans.Received != 3 || ans.Accepted != 3 || len(ans.Invalid)+len(ans.Rejected) != 0 || len(hits) != 3 {
			t.Fatalf("got %d %+v and %d hits", resp.StatusCode(), ans, len(hits))
		}
		h := hits[0]
		if h.GetRoute() != routeBatch || h.GetContentId() != "a-1" || h.GetKind() != pixelpb.Kind_KIND_IMPRESSION || h.GetSiteId() != "news" ||
			h.GetCampaignId() != "spring" || h.GetPageUrl() != "https://news.example/x" || h.GetUserId() != "u-1" ||
			h.GetUserAgent() != "ua" || h.GetReferrer() != "" || len(h.GetClientIp()) != 4 {
			t.Fatalf("first hit: %v", h)
		}
		// The Referer header of a script's request is its page: it stands
		// in for a missing url, never for ref.
		if hits[1].GetPageUrl() != "https://news.example/page" || hits[1].GetReferrer() != "" {
			t.Fatalf("second hit's page %q, referrer %q", hits[1].GetPageUrl(), hits[1].GetReferrer())
		}
		if hits[1].GetValueMicros() != 12_500_000 || hits[1].GetOrderId() != "o-9" || hits[2].GetValueMicros() != 7_000_000 || hits[2].GetCurrency() != "USD" {
			t.Fatalf("conversions: %v / %v", hits[1], hits[2])
		}
		if hits[0].GetOrigin().GetSeq()+1 != hits[1].GetOrigin().GetSeq() {
			t.Fatal("each event must get its own sequence number")
		}
	})

	for _, tc := range []struct {
		name, body    string
		code          int
		accepted      int
		invalid       map[int]schemas.InvalidReason // index: reason (recorded as invalid hits)
		rejected      []int                         // indexes not recorded
		errorContains string
	}{
		{"empty array", `[]`, 200, 0, nil, nil, ""},
		{"invalid entries are reported", `[{"cid":"ok"},{"cid":"bad cid"},{"k":"view"},{"cid":"x","k":"nope"},{"cid":"y","cmp":"<script>"}]`, 200, 1,
			map[int]schemas.InvalidReason{1: schemas.InvalidBadCID, 2: schemas.InvalidMissingCID, 3: schemas.InvalidBadKind, 4: schemas.InvalidBadID}, nil, ""},
		{"entries that are not events", `[1,"cid",null,[],{"cid":5},{"cid":"ok"},{"val":"abc","cid":"v"}]`, 200, 1, nil, []int{0, 1, 2, 3, 4, 6}, ""},
		{"bad conversion", `[{"cid":"c","k":"conversion","val":1.0000001}]`, 200, 0, map[int]schemas.InvalidReason{0: schemas.InvalidBadValue}, nil, ""},
		{"invalid UTF-8 in a string", "[{\"cid\":\"c\",\"url\":\"x\xffy\"}]", 200, 1, nil, nil, ""},
		{"not an array", `{"cid":"a"}`, 400, 0, nil, nil, "JSON array"},
		{"empty body", ``, 400, 0, nil, nil, "JSON array"},
		{"truncated", `[{"cid":"a"}`, 400, 0, nil, nil, "invalid JSON"},
		{"too many events", "[" + strings.TrimSuffix(strings.Repeat(`{"cid":"a"},`, maxBatchEvents+1), ",") + "]", 413, 0, nil, nil, "at most 100"},
		{"as many events as allowed", "[" + strings.TrimSuffix(strings.Repeat(`{"cid":"a"},`, maxBatchEvents), ",") + "]", 200, maxBatchEvents, nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, ans, hits := postBatch(t, s, tc.body, nil)
			if resp.StatusCode() != tc.code || ans.Accepted != tc.accepted || !strings.Contains(ans.Error, tc.errorContains) {
				t.Fatalf("got %d %+v", resp.StatusCode(), ans)
			}
			if len(ans.Invalid) != len(tc.invalid) || len(ans.Rejected) != len(tc.rejected) {
				t.Fatalf("got %+v", ans)
			}
			for _, is := range ans.Invalid {
				if tc.invalid[is.Index] != is.Reason {
					t.Fatalf("event %d: reason %q, want %q", is.Index, is.Reason, tc.invalid[is.Index])
				}
			}
			for i, is := range ans.Rejected {
				if is.Index != tc.rejected[i] || is.Error == "" {
					t.Fatalf("rejected %+v, want indexes %v", ans.Rejected, tc.rejected)
				}
			}
			if len(hits) != tc.accepted+len(tc.invalid) {
				t.Fatalf("%d hits recorded, want %d", len(hits), tc.accepted+len(tc.invalid))
			}
			for _, h := range hits {
				if !utf8.ValidString(h.GetPageUrl()) || h.GetRoute() != routeBatch {
					t.Fatalf("hit %v", h)
				}
			}
		})
	}

	t.Run("consent and opt-out apply per request", func(t *testing.T) {
		_, ans, hits := postBatch(t, s, `[{"cid":"a","uid":"u","gdpr":"1"},{"cid":"b","uid":"u","gdpr":"1","gdpr_consent":"`+consentGiven+`"},{"cid":"c","uid":"u","gdpr":"1","gdpr_consent":"C"}]`, nil)
		if ans.Accepted != 3 || hits[0].GetUserId() != "" || hits[1].GetUserId() != "u" || hits[2].GetUserId() != "" {
			t.Fatalf("%+v %v", ans, hits)
		}
		_, ans, hits = postBatch(t, s, `[{"cid":"a"}]`, map[string]string{"Cookie": "ppoptout=1"})
		if ans.Received != 1 || ans.Accepted != 0 || len(hits) != 0 {
			t.Fatalf("opted out: %+v, %d hits", ans, len(hits))
		}
	})
}

// TestBatchOverSocket checks the limits enforced before the handler: a body
// over MaxBodyBytes gets 413 with a JSON message and a closed connection,
// and a GET is refused with 405.
func TestBatchOverSocket(t *testing.T) {
	t.Parallel()
	s := socketServer(t, nil)
	big := "[" + strings.Repeat(`{"cid":"a"},`, 6000) + `{"cid":"a"}]`
	resps, closed := exchange(t, s.Addr(), fmt.Sprintf("POST /e HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(big), big), 5*time.Second)
	if len(resps) != 1 || resps[0].StatusCode() != 413 || !closed || !strings.Contains(string(resps[0].Body()), `"error":"request body too large: at most 65536 bytes`) {
		t.Fatalf("got %v closed %v: %s", statuses(resps), closed, firstBody(resps))
	}
	body := `[{"cid":"a"},{"cid":"b"}]`
	resps, _ = exchange(t, s.Addr(), fmt.Sprintf("POST /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body), 5*time.Second)
	if len(resps) != 1 || resps[0].StatusCode() != 200 || !strings.Contains(string(resps[0].Body()), `"accepted":2`) {
		t.Fatalf("got %v: %s", statuses(resps), firstBody(resps))
	}
	if hits := allSpooled(t, s); len(hits) != 2 {
		t.Fatalf("%d hits", len(hits))
	}
	if r := get(t, s, "/e"); r.StatusCode() != 405 {
		t.Fatalf("GET /e: %d", r.StatusCode())
	}
	resps, _ = exchange(t, s.Addr(), "OPTIONS /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://news.example\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || resps[0].StatusCode() != 204 || string(resps[0].Header.Peek("Access-Control-Allow-Methods")) != "POST" {
		t.Fatalf("preflight: %v", statuses(resps))
	}
}

func firstBody(resps []*fasthttp.Response) string {
	if len(resps) == 0 {
		return ""
	}
	return string(resps[0].Body())
}

// FuzzParseBatch: any body parses without panicking into at most
// maxBatchEvents events, each element accounted for once.
func FuzzParseBatch(f *testing.F) {
	for _, seed := range []string{`[]`, `[{"cid":"a","val":1.5}]`, `[1,{"cid":5},null]`, `{"cid":"a"}`, `[{"cid":"a"}`, "[\"\xff\"]", ` [ {"val":"-0.5"} ] `} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, index, rejected, err := parseBatch(body)
		if err != nil {
			if events != nil || rejected != nil {
				t.Fatal("results with an error")
			}
			return
		}
		if len(events) != len(index) || len(events)+len(rejected) > maxBatchEvents {
			t.Fatalf("%d events, %d indexes, %d rejected", len(events), len(index), len(rejected))
		}
		seen := map[int]bool{}
		for _, i := range index {
			seen[i] = true
		}
		for _, r := range rejected {
			if seen[r.Index] || r.Error == "" {
				t.Fatalf("element %d both accepted and rejected, or rejected without a reason", r.Index)
			}
			seen[r.Index] = true
		}
		if len(seen) != len(events)+len(rejected) {
			t.Fatal("an element counted twice")
		}
	})
}
