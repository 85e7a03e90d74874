package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/mail"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	gomail "github.com/wneessen/go-mail"

	"github.com/varsel/varsel/channels/email"
	"github.com/varsel/varsel/channels/webhook"
	"github.com/varsel/varsel/examples"
	"github.com/varsel/varsel/internal/benchsink"
	"github.com/varsel/varsel/notifier"
)

// benchReport is what `varsel bench --json` prints.
type benchReport struct {
	Subscribers int      `json:"subscribers"`
	Channels    []string `json:"channels"`
	CPUs        int      `json:"cpus"`
	// Raw is the sinks' capacity: plain blasters with Varsel's libraries
	// and concurrency, the same number of messages per channel as one
	// event makes, all channels at once.
	Raw    rateReport    `json:"raw"`
	Events []eventReport `json:"events"`
	// PercentOfRaw sums up the events' shares of raw: on shared cores one
	// run says little, the median of many (--repeat) more.
	PercentOfRaw spread `json:"percent_of_raw"`
	// Idle is event → first delivery on an idle service, from the
	// varsel_event_to_delivery_seconds histogram.
	Idle idleReport `json:"idle"`
	// PeakRSSMB is the whole process's peak resident memory during the
	// fan-outs (embedded NATS, sinks included), in MiB.
	PeakRSSMB float64 `json:"peak_rss_mb"`
}

type rateReport struct {
	Deliveries int                `json:"deliveries"`
	Seconds    float64            `json:"seconds"`
	PerSecond  float64            `json:"per_second"`
	ByChannel  map[string]float64 `json:"per_second_by_channel"`
	// CPUMicros is the process's CPU time (user + system, every core)
	// per message while blasting: what the sinks and clients alone cost.
	CPUMicros float64 `json:"cpu_us_per_delivery"`
}

type eventReport struct {
	ID         string  `json:"id"`
	Deliveries int64   `json:"deliveries"`
	Seconds    float64 `json:"seconds_to_last_delivery"`
	PerSecond  float64 `json:"per_second"`
	// RawPerSecond is the sinks' raw rate for this event's messages
	// (their sizes differ): the blasts just before and just after it
	// taken together (all their messages over all their time).
	RawPerSecond       float64 `json:"raw_per_second"`
	RawBeforePerSecond float64 `json:"raw_before_per_second"`
	RawAfterPerSecond  float64 `json:"raw_after_per_second"`
	// PercentOfRaw is PerSecond as a share of RawPerSecond.
	PercentOfRaw float64 `json:"percent_of_raw"`
	P50Ms        float64 `json:"event_to_delivery_p50_ms"`
	P99Ms        float64 `json:"event_to_delivery_p99_ms"`
	// PlanMs is how long planning took: streaming the subscribers and
	// queueing the jobs.
	PlanMs float64 `json:"plan_ms"`
	RSSMB  float64 `json:"rss_after_mb"`
	// CPUMicros is the process's CPU time per delivery from publishing to
	// the last settled: sinks and clients, plus what Varsel adds.
	CPUMicros float64 `json:"cpu_us_per_delivery"`
	// ByChannel is when each channel's last message arrived: a channel
	// done long before the others shows where the CPU went first.
	ByChannel map[string]channelReport `json:"by_channel"`
}

// channelReport is one channel's share of an event's fan-out.
type channelReport struct {
	Deliveries int64   `json:"deliveries"`
	Seconds    float64 `json:"seconds_to_last_delivery"`
}

// spread is the median and range of some figures.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Sorted(slices.Values(xs))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: m, Min: s[0], Max: s[len(s)-1]}
}

