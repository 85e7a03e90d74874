package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/varsel/varsel/notifier"
)

func publish(t *testing.T, c *Conn, raw []byte) {
	t.Helper()
	if _, err := c.PublishEvent(context.Background(), raw); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func TestPublishPlansOneJobPerSubscriberAndChannel(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	// 3 full subscribers on "api", 1 on another component, 1 email-only on all.
	addSubscribers(t, s.conn, 3, fullSubscriber)
	other := fullSubscriber(10)
	other.Components = []string{"billing"}
	addSubscribers(t, s.conn, 1, func(int) *notifier.Subscriber { return other })
	addSubscribers(t, s.conn, 1, func(int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: "mail-only", Email: "m@example.com"}
	})

	opened := eventJSON("e1", "incident.opened", "2019-09-16T08:00:00+02:00", "investigating", "major")
	publish(t, s.conn, opened)
	// opened → email, sms, webhook: 3×3 + 1 email = 10
	waitFor(t, 10*time.Second, "10 sends", func() bool {
		n := 0
		for _, r := range s.chans {
			sends, _ := r.total()
			n += sends
		}
		return n == 10
	})
	// The same event again, by JetStream and by core NATS after the dedupe
	// window would have let it through: still one set.
	publish(t, s.conn, opened)
	if err := s.conn.NC.Publish("varsel.events.incident.opened", opened); err != nil {
		t.Fatal(err)
	}
	updated := eventJSON("e2", "incident.updated", "2019-09-16T09:00:00+02:00", "identified", "major")
	publish(t, s.conn, updated)
	// updated without impact rise → email + webhook only: 3×2 + 1 = 7 more
	waitFor(t, 10*time.Second, "17 sends", func() bool {
		n := 0
		for _, r := range s.chans {
			sends, _ := r.total()
			n += sends
		}
		return n == 17
	})
	for name, r := range s.chans {
		sends, distinct := r.total()
		if sends != distinct {
			t.Errorf("%s: %d sends for %d deliveries: duplicates", name, sends, distinct)
		}
	}
	if got, _ := s.chans[notifier.SMS].total(); got != 3 {
		t.Errorf("sms sends = %d, want 3 (opened only)", got)
	}
	rec, err := s.conn.Events.Get(context.Background(), "e1")
	if err != nil || rec.Jobs != 10 || rec.PlannedAt == nil {
		t.Fatalf("event record = %+v, %v; want 10 jobs planned", rec, err)
	}
	d, err := s.conn.Deliveries.Get(context.Background(), notifier.DeliveryID("e1", "sub-00001", notifier.SMS))
	if err != nil || d.Status != notifier.StatusSent || d.Attempts != 1 || d.ProviderID == "" {
		t.Fatalf("delivery record = %+v, %v", d, err)
	}
}

