package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/felixge/httpsnoop"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	publishes       *prometheus.CounterVec
	publishDuration prometheus.Histogram
	publishBatch    prometheus.Histogram
	uploads         *prometheus.CounterVec
	connsRefused    *prometheus.CounterVec
	shed            *prometheus.CounterVec
	bodyTimeouts    *prometheus.CounterVec
	// metadataRoute is bound once: the lean GET path (leanRouter) counts on it.
	metadataRoute *routeMetrics
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_publishes_total", Help: "Publishes of new snapshot and timestamp metadata, by result and reason.",
		}, []string{"result", "reason"}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_publish_duration_seconds", Help: "Duration of a publish, including the database transaction.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		publishBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_publish_batch_roles", Help: "Project role versions published per publish (group commit size).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_uploads_total", Help: "Project role submissions (creations and new versions) by result and refusal code.",
		}, []string{"result", "reason"}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_http_connections_limited_total", Help: "Connections met at --max-connections: idle_closed (an idle keep-alive connection was closed to make room), probe_lane (admitted for /healthz, /readyz and /metrics only), refused (answered 503 and closed).",
		}, []string{"action"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_http_requests_shed_total", Help: "Requests answered 503 without being handled, by limit: max_inflight, max_connections (a non-probe request on a probe connection).",
		}, []string{"limit"}),
		bodyTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_http_body_timeouts_total", Help: "Request bodies cut off: idle (no byte for --body-read-timeout), rate (under --min-upload-rate on average).",
		}, []string{"reason"}),
	}
	m.metadataRoute = m.bindRoute(metadataRoute)
	// The series alerts watch for rare events exist from the start, at 0: increase() over a
	// series that appears with its first event misses that event, and an alert rule naming
	// a family no replica has exported yet cannot be told from a typo
	// (deploy/helm/cairn/files/prometheus-rules.yaml, checked by deploy/helm/alerts_test.go).
	m.publishes.WithLabelValues("error", "")
	for _, limit := range []string{"max_inflight", "max_connections"} {
		m.shed.WithLabelValues(limit)
	}
	for _, action := range []string{"idle_closed", "probe_lane", "refused"} {
		m.connsRefused.WithLabelValues(action)
	}
	for _, reason := range []string{"idle", "rate"} {
		m.bodyTimeouts.WithLabelValues(reason)
	}
	expiry := prometheus.NewGaugeFunc // one gauge per role, computed at scrape time
	reg.MustRegister(m.requests, m.latency, m.publishes, m.publishDuration, m.publishBatch, m.uploads, m.connsRefused, m.shed, m.bodyTimeouts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_last_publish_age_seconds", Help: "Seconds since the timestamp this replica serves was signed (by any replica). Grows to half the timestamp's lifetime without uploads; with uploads waiting it should stay near zero.",
		}, func() float64 {
			age, _, _ := s.lastPublishAge()
			return age.Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_metadata_staleness_seconds", Help: "Seconds since this replica last confirmed its published head against the database (polled every second); past --max-staleness it serves no timestamp.",
		}, func() float64 { return s.cache.Staleness().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_http_connections_open", Help: "Open HTTP connections (probe connections included); the limit is --max-connections.",
		}, func() float64 { return float64(s.conns.count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_http_requests_inflight", Help: "Requests being handled, health and metrics excepted; the limit is --max-inflight.",
		}, func() float64 { return float64(s.inflight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_publish_queue_age_seconds", Help: "Seconds the oldest upload queued on this replica has waited for its publish (0: none waits).",
		}, func() float64 { return s.publisher.QueueAge().Seconds() }),
	)
	if s.cfg.StaticDir != "" {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cairn_static_export_failing", Help: "1 while the last pass writing --static-dir failed (retried every 5 s; the directory keeps its last complete timestamp.json), else 0.",
			}, func() float64 {
				if s.staticFailing.Load() {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cairn_static_timestamp_version", Help: "Version of the timestamp.json in --static-dir (0 before the first pass): it should follow the timestamp this replica serves within a second.",
			}, func() float64 { return float64(s.staticTimestamp.Load()) }),
		)
	}
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleClaimed, tufrepo.RoleRecentlyClaimed, tufrepo.RoleSnapshot, tufrepo.RoleTimestamp} {
		reg.MustRegister(expiry(prometheus.GaugeOpts{
			Name: "cairn_role_expiry_seconds", Help: "Seconds until the published version of a role expires (negative once expired).",
			ConstLabels: prometheus.Labels{"role": role},
		}, func() float64 {
			h := s.cache.Head()
			if h == nil {
				return 0
			}
			return h.expires[role].Sub(s.now()).Seconds()
		}))
	}
	return m
}

