package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// maxBatchEvents bounds the events of one batch POST; the body itself is
// bounded by Config.MaxBodyBytes (413 from the server before the handler).
const maxBatchEvents = 100

const routeBatch = "batch"

// batchEvent is one event of a batch: the pixel's parameters by the same
// names. val may be a JSON number or a string.
type batchEvent struct {
	CID         string      `json:"cid"`
	Kind        string      `json:"k"`
	Site        string      `json:"site"`
	Campaign    string      `json:"cmp"`
	Ad          string      `json:"ad"`
	Creative    string      `json:"cr"`
	Placement   string      `json:"pl"`
	UserID      string      `json:"uid"`
	URL         string      `json:"url"`
	Ref         string      `json:"ref"`
	OrderID     string      `json:"oid"`
	Value       json.Number `json:"val"`
	Currency    string      `json:"cur"`
	GDPR        string      `json:"gdpr"`
	GDPRConsent string      `json:"gdpr_consent"`
	// Props are custom properties; they are recorded sorted by key.
	Props map[string]string `json:"props"`
}

// batchIssue reports one event of a batch that is not counted: recorded as
// an invalid hit (Reason, as in RawHit.invalid_reason), or not recorded at
// all because it is not an event object (Error).
type batchIssue struct {
	Index  int                   `json:"index"`
	Reason schemas.InvalidReason `json:"reason,omitempty"`
	Error  string                `json:"error,omitempty"`
}

type batchAnswer struct {
	Received int          `json:"received"`
	Accepted int          `json:"accepted"`
	Invalid  []batchIssue `json:"invalid,omitempty"`
	Rejected []batchIssue `json:"rejected,omitempty"`
	Error    string       `json:"error,omitempty"`
}

var errBatchNotArray = errors.New("body must be a JSON array of event objects")

// parseBatch splits body into at most maxBatchEvents events. An element
// that is not an event object is returned as a rejected issue; a body that
// is not a JSON array, or holds too many elements, is an error. Memory is
// bounded by the body, which the server bounds.
func parseBatch(body []byte) (events []batchEvent, index []int, rejected []batchIssue, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '[' {
		return nil, nil, nil, errBatchNotArray
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s", errBatchNotArray, jsonProblem(err))
	}
	if len(raw) > maxBatchEvents {
		return nil, nil, nil, fmt.Errorf("%d events, at most %d per batch", len(raw), maxBatchEvents)
	}
	events = make([]batchEvent, 0, len(raw))
	for i, r := range raw {
		var e batchEvent
		r = bytes.TrimSpace(r)
		if len(r) == 0 || r[0] != '{' {
			rejected = append(rejected, batchIssue{Index: i, Error: "not an event object"})
			continue
		}
		if err := json.Unmarshal(r, &e); err != nil {
			rejected = append(rejected, batchIssue{Index: i, Error: jsonProblem(err)})
			continue
		}
		events = append(events, e)
		index = append(index, i)
	}
	return events, index, rejected, nil
}

// jsonProblem describes a decoding error without echoing the input back.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			return "field " + strconv.Quote(te.Field) + " must be a " + te.Type.String()
		}
		return "unexpected JSON " + te.Value
	case errors.As(err, &se):
		return "invalid JSON at byte " + strconv.FormatInt(se.Offset, 10)
	}
	return "invalid JSON"
}

// batch records each event of a JSON array POSTed to /e (fetch or
// navigator.sendBeacon, any content type) as one hit, with the request's
// headers, cookies and client IP. It answers 200 with what it counted,
// 400 for a body that is not a JSON array, 413 past maxBatchEvents; a body
// over MaxBodyBytes gets 413 from the server.
func (s *Server) batch(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	noCache(h)
	h.Set("Access-Control-Allow-Origin", "*")
	if ctx.IsOptions() { // CORS preflight of fetch with a JSON content type
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	if !ctx.IsPost() {
		h.Set("Allow", "POST, OPTIONS")
		batchJSON(ctx, fasthttp.StatusMethodNotAllowed, &batchAnswer{Error: "method not allowed: POST a JSON array of events"})
		return
	}
	events, index, rejected, err := parseBatch(ctx.PostBody())
	if err != nil {
		code := fasthttp.StatusBadRequest
		if !errors.Is(err, errBatchNotArray) {
			code = fasthttp.StatusRequestEntityTooLarge
		}
		s.m.batchRefused.Inc()
		batchJSON(ctx, code, &batchAnswer{Error: err.Error()})
		return
	}
	ans := batchAnswer{Received: len(events) + len(rejected), Rejected: rejected}
	if len(ctx.Request.Header.Cookie(s.cfg.OptOutCookie)) > 0 {
		s.m.optedOut.Add(float64(len(events)))
		batchJSON(ctx, fasthttp.StatusOK, &ans)
		return
	}
	rec := s.pool.Get().(*record)
	defer s.pool.Put(rec)
	rec.issued = rec.issued[:0]
	for i := range events {
		e := &events[i]
		rec.params = hitParams{
			cid: []byte(e.CID), kind: []byte(e.Kind), site: []byte(e.Site), cmp: []byte(e.Campaign),
			ad: []byte(e.Ad), cr: []byte(e.Creative), pl: []byte(e.Placement), uid: []byte(e.UserID),
			url: []byte(e.URL), ref: []byte(e.Ref), oid: []byte(e.OrderID), val: []byte(e.Value),
			cur: []byte(e.Currency), gdpr: []byte(e.GDPR), gdprConsent: []byte(e.GDPRConsent),
		}
		rec.props = rec.props[:0]
		for _, k := range slices.Sorted(maps.Keys(e.Props)) {
			rec.props = append(rec.props, schemas.Prop{Key: []byte(k), Value: []byte(e.Props[k])})
		}
		reason, res := s.recordParams(ctx, rec, routeBatch, nil, "")
		switch res {
		case recordedValid:
			ans.Accepted++
		case recordedInvalid:
			ans.Invalid = append(ans.Invalid, batchIssue{Index: index[i], Reason: reason})
		case shedRate:
			ans.Rejected = append(ans.Rejected, batchIssue{Index: index[i], Error: "not recorded: over the edge's rate limit for one client"})
		case notRecorded:
			ans.Rejected = append(ans.Rejected, batchIssue{Index: index[i], Error: "not recorded: the edge is shutting down or its spool is full"})
		}
	}
	rec.params = hitParams{}
	clear(rec.props)
	batchJSON(ctx, fasthttp.StatusOK, &ans)
}

func batchJSON(ctx *fasthttp.RequestCtx, code int, a *batchAnswer) {
	b, err := json.Marshal(a)
	if err != nil { // cannot happen: plain fields only
		b = []byte(`{"error":"internal"}`)
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