func TestInvalidEventsAreRejectedWithReasonAndNeverDelivered(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	addSubscribers(t, s.conn, 2, fullSubscriber)
	valid := string(eventJSON("ok", "incident.opened", "2019-09-16T08:00:00+02:00", "investigating", "major"))
	bad := []struct {
		name, subject, body, reason string
	}{
		{"not json", "incident.opened", `{"id":`, "not valid JSON"},
		{"empty", "incident.opened", ``, "event is empty"},
		{"array", "incident.opened", `[1,2]`, "must be a JSON object"},
		{"unknown field", "incident.opened", strings.Replace(valid, `"id":"ok"`, `"id":"ok","color":"red"`, 1), "color: unknown field"},
		{"missing id", "incident.opened", strings.Replace(valid, `"id":"ok",`, ``, 1), "id: required"},
		{"bad id", "incident.opened", strings.Replace(valid, `"id":"ok"`, `"id":"a b"`, 1), "id: \"a b\""},
		{"unknown type", "incident.exploded", strings.Replace(valid, `incident.opened`, `incident.exploded`, 1), "unknown type"},
		{"type vs subject", "incident.resolved", valid, "does not match the subject"},
		// Beside the event's other problems too: the reason names every one.
		{"type vs subject and more", "incident.updated", `{"id":"x2","type":"incident.opened"}`, `; type: "incident.opened" does not match the subject varsel.events.incident.updated`},
		{"bad time", "incident.opened", strings.Replace(valid, `"time":"2019-09-16T08:00:00+02:00"`, `"time":"yesterday"`, 1), "time: \"yesterday\""},
		{"unknown status", "incident.opened", strings.Replace(valid, `"investigating"`, `"panicking"`, 1), "unknown status"},
		{"unknown impact", "incident.opened", strings.Replace(valid, `"major"`, `"huge"`, 1), "unknown impact"},
		{"no components", "incident.opened", strings.Replace(valid, `["api"]`, `[]`, 1), "at least one component"},
		{"empty title", "incident.opened", strings.Replace(valid, `{"en":"API down","nb":"API-et er nede"}`, `{}`, 1), "incident.title: needs at least one language"},
		{"unknown language", "incident.opened", strings.Replace(valid, `"nb":"API-et er nede"`, `"klingon":"x"`, 1), "unknown language tag"},
		{"oversize", "incident.opened", strings.Replace(valid, `Working on it.`, strings.Repeat("x", 70<<10), 1), "more than the limit"},
		{"no incident", "incident.opened", `{"id":"x","type":"incident.opened","time":"2019-09-16T08:00:00+02:00"}`, "incident: required"},
		{"letter without signature", "letter.broadcast", `{"id":"l","type":"letter.broadcast","time":"2019-09-16T08:00:00+02:00","letter":{"audience":{"all":true},"subject":{"en":"Sorry"},"body":{"en":"We are sorry."},"signature":{"name":""}}}`, "letter.signature.name"},
	}
	for _, b := range bad {
		msg := nats.NewMsg("varsel.events." + b.subject)
		msg.Data = []byte(b.body)
		if err := s.conn.NC.PublishMsg(msg); err != nil {
			t.Fatalf("%s: publish: %v", b.name, err)
		}
	}
	var got []Rejected
	waitFor(t, 10*time.Second, fmt.Sprintf("%d rejections", len(bad)), func() bool {
		var err error
		got, err = s.conn.Rejections(context.Background())
		return err == nil && len(got) == len(bad)
	})
	reasons := map[string]bool{}
	for i, b := range bad {
		if !strings.Contains(got[i].Reason, b.reason) {
			t.Errorf("%s: reason %q does not say %q", b.name, got[i].Reason, b.reason)
		}
		// Payloads are kept as published; an oversized one is kept up to
		// the size limit, with its full size.
		kept := b.body[:min(len(b.body), notifier.MaxEventSize)]
		if got[i].Subject != "varsel.events."+b.subject || string(got[i].Data) != kept || got[i].OriginalSize != len(b.body) {
			t.Errorf("%s: stored subject/data/size differ from what was published", b.name)
		}
		reasons[got[i].Reason] = true
	}
	if len(reasons) != len(bad) {
		t.Errorf("%d distinct reasons for %d bad events", len(reasons), len(bad))
	}
	for name, r := range s.chans {
		if n, _ := r.total(); n != 0 {
			t.Errorf("%s sent %d messages for invalid events", name, n)
		}
	}
}

