package query

import (
	"fmt"
	"net/http"
	"time"

	"github.com/pixelpipe/pixelpipe/audit"
)

// AuditResponse is the answer of GET /v1/audit.
type AuditResponse struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Group string    `json:"group"`
	// CountedUntil is the counts' freshness watermark: events of minutes
	// ending at or before it are counted, later ones not yet.
	// Null when no aggregator wrote a watermark yet.
	CountedUntil *time.Time `json:"counted_until"`
	*audit.Report
}

// auditRoute answers GET /v1/audit: per edge node and minute of receive
// time, what the edges accepted and what became of it. Operators only (a
// token of every tenant): an edge's figures span every tenant's hits.
func (s *Server) auditRoute(w http.ResponseWriter, r *http.Request) {
	if tenant, _ := r.Context().Value(tenantKey{}).(string); tenant != allTenants {
		writeError(w, http.StatusForbidden, "the audit spans every tenant's hits: it needs an operator token (-query.token, or a token of tenant *)")
		return
	}
	if s.audit == nil {
		writeError(w, http.StatusNotImplemented, "this query server has no audit reader")
		return
	}
	now := s.now().UTC()
	params := r.URL.Query()
	from, to := now.Add(-time.Hour).Truncate(time.Minute), now.Add(time.Minute).Truncate(time.Minute)
	if params.Get("from") != "" || params.Get("to") != "" {
		var ok bool
		if from, to, ok = s.rangeParams(w, r); !ok {
			return
		}
	}
	if days := min(s.cfg.MaxRangeDays, maxAuditDays); !to.After(from) || to.Sub(from) > time.Duration(days)*24*time.Hour {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad range: to must be after from, at most %d days later", days))
		return
	}
	node := params.Get("node")
	if len(node) > 256 {
		writeError(w, http.StatusBadRequest, "bad node: at most 256 bytes")
		return
	}
	group := params.Get("group")
	if group == "" {
		group = s.cfg.AuditGroup
	}
	fresh, err := s.reader.Freshness(r.Context(), now, s.cfg.EventsPartitions)
	if err != nil {
		s.readErr(w, err, "audit freshness")
		return
	}
	rep, err := s.audit.Read(r.Context(), group, from, to, fresh.CompleteUntil, node)
	if err != nil {
		s.readErr(w, err, "audit")
		return
	}
	body := AuditResponse{From: from.UTC(), To: to.UTC(), Group: group, Report: rep}
	if !fresh.CompleteUntil.IsZero() {
		body.CountedUntil = &fresh.CompleteUntil
	}
	writeJSON(w, http.StatusOK, body)
}

// maxAuditDays bounds an audit's range: the audit keeps 8 days by default.
const maxAuditDays = 8
