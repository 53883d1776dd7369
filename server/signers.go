package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/prometheus/client_golang/prometheus"
)

// signerHealth follows every signing attempt of the online keys, for /metrics and /readyz:
// a KMS that throttles or an HSM that restarted shows up before the timestamp expires.
type signerHealth struct {
	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
	healthy  *prometheus.GaugeVec
	now      func() time.Time

	mu    sync.Mutex
	names map[string]string // key ID → "timestamp", "snapshot", "recently-claimed", "standby"
	state map[string]*signerState
}

type signerState struct {
	lastOK, lastErrAt time.Time
	lastErr           error
	failures          int // consecutive
}

// newSignerHealth registers the signing metrics and returns copies of signers that report
// every attempt to it. (Copies: the caller's signers may be shared with other servers.)
func newSignerHealth(reg prometheus.Registerer, signers tufrepo.Signers, now func() time.Time) (*signerHealth, tufrepo.Signers) {
	h := &signerHealth{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_sign_attempts_total", Help: "Signing attempts with the online keys, by signer (role or standby) and result (ok, error); errors are retried with backoff.",
		}, []string{"signer", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_sign_duration_seconds", Help: "Duration of one signing attempt (KMS or HSM round trip) by signer.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"signer"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cairn_signer_healthy", Help: "1 if the signer's last attempt succeeded (or it has not been used yet), 0 if it failed.",
		}, []string{"signer"}),
		now:   now,
		names: map[string]string{},
		state: map[string]*signerState{},
	}
	reg.MustRegister(h.attempts, h.duration, h.healthy)
	add := func(name string, o *tufrepo.OnlineSigner) *tufrepo.OnlineSigner {
		if o == nil {
			return nil
		}
		if _, dup := h.names[o.KeyID]; !dup {
			h.names[o.KeyID] = name
		}
		h.healthy.WithLabelValues(h.names[o.KeyID]).Set(1)
		c := *o
		c.Observe = h.observe
		return &c
	}
	out := tufrepo.Signers{
		Timestamp:       add(tufrepo.RoleTimestamp, signers.Timestamp),
		Snapshot:        add(tufrepo.RoleSnapshot, signers.Snapshot),
		RecentlyClaimed: add(tufrepo.RoleRecentlyClaimed, signers.RecentlyClaimed),
	}
	for i, o := range signers.Standby {
		out.Standby = append(out.Standby, add(fmt.Sprintf("standby-%d", i+1), o))
	}
	return h, out
}

func (h *signerHealth) observe(a tufrepo.SignAttempt) {
	h.mu.Lock()
	defer h.mu.Unlock()
	name := h.names[a.KeyID]
	st := h.state[a.KeyID]
	if st == nil {
		st = &signerState{}
		h.state[a.KeyID] = st
	}
	h.duration.WithLabelValues(name).Observe(a.Duration.Seconds())
	if a.Err != nil {
		h.attempts.WithLabelValues(name, "error").Inc()
		h.healthy.WithLabelValues(name).Set(0)
		st.lastErr, st.lastErrAt = a.Err, h.now()
		st.failures++
		return
	}
	h.attempts.WithLabelValues(name, "ok").Inc()
	h.healthy.WithLabelValues(name).Set(1)
	st.lastOK, st.failures = h.now(), 0
}

// checks returns one /readyz line per signer that has been used: "ok …" or "FAILING: …".
func (h *signerHealth) checks() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]string{}
	for id, st := range h.state {
		key := "signer " + h.names[id]
		short := id
		if len(short) > 12 {
			short = short[:12]
		}
		if st.failures > 0 {
			out[key] = fmt.Sprintf("FAILING: key %s failed %d times in a row, last at %s: %v", short, st.failures, st.lastErrAt.UTC().Format(time.RFC3339), st.lastErr)
			continue
		}
		out[key] = fmt.Sprintf("ok: key %s signed %s ago", short, h.now().Sub(st.lastOK).Truncate(time.Second))
	}
	return out
}