func TestLateOlderUpdateDoesNotOverwriteNewerState(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	addSubscribers(t, s.conn, 1, fullSubscriber)
	publish(t, s.conn, eventJSON("o", "incident.opened", "2019-09-16T08:00:00+02:00", "investigating", "major"))
	publish(t, s.conn, eventJSON("r", "incident.resolved", "2019-09-19T04:00:00+02:00", "resolved", "major"))
	publish(t, s.conn, eventJSON("u-late", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "critical"))
	var st *notifier.IncidentState
	waitFor(t, 10*time.Second, "three updates in the timeline", func() bool {
		var err error
		st, err = s.conn.Incidents.Get(context.Background(), "inc-1")
		return err == nil && len(st.Updates) == 3
	})
	// Resolved, so no current impact; the late critical update still
	// counts for how bad it was.
	if st.Incident.Status != notifier.StatusResolved || st.Incident.Impact != notifier.ImpactNone || st.ResolvedAt == nil || st.PeakImpact != notifier.ImpactCritical {
		t.Errorf("state = %s/%s (peak %s), want resolved/none (peak critical)", st.Incident.Status, st.Incident.Impact, st.PeakImpact)
	}
	if ids := []string{st.Updates[0].EventID, st.Updates[1].EventID, st.Updates[2].EventID}; ids[1] != "u-late" {
		t.Errorf("timeline order = %v, want the late update in the middle", ids)
	}
	waitFor(t, 10*time.Second, "late event recorded", func() bool {
		rec, err := s.conn.Events.Get(context.Background(), "u-late")
		return err == nil && rec.PlannedAt != nil && rec.Late
	})
	if n := s.chans[notifier.Email].attempts(notifier.DeliveryID("u-late", "sub-00000", notifier.Email)); n != 0 {
		t.Errorf("late update was emailed %d times; a newer update had already gone out", n)
	}
}