func (m *metrics) observePublish(res tufrepo.PublishResult, err error) {
	switch {
	case err != nil:
		m.publishes.WithLabelValues("error", "").Inc()
	case res.Published:
		m.publishes.WithLabelValues("ok", res.Reason).Inc()
		m.publishDuration.Observe(res.Duration.Seconds())
		m.publishBatch.Observe(float64(res.Roles))
	}
}

func (m *metrics) observeUpload(err error) {
	if err == nil {
		m.uploads.WithLabelValues("accepted", "").Inc()
		return
	}
	m.uploads.WithLabelValues("refused", string(api.CodeOf(err))).Inc()
}

// statusWriter records the status of a response written through it. It hides the
// writer's optional interfaces, so it is only for answers the handler writes itself
// (serveMeta's Range case); instrument uses httpsnoop, which keeps them.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// code is the status answered (200 if the handler wrote nothing).
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// routeMetrics holds the request counters and latency histograms of one route pattern,
// bound to their labels once: a request then costs atomic adds, not a label lookup (a
// hash of the label values and a map read under a lock) and a status string.
type routeMetrics struct {
	m     *metrics
	route string
	// by method (0 GET, 1 HEAD) and status (boundCodes order); nil where not bound.
	counts  [2][len(boundCodes)]prometheus.Counter
	latency [2]prometheus.Observer
}

// boundCodes are the statuses a metadata GET answers in practice.
var boundCodes = [...]int{http.StatusOK, http.StatusNotModified, http.StatusPartialContent, http.StatusNotFound, http.StatusServiceUnavailable}

func (m *metrics) bindRoute(route string) *routeMetrics {
	rm := &routeMetrics{m: m, route: route}
	for i, method := range []string{http.MethodGet, http.MethodHead} {
		for j, code := range boundCodes {
			rm.counts[i][j] = m.requests.WithLabelValues(route, method, strconv.Itoa(code))
		}
		rm.latency[i] = m.latency.WithLabelValues(route, method)
	}
	return rm
}

// observe counts a request answered with code that started at start.
func (rm *routeMetrics) observe(method string, code int, start time.Time) {
	mi := 0
	switch method {
	case http.MethodGet:
	case http.MethodHead:
		mi = 1
	default:
		rm.m.observe(rm.route, method, code, start)
		return
	}
	for j, c := range boundCodes {
		if c == code {
			rm.counts[mi][j].Inc()
			rm.latency[mi].Observe(time.Since(start).Seconds())
			return
		}
	}
	rm.m.observe(rm.route, method, code, start)
}

// observe counts a request by looking its labels up (routes without bound counters).
func (m *metrics) observe(route, method string, code int, start time.Time) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
}

// instrument counts requests and their latency by chi route pattern (never by raw path,
// which a client controls and would explode the label set). The writer is wrapped with
// httpsnoop, which keeps the optional interfaces of net/http's writer: io.ReaderFrom, so a
// target download through http.ServeContent is still sent with sendfile, and Flusher and
// Hijacker for the handlers that need them.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := 0
		ww := httpsnoop.Wrap(w, httpsnoop.Hooks{
			WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
				return func(code int) {
					if status == 0 {
						status = code
					}
					next(code)
				}
			},
		})
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if status == 0 {
			// Nothing written, or written without WriteHeader (Write, ReadFrom): net/http
			// answered 200.
			status = http.StatusOK
		}
		if route == metadataRoute {
			s.metrics.metadataRoute.observe(r.Method, status, start)
			return
		}
		s.metrics.observe(route, r.Method, status, start)
	})
}