type idleReport struct {
	Events int     `json:"events"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("varsel bench", "varsel bench [--subscribers N] [--channels email,webhook,sms] [--events N] [--repeat N] [--json]",
		"Fan events out through the real pipeline to in-process sinks, and print Varsel's rate as a share of the sinks' raw capacity.", stdout)
	subscribers := fs.Int("subscribers", 10_000, "subscribers to fan out to")
	channelList := fs.String("channels", "email,webhook", "channels every subscriber has: email, webhook, sms")
	events := fs.Int("events", 1, "events of the StyreWeb timeline to publish one after the other (1–14)")
	repeat := fs.Int("repeat", 0, "then publish the timeline's second event this many times more, each a minute later: the same message, to see whether the rate holds as deliveries accumulate")
	idle := fs.Int("idle", 100, "events to a single subscriber, one at a time, for the idle latency")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the fan-outs to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file at the fan-outs' largest heap")
	dataDir := fs.String("data-dir", "", "store in this directory (default: a temporary one, removed after)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var channels []notifier.ChannelName
	for _, c := range strings.Split(*channelList, ",") {
		ch := notifier.ChannelName(strings.TrimSpace(c))
		if !slices.Contains(notifier.ChannelNames, ch) {
			return fmt.Errorf("%w: --channels: %q is not email, webhook or sms", errUsage, c)
		}
		channels = append(channels, ch)
	}
	files, err := examples.Files("styreweb")
	if err != nil {
		return err
	}
	if *events < 1 || *events > len(files) {
		return fmt.Errorf("%w: --events %d: want 1 to %d (the StyreWeb timeline)", errUsage, *events, len(files))
	}
	if *subscribers < 1 {
		return fmt.Errorf("%w: --subscribers %d: want at least 1", errUsage, *subscribers)
	}
	began := time.Now()
	progress := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(stderr, "%6.1fs  "+format+"\n", append([]any{time.Since(began).Seconds()}, a...)...)
		}
	}

	sinks, err := benchsink.Start()
	if err != nil {
		return err
	}
	defer sinks.Close()
	dir := *dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "varsel-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	cfg := Config{NATSListen: "127.0.0.1:0", NATSReplicas: 1, DataDir: dir, HTTPAddr: "127.0.0.1:0", PublicURL: "http://localhost:8080",
		MailFrom: benchMailFrom, DefaultLocale: "en", Timezone: "Europe/Oslo", EmailBounceLimit: 3, WebhookFailureLimit: 5,
		Secret: "bench-secret-bench-secret", WebhookOutbox: "false", WebhookAllowPrivate: true, RemindBefore: 10 * time.Minute, DeliveryRetention: 720 * time.Hour,
		SMTPURL:          "smtp://" + sinks.SMTPAddr + "?tls=none&pool=" + strconv.Itoa(benchSMTPConns),
		TwilioAccountSID: benchTwilioSID, TwilioAuthToken: benchTwilioToken, TwilioFrom: "+4790000000", TwilioAPIURL: sinks.TwilioURL,
		// The bench measures the pipeline, not a provider's rate limit.
		SMSRate: 1e6}
	if err := cfg.Validate(); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	svc, err := start(runCtx, cfg, newLogger(io.Discard))
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- svc.run(runCtx) }()
	defer func() { stop(); <-done }()
	defer startMemoryLimit(runCtx)() // as serve does

	has := func(ch notifier.ChannelName) bool { return slices.Contains(channels, ch) }
	mk := func(i int, components []string) *notifier.Subscriber {
		s := &notifier.Subscriber{ID: fmt.Sprintf("b%07d", i), Name: "Kari Nordmann", Locale: []string{"nb", "en"}[i%2], Components: components}
		if has(notifier.Email) {
			s.Email = fmt.Sprintf("reader%d@example.com", i)
		}
		if has(notifier.SMS) {
			s.Phone = fmt.Sprintf("+4791%06d", i%1_000_000)
		}
		if has(notifier.Webhook) {
			s.WebhookURL, s.WebhookSecret = sinks.WebhookURL, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		}
		return s
	}
	if err := svc.conn.Subscribers.Put(ctx, mk(*subscribers, []string{"bench-idle"})); err != nil {
		return err
	}
	// Raw capacity: the same messages, straight at the sinks.
	sample, err := benchSample(ctx, svc, files[0])
	if err != nil {
		return err
	}
	progress("measuring the sinks' raw capacity…")
	report := benchReport{Subscribers: *subscribers, CPUs: runtime.NumCPU()}
	for _, ch := range channels {
		report.Channels = append(report.Channels, string(ch))
	}
	if report.Raw, err = blastRaw(ctx, sinks, channels, *subscribers, sample); err != nil {
		return err
	}

	// Idle latency: one event at a time to the one subscriber there is yet,
	// so it measures the pipeline, not a plan streaming a large store.
	progress("idle latency: %d events to one subscriber…", *idle)
	before := latencyHistogram(svc)
	for i := range *idle {
		base := sinkCounts(sinks)
		now := time.Now()
		raw := fmt.Sprintf(`{"id":"idle-%d","type":"incident.opened","time":%q,"incident":{"id":"idle-%d","title":{"en":"Idle check","nb":"Tomgangssjekk"},
"status":"investigating","impact":"minor","components":["bench-idle"],"started_at":%q,"message":{"en":"A check.","nb":"En sjekk."}}}`,
			i, now.Format(time.RFC3339Nano), i, now.Format(time.RFC3339))
		if _, err := svc.conn.PublishEvent(ctx, []byte(raw)); err != nil {
			return err
		}
		if err := waitSinks(ctx, sinks, base, len(channels), 10*time.Second); err != nil {
			return fmt.Errorf("idle event %d: %w", i, err)
		}
	}
	after := latencyHistogram(svc)
	report.Idle = idleReport{Events: *idle, P50Ms: 1000 * histogramQuantile(before, after, 0.50), P99Ms: 1000 * histogramQuantile(before, after, 0.99)}

	progress("adding %d subscribers…", *subscribers)
	if err := svc.conn.Subscribers.PutMany(ctx, *subscribers, func(i int) *notifier.Subscriber { return mk(i, []string{"styreweb"}) }); err != nil {
		return err
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// Adding the subscribers leaves the heap it needed to the process;
	// a service imports them long before an incident, and by then the
	// runtime has given that memory back to the system. Do so now, so the
	// peak is the fan-out's.
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	if *memProfile != "" {
		stopProfile := profileHeapAtPeak(*memProfile)
		defer stopProfile()
	}
	rawE, evSample := report.Raw, sample
	var peak int64
	for e := range *events + *repeat {
		raw, err := benchEventFile(files, e, *events)
		if err != nil {
			return err
		}
		ev, err := notifier.DecodeEvent(raw)
		if err != nil {
			return err
		}
		if e > 0 {
			// Each update's messages have their own size: measure the
			// sinks' raw rate with this one's.
			file := files[min(e, len(files)-1)]
			if e >= *events {
				file = files[1] // a copy of the second event
			}
			if evSample, err = benchSample(ctx, svc, file); err != nil {
				return err
			}
			if rawE, err = blastRaw(ctx, sinks, channels, *subscribers, evSample); err != nil {
				return err
			}
			sinks.Forget()
		}
		progress("event %d of %d: %s…", e+1, *events, ev.ID)
		base := sinkCounts(sinks)
		if e > 0 {
			// As before the first: what the blast left is given back.
			runtime.GC()
			debug.FreeOSMemory()
			resetPeakRSS()
		}
		published, cpu := time.Now(), processCPU()
		if _, err := svc.conn.PublishEvent(ctx, raw); err != nil {
			return err
		}
		p, err := waitSettled(ctx, svc, ev.ID, func() int64 {
			now := sinkCounts(sinks)
			return int64(now[0] - base[0] + now[1] - base[1] + now[2] - base[2])
		})
		if err != nil {
			return err
		}
		cpu = processCPU() - cpu
		// The fan-outs' peak, not the raw blasts' between them.
		peak = max(peak, peakRSS())
		var arrivals []time.Time
		byChannel := map[string]channelReport{}
		for i, ch := range []*benchsink.Arrivals{&sinks.Email, &sinks.Webhook, &sinks.SMS} {
			got := ch.Since(base[i])
			if len(got) > 0 {
				byChannel[string(benchSinkChannels[i])] = channelReport{Deliveries: int64(len(got)), Seconds: lastOf(got, published).Sub(published).Seconds()}
			}
			arrivals = append(arrivals, got...)
		}
		sinks.Forget()
		if got, want := int64(len(arrivals)), p.Total().Sent; got != want {
			return fmt.Errorf("event %s: the sinks got %d messages, Varsel counted %d sent", ev.ID, got, want)
		}
		lat := make([]time.Duration, len(arrivals))
		for i, t := range arrivals {
			lat[i] = t.Sub(published)
		}
		took := lastOf(arrivals, published).Sub(published).Seconds()
		er := eventReport{ID: ev.ID, Deliveries: int64(len(arrivals)), Seconds: took, ByChannel: byChannel,
			P50Ms: ms(benchsink.Percentile(lat, 50)), P99Ms: ms(benchsink.Percentile(lat, 99)), RSSMB: float64(currentRSS()) / (1 << 20)}
		if took > 0 {
			er.PerSecond = float64(er.Deliveries) / took
		}
		if er.Deliveries > 0 {
			er.CPUMicros = float64(cpu.Microseconds()) / float64(er.Deliveries)
		}
		if rec, err := svc.conn.Events.Get(ctx, ev.ID); err == nil && rec.PlannedAt != nil {
			er.PlanMs = ms(rec.PlannedAt.Sub(rec.ReceivedAt))
		}
		// The machine's speed drifts (shared cores): blast again right
		// after, and compare with the two together.
		rawAfter, err := blastRaw(ctx, sinks, channels, *subscribers, evSample)
		if err != nil {
			return err
		}
		sinks.Forget()
		er.RawBeforePerSecond, er.RawAfterPerSecond = rawRateFor(rawE, p), rawRateFor(rawAfter, p)
		// Compare like with like: the raw rate of the channels this event used.
		if rr := rawRateFor(bracketRaw(rawE, rawAfter), p); rr > 0 {
			er.RawPerSecond = rr
			er.PercentOfRaw = 100 * er.PerSecond / rr
		}
		report.Events = append(report.Events, er)
	}
	report.PeakRSSMB = float64(peak) / (1 << 20)
	var shares []float64
	for _, e := range report.Events {
		shares = append(shares, e.PercentOfRaw)
	}
	report.PercentOfRaw = spreadOf(shares)
	if *asJSON {
		return printJSON(stdout, report)
	}
	printBench(stdout, report)
	return nil
}

// benchSinkChannels names the sinks' arrivals, in the order sinkCounts
// gives them.
var benchSinkChannels = []notifier.ChannelName{notifier.Email, notifier.Webhook, notifier.SMS}

// lastOf is the latest of ts, or from when there is none later.
func lastOf(ts []time.Time, from time.Time) time.Time {
	last := from
	for _, t := range ts {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// profileHeapAtPeak writes a heap profile to path whenever the heap in use
// is the largest seen yet, until stop is called.
func profileHeapAtPeak(path string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var peak uint64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse <= peak+peak/10 {
				continue
			}
			peak = ms.HeapInuse
			if f, err := os.Create(path); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}()
	return func() { close(done); <-finished }
}

// benchSMTPConns and benchHTTPConns are the blasters' connections, the
// same as Varsel's: its SMTP pool (set to 8 here) and its 32 webhook
// workers.
const (
	benchSMTPConns = 8
	benchHTTPConns = 32
	benchSMSConns  = 4
)

// The bench's sender and Twilio account (its stand-in takes any).
const (
	benchMailFrom    = "Status <status@example.com>"
	benchTwilioSID   = "AC00000000000000000000000000000000"
	benchTwilioToken = "benchtoken00000000000000000000000"
)

// benchSample is one reader's delivery of the event in file on every
// channel, rendered against the incident as it will stand after it, so the
// blasters send what Varsel sends.
func benchSample(ctx context.Context, svc *service, file string) (map[notifier.ChannelName]*notifier.Delivery, error) {
	raw, err := examples.FS.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ev, err := notifier.DecodeEvent(raw)
	if err != nil {
		return nil, err
	}
	// The incident as it will stand after the event, as Varsel sends it.
	inc := &notifier.IncidentState{}
	if cur, err := svc.conn.Incidents.Get(ctx, ev.IncidentID()); err == nil {
		inc = cur
	}
	inc.Apply(ev)
	sub := &notifier.Subscriber{ID: "sample", Name: "Kari Nordmann", Email: "kari@example.com", Phone: "+4791000000",
		WebhookURL: "http://127.0.0.1/hook", WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Locale: "nb"}
	out := map[notifier.ChannelName]*notifier.Delivery{}
	for _, ch := range notifier.ChannelNames {
		m, err := svc.renderer.Render(ev, inc, sub, ch)
		if err != nil {
			return nil, err
		}
		out[ch] = &notifier.Delivery{ID: notifier.DeliveryID(ev.ID, sub.ID, ch), Channel: ch, Event: ev, Incident: inc, Subscriber: sub, Message: m, Attempt: 1}
	}
	return out, nil
}

// blastRaw sends n messages per channel straight at the sinks, every
// channel at once, and measures the combined rate. The messages are
// Varsel's own, byte for byte as it would send them (an email composed
// with every header for each reader, the signed webhook body and headers,
// the SMS text); only the pipeline is left out.
func blastRaw(ctx context.Context, sinks *benchsink.Sinks, channels []notifier.ChannelName, n int, sample map[notifier.ChannelName]*notifier.Delivery) (rateReport, error) {
	type result struct {
		ch   notifier.ChannelName
		took time.Duration
		err  error
	}
	results := make(chan result, len(channels))
	cpu := processCPU()
	from, err := mail.ParseAddress(benchMailFrom)
	if err != nil {
		return rateReport{}, err
	}
	hook, err := webhook.Sign(sample[notifier.Webhook], time.Now(), "", nil)
	if err != nil {
		return rateReport{}, err
	}
	start := time.Now()
	for _, ch := range channels {
		go func() {
			var err error
			switch ch {
			case notifier.Email:
				err = benchsink.BlastEmail(ctx, sinks.SMTPAddr, n, benchSMTPConns, func(i int) (*gomail.Msg, error) {
					d := *sample[notifier.Email]
					sub := *d.Subscriber
					sub.ID, sub.Email = fmt.Sprintf("b%07d", i), fmt.Sprintf("reader%d@example.com", i)
					d.Subscriber = &sub
					msg, _, err := email.Compose(&d, from)
					return msg, err
				})
			case notifier.Webhook:
				err = benchsink.BlastHTTP(ctx, sinks.WebhookURL, n, benchHTTPConns, hook.Body, hook.Header)
			case notifier.SMS:
				err = benchsink.BlastSMS(ctx, sinks.TwilioURL, benchTwilioSID, benchTwilioToken, n, benchSMSConns, sample[notifier.SMS].Message.SMS)
			}
			results <- result{ch, time.Since(start), err}
		}()
	}
	r := rateReport{ByChannel: map[string]float64{}}
	var errs []error
	var took time.Duration
	for range channels {
		res := <-results
		errs = append(errs, res.err)
		took = max(took, res.took)
		r.ByChannel[string(res.ch)] = float64(n) / res.took.Seconds()
	}
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	r.Deliveries = n * len(channels)
	r.Seconds = took.Seconds()
	r.PerSecond = float64(r.Deliveries) / r.Seconds
	r.CPUMicros = float64((processCPU() - cpu).Microseconds()) / float64(r.Deliveries)
	return r, nil
}

// bracketRaw is two raw blasts of the same messages taken together: all
// their messages over all their time, per channel too.
func bracketRaw(a, b rateReport) rateReport {
	r := rateReport{Deliveries: a.Deliveries + b.Deliveries, Seconds: a.Seconds + b.Seconds, ByChannel: map[string]float64{}}
	if r.Seconds > 0 {
		r.PerSecond = float64(r.Deliveries) / r.Seconds
	}
	for ch, x := range a.ByChannel {
		if y := b.ByChannel[ch]; x > 0 && y > 0 {
			r.ByChannel[ch] = 2 / (1/x + 1/y)
		}
	}
	r.CPUMicros = (a.CPUMicros + b.CPUMicros) / 2
	return r
}

// rawRateFor is the raw rate of the channels an event went out on: all of
// them, or without SMS for an update the policy sends no SMS for.
func rawRateFor(raw rateReport, p *notifier.Progress) float64 {
	var used []string
	for ch, c := range p.Channels {
		if c.Sent > 0 {
			used = append(used, string(ch))
		}
	}
	if len(used) == len(raw.ByChannel) {
		return raw.PerSecond
	}
	// The channels ran at once in the raw blast; the rate of a subset is
	// the harmonic combination of their rates at that load.
	var secs float64
	for _, ch := range used {
		if r := raw.ByChannel[ch]; r > 0 {
			secs = max(secs, 1/r)
		}
	}
	if secs == 0 {
		return 0
	}
	return float64(len(used)) / secs
}

func sinkCounts(s *benchsink.Sinks) [3]int {
	return [3]int{s.Email.Count(), s.Webhook.Count(), s.SMS.Count()}
}

// waitSinks waits until the sinks together got want more messages than base.
func waitSinks(ctx context.Context, s *benchsink.Sinks, base [3]int, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		now := sinkCounts(s)
		if got := now[0] + now[1] + now[2] - base[0] - base[1] - base[2]; got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no delivery within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// waitSettled waits until every planned delivery of the event is sent,
// failed or skipped, and fails when nothing moves for a minute. Once the
// event is planned, it watches the sinks (arrived: their messages since
// the event) until they have every planned message, looking at NATS only
// once a second meanwhile: a look at the progress is 17 requests to NATS,
// CPU taken from the fan-out being measured. The time to the last
// delivery comes from the sinks' clocks either way.
func waitSettled(ctx context.Context, svc *service, id string, arrived func() int64) (*notifier.Progress, error) {
	var last notifier.ChannelProgress
	moved := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		waited := false
		rec, err := svc.conn.Events.Get(ctx, id)
		if err == nil && rec.PlannedAt != nil {
			p, err := svc.conn.Counts.Progress(ctx, id)
			if err != nil {
				return nil, err
			}
			p.Planned = true
			t := p.Total()
			if p.Done() {
				if t.Failed > 0 || t.Skipped > 0 {
					return nil, fmt.Errorf("event %s: %d failed and %d skipped deliveries: the sinks should take them all", id, t.Failed, t.Skipped)
				}
				return p, nil
			}
			if t != last {
				last, moved = t, time.Now()
			}
			// Failed or skipped ones (nearly done, or wrong), or all in and
			// not yet all recorded: look again in 50 ms. Until the sinks
			// have them all, watch them, and NATS once a second (in case
			// some will never arrive).
			if n := arrived(); t.Failed == 0 && t.Skipped == 0 && n < t.Planned {
				if waitArrived(ctx, arrived, t.Planned, time.Second) > n {
					moved = time.Now()
				}
				waited = true
			}
		}
		if time.Since(moved) > time.Minute {
			return nil, fmt.Errorf("event %s: nothing moved for a minute at %+v", id, last)
		}
		if waited {
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitArrived waits up to d for arrived to reach want, looking every 2 ms,
// and returns the last count it saw.
func waitArrived(ctx context.Context, arrived func() int64, want int64, d time.Duration) int64 {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	end := time.Now().Add(d)
	for {
		n := arrived()
		if n >= want || time.Now().After(end) {
			return n
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// latencyHistogram reads varsel_event_to_delivery_seconds, all channels.
func latencyHistogram(svc *service) *dto.Histogram {
	mfs, err := svc.registry.Gather()
	if err != nil {
		return nil
	}
	sum := &dto.Histogram{}
	for _, mf := range mfs {
		if mf.GetName() != "varsel_event_to_delivery_seconds" {
			continue
		}
		for _, m := range mf.Metric {
			h := m.GetHistogram()
			if len(sum.Bucket) == 0 {
				for _, b := range h.Bucket {
					sum.Bucket = append(sum.Bucket, &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: new(uint64)})
				}
				sum.SampleCount = new(uint64)
			}
			*sum.SampleCount += h.GetSampleCount()
			for i, b := range h.Bucket {
				*sum.Bucket[i].CumulativeCount += b.GetCumulativeCount()
			}
		}
	}
	return sum
}

// histogramQuantile estimates the q-quantile of what was observed between
// two readings of a histogram, interpolating within the bucket as
// Prometheus's histogram_quantile does.
func histogramQuantile(before, after *dto.Histogram, q float64) float64 {
	if after == nil || len(after.Bucket) == 0 {
		return math.NaN()
	}
	count := func(h *dto.Histogram, i int) float64 {
		if h == nil || len(h.Bucket) <= i {
			return 0
		}
		return float64(h.Bucket[i].GetCumulativeCount())
	}
	total := float64(after.GetSampleCount())
	if before != nil && before.SampleCount != nil {
		total -= float64(before.GetSampleCount())
	}
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lower, prev := 0.0, 0.0
	for i, b := range after.Bucket {
		c := count(after, i) - count(before, i)
		if c >= rank {
			if c == prev {
				return b.GetUpperBound()
			}
			return lower + (b.GetUpperBound()-lower)*(rank-prev)/(c-prev)
		}
		lower, prev = b.GetUpperBound(), c
	}
	return after.Bucket[len(after.Bucket)-1].GetUpperBound()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printBench(w io.Writer, r benchReport) {
	fmt.Fprintf(w, "varsel bench: %d subscribers × %s, %d CPUs\n", r.Subscribers, strings.Join(r.Channels, " + "), r.CPUs)
	var parts []string
	for _, ch := range r.Channels {
		parts = append(parts, fmt.Sprintf("%s %.0f/s", ch, r.Raw.ByChannel[ch]))
	}
	fmt.Fprintf(w, "raw capacity of the sinks (go-mail on %d connections, net/http on %d keep-alive connections): %.0f deliveries/s (%s), CPU %.0f µs per message\n",
		benchSMTPConns, benchHTTPConns, r.Raw.PerSecond, strings.Join(parts, ", "), r.Raw.CPUMicros)
	fmt.Fprintf(w, "%-28s %11s %9s %11s %9s %9s %10s %10s %8s %8s %8s\n", "event", "deliveries", "seconds", "per second", "raw/s", "% of raw", "p50 ms", "p99 ms", "plan ms", "RSS MB", "CPU µs")
	for _, e := range r.Events {
		fmt.Fprintf(w, "%-28s %11d %9.2f %11.0f %9.0f %8.0f%% %10.0f %10.0f %8.0f %8.0f %8.0f\n", e.ID, e.Deliveries, e.Seconds, e.PerSecond, e.RawPerSecond, e.PercentOfRaw, e.P50Ms, e.P99Ms, e.PlanMs, e.RSSMB, e.CPUMicros)
		if len(e.ByChannel) > 1 {
			var last []string
			for _, ch := range r.Channels {
				if c, ok := e.ByChannel[ch]; ok {
					last = append(last, fmt.Sprintf("%s %d by %.2f s", ch, c.Deliveries, c.Seconds))
				}
			}
			fmt.Fprintf(w, "%-28s last of each channel: %s\n", "", strings.Join(last, ", "))
		}
	}
	if len(r.Events) > 1 {
		fmt.Fprintf(w, "%% of raw over the %d events: median %.0f%%, from %.0f%% to %.0f%%\n", len(r.Events), r.PercentOfRaw.Median, r.PercentOfRaw.Min, r.PercentOfRaw.Max)
	}
	fmt.Fprintf(w, "idle: event → first delivery p50 %.1f ms, p99 %.1f ms over %d events (histogram varsel_event_to_delivery_seconds)\n",
		r.Idle.P50Ms, r.Idle.P99Ms, r.Idle.Events)
	fmt.Fprintf(w, "peak RSS during the fan-outs: %.0f MB (the whole process: Varsel, embedded NATS, sinks)\n", r.PeakRSSMB)
}

// benchEventFile is the e-th event to publish: the timeline's, then (past
// the first n) copies of its second event, each with its own id and a
// minute later than the one before, so each is an update to send.
func benchEventFile(files []string, e, n int) ([]byte, error) {
	if e < n {
		return examples.FS.ReadFile(files[e])
	}
	raw, err := examples.FS.ReadFile(files[1])
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	at, err := time.Parse(time.RFC3339, doc["time"].(string))
	if err != nil {
		return nil, err
	}
	i := e - n + 1
	doc["id"] = fmt.Sprintf("%s-again-%d", doc["id"], i)
	doc["time"] = at.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
	return json.Marshal(doc)
}