func TestRetriesThenSucceedsOnceAndPermanentFailureIsRecorded(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{BaseBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		MaxAttempts: map[notifier.ChannelName]int{notifier.Webhook: 3}})
	addSubscribers(t, s.conn, 3, fullSubscriber)
	// sub-0: email fails twice with a retryable error, then works.
	// sub-1: email bounces (permanent). sub-2: webhook always 503 → dead letter after 3.
	s.chans[notifier.Email].fail = func(d *notifier.Delivery) (bool, error) {
		switch {
		case d.Subscriber.ID == "sub-00000" && d.Attempt <= 2:
			return true, &notifier.SendError{Reason: notifier.ReasonServer, Err: errors.New("451 try later")}
		case d.Subscriber.ID == "sub-00001":
			return false, &notifier.SendError{Reason: notifier.ReasonBounced, Err: errors.New("550 no such user")}
		}
		return false, nil
	}
	s.chans[notifier.Webhook].fail = func(d *notifier.Delivery) (bool, error) {
		if d.Subscriber.ID == "sub-00002" {
			return true, &notifier.SendError{Reason: notifier.ReasonServer, Err: errors.New("503")}
		}
		return false, nil
	}
	// Every outcome is also published on varsel.deliveries.<status>.
	var outMu sync.Mutex
	outcomes := map[string][]notifier.DeliveryStatus{}
	outSub, err := s.conn.NC.Subscribe(OutcomePrefix+">", func(m *nats.Msg) {
		var rec notifier.DeliveryRecord
		if err := json.Unmarshal(m.Data, &rec); err != nil || m.Subject != OutcomePrefix+string(rec.Status) {
			t.Errorf("outcome on %s: %s (%v)", m.Subject, m.Data, err)
			return
		}
		outMu.Lock()
		outcomes[rec.ID] = append(outcomes[rec.ID], rec.Status)
		outMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer outSub.Unsubscribe()
	publish(t, s.conn, eventJSON("e1", "incident.updated", "2019-09-16T08:00:00+02:00", "identified", "minor"))
	ctx := context.Background()
	wait := func(id string, want notifier.DeliveryStatus) *notifier.DeliveryRecord {
		var rec *notifier.DeliveryRecord
		waitFor(t, 10*time.Second, id+" "+string(want), func() bool {
			var err error
			rec, err = s.conn.Deliveries.Get(ctx, id)
			return err == nil && rec.Status == want
		})
		return rec
	}
	ok := wait(notifier.DeliveryID("e1", "sub-00000", notifier.Email), notifier.StatusSent)
	if ok.Attempts != 3 || s.chans[notifier.Email].sent[ok.ID] != 1 {
		t.Errorf("retried delivery: attempts %d, sent %d; want 3 and 1", ok.Attempts, s.chans[notifier.Email].sent[ok.ID])
	}
	bounced := wait(notifier.DeliveryID("e1", "sub-00001", notifier.Email), notifier.StatusFailed)
	if bounced.Attempts != 1 || bounced.Reason != notifier.ReasonBounced || !strings.Contains(bounced.LastError, "550") {
		t.Errorf("bounced delivery = %+v", bounced)
	}
	dead := wait(notifier.DeliveryID("e1", "sub-00002", notifier.Webhook), notifier.StatusFailed)
	if dead.Attempts != 3 || dead.Reason != notifier.ReasonServer {
		t.Errorf("dead letter = attempts %d reason %s; want 3 server_error", dead.Attempts, dead.Reason)
	}
	wantOutcomes := map[string]string{
		ok.ID:      "[queued queued sent]",
		bounced.ID: "[failed]",
		dead.ID:    "[queued queued failed]",
		notifier.DeliveryID("e1", "sub-00000", notifier.Webhook): "[sent]",
	}
	waitFor(t, 5*time.Second, "every outcome published", func() bool {
		outMu.Lock()
		defer outMu.Unlock()
		for id, want := range wantOutcomes {
			if fmt.Sprint(outcomes[id]) != want {
				return false
			}
		}
		return true
	})
	sub, _ := s.conn.Subscribers.Get(ctx, "sub-00001")
	if sub.Failures[notifier.Email] != 1 {
		t.Errorf("hard bounce not counted on the subscriber: %+v", sub.Failures)
	}

	// A failed delivery can be retried by hand once the receiver is fixed.
	s.chans[notifier.Webhook].fail = nil
	if _, err := s.conn.RetryJob(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	again := wait(dead.ID, notifier.StatusSent)
	if again.Attempts != 1 {
		t.Errorf("manual retry attempts = %d, want 1", again.Attempts)
	}
	if _, err := s.conn.RetryJob(ctx, again.ID); err == nil {
		t.Error("retrying a sent delivery must be refused")
	}
}

func TestSuppressedChannelIsSkippedAndLogged(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	addSubscribers(t, s.conn, 1, fullSubscriber)
	// STOP arrives after planning: the worker must read fresh state.
	s.chans[notifier.SMS].fail = func(d *notifier.Delivery) (bool, error) {
		return false, &notifier.SendError{Reason: notifier.ReasonOptedOut, Suppress: true, Err: errors.New("21610 replied STOP")}
	}
	publish(t, s.conn, eventJSON("e1", "incident.opened", "2019-09-16T08:00:00+02:00", "investigating", "major"))
	ctx := context.Background()
	waitFor(t, 10*time.Second, "sms suppressed", func() bool {
		sub, err := s.conn.Subscribers.Get(ctx, "sub-00000")
		return err == nil && sub.Suppressed[notifier.SMS].Reason == notifier.ReasonOptedOut
	})
	publish(t, s.conn, eventJSON("e2", "incident.resolved", "2019-09-16T10:00:00+02:00", "resolved", "major"))
	waitFor(t, 10*time.Second, "resolved email", func() bool {
		r, err := s.conn.Deliveries.Get(ctx, notifier.DeliveryID("e2", "sub-00000", notifier.Email))
		return err == nil && r.Status == notifier.StatusSent
	})
	if n := s.chans[notifier.SMS].attempts(notifier.DeliveryID("e2", "sub-00000", notifier.SMS)); n != 0 {
		t.Errorf("opted-out phone was sent %d SMS", n)
	}
}

// TestJobsOfSeveralDeliveries: a plan queues its deliveries of one event
// and channel 32 to a job message; each is still sent once and retried on
// its own (one failing delivery of a job gets its own schedule while the
// rest are recorded as sent).
func TestJobsOfSeveralDeliveries(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{BaseBackoff: time.Hour, MaxBackoff: time.Hour})
	failing := notifier.DeliveryID("many", "m00007", notifier.Email)
	s.chans[notifier.Email].fail = func(d *notifier.Delivery) (bool, error) {
		if d.ID == failing {
			return true, &notifier.SendError{Reason: notifier.ReasonServer, Err: errors.New("451 try later")}
		}
		return false, nil
	}
	addSubscribers(t, s.conn, 70, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("m%05d", i), Email: fmt.Sprintf("m%d@example.com", i)}
	})
	publish(t, s.conn, eventJSON("many", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	ctx := context.Background()
	waitFor(t, 10*time.Second, "69 sends and one retry scheduled", func() bool {
		sends, _ := s.chans[notifier.Email].total()
		n, err := s.conn.WaitingRetries(ctx)
		return sends == 69 && err == nil && n == 1
	})
	// Jobs of several go to their own subject and consumer, which an older
	// instance (pulling jobs of one) never reads.
	single, err := s.conn.JS.Consumer(ctx, DeliveriesStream, dispatchConsumerNames(notifier.Email)[0])
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.conn.JS.Consumer(ctx, DeliveriesStream, dispatchConsumerNames(notifier.Email)[1])
	if err != nil {
		t.Fatal(err)
	}
	if ci, err := single.Info(ctx); err != nil || ci.Delivered.Consumer != 0 {
		t.Errorf("the consumer of jobs of one handed out %+v (%v): a job of several reached it", ci.Delivered, err)
	}
	waitFor(t, 10*time.Second, "the jobs acknowledged", func() bool {
		ci, err := cons.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	if ci, err := cons.Info(ctx); err != nil || ci.Delivered.Consumer != 3 {
		t.Errorf("jobs handed out: %+v, %v; want 3 (32 + 32 + 6 deliveries)", ci.Delivered, err)
	}
	if sends, distinct := s.chans[notifier.Email].total(); sends != 69 || distinct != 69 {
		t.Errorf("%d sends to %d deliveries, want 69 each", sends, distinct)
	}
	if n := s.chans[notifier.Email].attempts(failing); n != 1 {
		t.Errorf("the failing delivery was attempted %d times, want 1 (its retry is an hour away)", n)
	}
	for i := range 70 {
		id := notifier.DeliveryID("many", fmt.Sprintf("m%05d", i), notifier.Email)
		r, err := s.conn.Deliveries.Get(ctx, id)
		want := notifier.StatusSent
		if id == failing {
			want = notifier.StatusQueued
		}
		if err != nil || r.Status != want {
			t.Fatalf("%s: %+v, %v; want %s", id, r, err, want)
		}
	}
}

// TestShutdownStartsNoMoreOfAJob: a process told to stop while a job of
// several is half sent finishes the send in flight and starts no other;
// run again, it sends the rest once, and the first not again.
func TestShutdownStartsNoMoreOfAJob(t *testing.T) {
	t.Setenv("VARSEL_BENCH_CONCURRENCY", "1")
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	addSubscribers(t, s.conn, 5, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("sd%05d", i), Email: fmt.Sprintf("sd%d@example.com", i)}
	})
	inSend, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.chans[notifier.Email].fail = func(d *notifier.Delivery) (bool, error) {
		once.Do(func() { close(inSend); <-release })
		return false, nil
	}
	publish(t, s.conn, eventJSON("sd", "incident.updated", "2019-09-17T10:00:00+02:00", "identified", "minor"))
	select {
	case <-inSend:
	case <-time.After(10 * time.Second):
		t.Fatal("the first send never started")
	}
	s.cancel() // shut down with one send in flight and four to go
	time.Sleep(200 * time.Millisecond)
	close(release)
	<-s.done
	s.cancel = nil
	if sends, _ := s.chans[notifier.Email].total(); sends != 1 {
		s.conn.Close()
		t.Fatalf("%d sends by the process told to stop, want only the one in flight", sends)
	}
	s.run()
	waitFor(t, 15*time.Second, "the rest sent", func() bool {
		sends, _ := s.chans[notifier.Email].total()
		return sends >= 5
	})
	time.Sleep(300 * time.Millisecond)
	if sends, distinct := s.chans[notifier.Email].total(); sends != 5 || distinct != 5 {
		t.Errorf("%d sends to %d deliveries after the restart, want 5 each", sends, distinct)
	}
}
