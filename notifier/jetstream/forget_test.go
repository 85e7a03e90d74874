package jetstream

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// TestRemovedSubscriberLeavesNoTraceInTheStore: after a removal no file of
// the store holds the person's address or id: not the subscriber record
// (all of its revisions), not the deliveries waiting for a retry, not the
// settled records in the delivery log, whose error quoted the address.
// Another subscriber's records are untouched, and the removed one's are
// still counted, under a pseudonym.
func TestRemovedSubscriberLeavesNoTraceInTheStore(t *testing.T) {
	const (
		address = "kari.remove.me@example.com"
		id      = "kari-nordmann-42"
		event   = "styreweb-2019-09-16-1100"
	)
	dir := t.TempDir()
	c := startConn(t, dir)
	ctx := context.Background()
	for i, email := range []string{"first." + address, address} {
		// Two revisions: an old address and the current one.
		if err := c.Subscribers.Put(ctx, &notifier.Subscriber{ID: id, Email: email, Name: "Kari Nordmann", Locale: "nb"}); err != nil {
			t.Fatalf("revision %d: %v", i, err)
		}
	}
	if err := c.Subscribers.Put(ctx, &notifier.Subscriber{ID: "ola", Email: "ola@example.com", Locale: "nb"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	record := func(sub string, ch notifier.ChannelName, st notifier.DeliveryStatus, lastErr string) *notifier.DeliveryRecord {
		return &notifier.DeliveryRecord{ID: event + "." + sub + "." + string(ch), EventID: event, EventType: notifier.IncidentOpened,
			SubscriberID: sub, Channel: ch, Status: st, Attempts: 1, LastError: lastErr, EventTime: now, QueuedAt: now, UpdatedAt: now}
	}
	done := make(chan error, 3)
	c.Deliveries.Settle(record(id, notifier.Email, notifier.StatusFailed, "550 5.1.1 <"+address+">: no such user"), func(err error) { done <- err })
	c.Deliveries.Settle(record("ola", notifier.Email, notifier.StatusSent, ""), func(err error) { done <- err })
	c.Deliveries.Settle(record(id, notifier.Webhook, notifier.StatusSent, ""), func(err error) { done <- err })
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waiting := record(id, notifier.SMS, notifier.StatusQueued, "timeout sending to "+address)
	if err := c.Deliveries.Save(ctx, waiting); err != nil {
		t.Fatal(err)
	}
	c.Deliveries.Flush()
	logDir := filepath.Join(dir, "jetstream", "jetstream", "$G", "streams", LogStream)
	if files := filesHolding(t, dir, address); len(files) == 0 {
		t.Fatal("before the removal the address is in no file: this test would prove nothing")
	}
	if files := filesHolding(t, logDir, id); len(files) == 0 {
		t.Fatal("before the removal the delivery log's files do not name the subscriber: this test would prove nothing")
	}
	// Errors are stored with the addresses they quote masked.
	got, err := c.Deliveries.Get(ctx, event+"."+id+".email")
	if err != nil || strings.Contains(got.LastError, address) || !strings.Contains(got.LastError, "k***@example.com") {
		t.Fatalf("the stored error reads %q (%v), want the address masked", got.LastError, err)
	}

	if err := c.Subscribers.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribers.Get(ctx, id); err == nil {
		t.Fatal("the removed subscriber is still found")
	}
	var masked, ola int
	err = c.Deliveries.List(ctx, DeliveryFilter{EventID: event}, func(r *notifier.DeliveryRecord) error {
		switch {
		case r.SubscriberID == "ola":
			ola++
		case strings.HasPrefix(r.SubscriberID, "removed-"):
			masked++
			if strings.Contains(r.LastError, "@") {
				t.Errorf("a masked record keeps its error: %q", r.LastError)
			}
		default:
			t.Errorf("record of %q after the removal", r.SubscriberID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if masked != 2 || ola != 1 {
		t.Errorf("after the removal: %d masked records (want 2), %d of ola (want 1)", masked, ola)
	}
	c.Close()
	if files := filesHolding(t, dir, address); len(files) > 0 {
		t.Errorf("after the removal the address is still in %v", files)
	}
	if files := filesHolding(t, logDir, id); len(files) > 0 {
		t.Errorf("after the removal the delivery log still names %s in %v", id, files)
	}
}

// TestOrdinarySubscriberBucketIsMovedToAnErasableOne: a store made before
// subscribers were erasable (a KeyValue stream that denies deletes) is
// moved on start, keeping every subscriber, and a removal then erases.
func TestOrdinarySubscriberBucketIsMovedToAnErasableOne(t *testing.T) {
	dir := t.TempDir()
	srv, err := StartServer(filepath.Join(dir, "jetstream"), "127.0.0.1:0", quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	old, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: SubscribersKV, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"kari", "ola"} {
		if _, err := old.Put(ctx, id, []byte(`{"id":"`+id+`","email":"`+id+`.moved@example.com","locale":"nb"}`)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	c := startConn(t, dir)
	for _, id := range []string{"kari", "ola"} {
		if sub, err := c.Subscribers.Get(ctx, id); err != nil || sub.Email != id+".moved@example.com" {
			t.Fatalf("after the move %s reads %+v, %v", id, sub, err)
		}
	}
	st, err := c.JS.Stream(ctx, "KV_"+SubscribersKV)
	if err != nil || st.CachedInfo().Config.DenyDelete {
		t.Fatalf("the subscribers' stream still denies deletes (%v)", err)
	}
	if _, err := c.JS.Stream(ctx, "VARSEL_MOVE_"+SubscribersKV); err == nil {
		t.Error("the backup stream of the move is left behind")
	}
	if err := c.Subscribers.Delete(ctx, "kari"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if files := filesHolding(t, dir, "kari.moved@example.com"); len(files) > 0 {
		t.Errorf("after the move and a removal the address is still in %v", files)
	}
	if files := filesHolding(t, dir, "ola.moved@example.com"); len(files) == 0 {
		t.Error("the other subscriber's address is in no file: the search proves nothing")
	}
}

// TestJobOfARemovedSubscriberLeavesNoID: a job that comes after its
// subscriber was removed (a retry, a redelivery) is skipped, and its
// record names a pseudonym, not the removed id.
func TestJobOfARemovedSubscriberLeavesNoID(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	ctx := context.Background()
	const event = "gone-1"
	openAndPlan(t, s, event)
	job, _ := json.Marshal(notifier.NewJob(event, "kari-gone", notifier.Email))
	if _, err := s.conn.JS.Publish(ctx, jobSubject(string(notifier.Email)), job); err != nil {
		t.Fatal(err)
	}
	got := waitRecords(t, s, event, 1)
	if r := got[0]; r.Status != notifier.StatusSkipped || strings.Contains(r.ID, "kari-gone") || r.SubscriberID != notifier.RemovedPseudonym("kari-gone") {
		t.Errorf("record of a removed subscriber's job: %+v", r)
	}
}

// TestJobOfSeveralWithARemovedSubscriber: the subscribers of a job of
// several are read together; the one that is gone is skipped under its
// pseudonym, the others are sent to once.
func TestJobOfSeveralWithARemovedSubscriber(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	ctx := context.Background()
	const event = "gone-2"
	addSubscribers(t, s.conn, 3, func(i int) *notifier.Subscriber {
		return &notifier.Subscriber{ID: fmt.Sprintf("here-%d", i), Email: fmt.Sprintf("here%d@example.com", i), Components: []string{"other"}}
	})
	openAndPlan(t, s, event)
	job, _ := json.Marshal(notifier.Job{EventID: event, Channel: notifier.Email, Subscribers: []string{"here-0", "kari-gone", "here-2"}})
	if _, err := s.conn.JS.Publish(ctx, manyJobSubject(string(notifier.Email)), job); err != nil {
		t.Fatal(err)
	}
	got := waitRecords(t, s, event, 3)
	status := map[string]notifier.DeliveryStatus{}
	for _, r := range got {
		status[r.SubscriberID] = r.Status
	}
	want := map[string]notifier.DeliveryStatus{"here-0": notifier.StatusSent, "here-2": notifier.StatusSent, notifier.RemovedPseudonym("kari-gone"): notifier.StatusSkipped}
	if fmt.Sprint(status) != fmt.Sprint(want) {
		t.Errorf("records %v, want %v", status, want)
	}
	if sends, distinct := s.chans[notifier.Email].total(); sends != 2 || distinct != 2 {
		t.Errorf("%d sends to %d deliveries, want 2 each", sends, distinct)
	}
}

// openAndPlan publishes an opening of event on styreweb and waits until it
// is planned.
func openAndPlan(t *testing.T, s *stack, event string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.conn.PublishEvent(ctx, eventJSON(event, "incident.opened", "2019-09-16T11:00:00+02:00", "investigating", "major", "styreweb")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the event planned", func() bool {
		r, err := s.conn.Events.Get(ctx, event)
		return err == nil && r.PlannedAt != nil
	})
}

// waitRecords waits until the delivery log holds n records of event and
// returns them.
func waitRecords(t *testing.T, s *stack, event string, n int) []*notifier.DeliveryRecord {
	t.Helper()
	var got []*notifier.DeliveryRecord
	waitFor(t, 10*time.Second, fmt.Sprintf("%d records of %s", n, event), func() bool {
		s.conn.Deliveries.Flush()
		got = got[:0]
		_ = s.conn.Deliveries.List(context.Background(), DeliveryFilter{EventID: event}, func(r *notifier.DeliveryRecord) error {
			got = append(got, r)
			return nil
		})
		return len(got) == n
	})
	return got
}
