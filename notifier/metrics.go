package notifier

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus collectors. Create them with
// NewMetrics on a registry of your own; nothing is registered globally.
type Metrics struct {
	EventsReceived  *prometheus.CounterVec   // by type
	EventsRejected  *prometheus.CounterVec   // by field of the first problem
	EventsDuplicate prometheus.Counter       // redelivered or republished events
	JobsPlanned     *prometheus.CounterVec   // by channel
	Deliveries      *prometheus.CounterVec   // by channel, outcome (sent, retry, failed, skipped) and reason
	Latency         *prometheus.HistogramVec // event time → sent, by channel
	SendDuration    *prometheus.HistogramVec // channel Notify call, by channel
	Pending         *prometheus.GaugeVec     // jobs waiting, by channel (sampled from the consumers)
	// UnknownComponents counts events naming a component the site file
	// does not, by component; see CountUnknownComponent.
	UnknownComponents *prometheus.CounterVec

	mu      sync.Mutex
	unknown map[string]bool // component label values in use
}

// MaxUnknownComponentLabels bounds the component label values of
// varsel_events_unknown_components_total: ids past that many are counted
// under "other", so producers cannot mint series without end.
const MaxUnknownComponentLabels = 100

// CountUnknownComponent counts one event naming id, a component the site
// file does not name. Only ids that can name a component (ValidComponent:
// intake rejects any other) get their own label value, and only the first
// MaxUnknownComponentLabels of them.
func (m *Metrics) CountUnknownComponent(id string) {
	label := "other"
	if ValidComponent(id) {
		m.mu.Lock()
		if m.unknown[id] || len(m.unknown) < MaxUnknownComponentLabels {
			if m.unknown == nil {
				m.unknown = map[string]bool{}
			}
			m.unknown[id] = true
			label = id
		}
		m.mu.Unlock()
	}
	m.UnknownComponents.WithLabelValues(label).Inc()
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "varsel_events_received_total", Help: "Valid incident events taken in, by type.",
		}, []string{"type"}),
		EventsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "varsel_events_rejected_total", Help: "Events rejected as invalid and stored on VARSEL_REJECTED, by the first field at fault.",
		}, []string{"field"}),
		EventsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "varsel_events_duplicate_total", Help: "Events seen again after they had been planned; nothing was sent for them.",
		}),
		JobsPlanned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "varsel_jobs_planned_total", Help: "Delivery jobs planned, by channel.",
		}, []string{"channel"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "varsel_deliveries_total", Help: "Delivery attempts by channel, outcome (sent, retry, failed, skipped) and reason.",
		}, []string{"channel", "outcome", "reason"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "varsel_event_to_delivery_seconds", Help: "Time from an event's arrival to its delivery being sent, by channel.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600},
		}, []string{"channel"}),
		SendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "varsel_send_duration_seconds", Help: "Duration of one channel send call, by channel.",
			Buckets: prometheus.DefBuckets,
		}, []string{"channel"}),
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "varsel_jobs_pending", Help: "Delivery jobs waiting to be sent, by channel.",
		}, []string{"channel"}),
		UnknownComponents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "varsel_events_unknown_components_total",
			Help: "Events accepted that name a component the site file (VARSEL_SITE_FILE) does not, by component (\"other\" past the first 100 ids).",
		}, []string{"component"}),
	}
	reg.MustRegister(m.EventsReceived, m.EventsRejected, m.EventsDuplicate, m.JobsPlanned,
		m.Deliveries, m.Latency, m.SendDuration, m.Pending, m.UnknownComponents)
	return m
}
