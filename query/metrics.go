package query

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics of the query API, per route pattern ("GET /v1/stats/{cid}").
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	streams  prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, live chan struct{}) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pixel_query_requests_total",
			Help: "API requests by route pattern and status code (401/403: refused tokens, 400: bad parameters, 5xx: Redis failures).",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pixel_query_request_duration_seconds",
			Help:    "Time to answer an API request, by route pattern (for /v1/live: how long the stream lasted).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"route"}),
		streams: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pixel_query_live_streams",
			Help: "Open /v1/live streams (at most -query.maxLiveStreams).",
		}, func() float64 { return float64(len(live)) }),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.streams)
	}
	return m
}

// instrument counts and times the requests of route.
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"route": route}
	return promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(labels),
		promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(labels), h))
}
