package jetstream

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// TestEmbeddedServerAsksWhoYouAre: anonymous clients are refused, the
// service's context file works, and the producer may publish an event and
// nothing else: not read a bucket, not the link secret, not the replies
// the service receives.
func TestEmbeddedServerAsksWhoYouAre(t *testing.T) {
	dir := t.TempDir()
	c := startConn(t, dir)
	defer c.Close()
	url := c.ClientURL()

	if nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the embedded server")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous connect failed for another reason: %v", err)
	}

	for _, name := range []string{"varsel.json", "producer.json"} {
		info, err := os.Stat(filepath.Join(dir, CredentialsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, info.Mode().Perm())
		}
	}
	svcURL, svcCreds, err := LoadContext(filepath.Join(dir, CredentialsDir, "varsel.json"))
	if err != nil {
		t.Fatal(err)
	}
	if svcURL != url || svcCreds.User != ServiceUser {
		t.Fatalf("varsel.json names %q as %q, want %q as %q", svcURL, svcCreds.User, url, ServiceUser)
	}
	cli, err := Dial(context.Background(), svcURL, svcCreds, quietLogger())
	if err != nil {
		t.Fatalf("the CLI with varsel.json: %v", err)
	}
	defer cli.Close()
	secret, err := cli.Secret(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}

	// The producer.
	prodURL, prodCreds, err := LoadContext(filepath.Join(dir, CredentialsDir, "producer.json"))
	if err != nil {
		t.Fatal(err)
	}
	violations := make(chan error, 16)
	pnc, err := nats.Connect(prodURL, nats.UserInfo(prodCreds.User, prodCreds.Password),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("producer connect: %v", err)
	}
	defer pnc.Close()
	pjs, _ := jetstream.New(pnc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := nats.NewMsg("varsel.events.incident.opened")
	msg.Header.Set(jetstream.MsgIDHeader, "auth-test-1")
	msg.Data = eventJSON("auth-test-1", "incident.opened", "2019-09-16T11:00:00+02:00", "investigating", "major", "styreweb")
	if _, err := pjs.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("the producer could not publish an event: %v", err)
	}

	// Everything else is refused: a subscription to the service's
	// subjects, a bucket read through the JetStream API, a direct get.
	snoop, _ := pnc.SubscribeSync(ServiceInbox + ".>")
	if _, err := pnc.SubscribeSync("varsel.>"); err != nil {
		t.Fatal(err)
	}
	if err := pnc.Publish("$JS.API.DIRECT.GET.KV_"+ConfigKV+".$KV."+ConfigKV+".secret", nil); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	if kv, err := pjs.KeyValue(short, ConfigKV); err == nil {
		if e, err := kv.Get(short, "secret"); err == nil {
			t.Fatalf("the producer read the link secret (%d bytes)", len(e.Value()))
		}
	}
	if err := pnc.Publish("varsel.jobs.email", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// The service reads the secret again while the producer listens on
	// every inbox it may subscribe to.
	inbox, _ := pnc.SubscribeSync("_INBOX.>")
	if _, err := cli.Secret(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	_ = pnc.Flush()
	deadline := time.After(2 * time.Second)
	var seen []string
collect:
	for {
		select {
		case err := <-violations:
			seen = append(seen, err.Error())
		case <-deadline:
			break collect
		}
	}
	joined := strings.Join(seen, "\n")
	for _, want := range []string{ServiceInbox + ".>", "varsel.>", "$JS.API.DIRECT.GET", "varsel.jobs.email"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no permissions violation reported for %s; got:\n%s", want, joined)
		}
	}
	for _, sub := range []*nats.Subscription{snoop, inbox} {
		for {
			m, err := sub.NextMsg(50 * time.Millisecond)
			if err != nil {
				break
			}
			if bytes.Contains(m.Data, secret) {
				t.Fatalf("the producer received the secret on %s", m.Subject)
			}
		}
	}

	// The acknowledgement of a publish goes to its reply subject: one
	// naming a bucket of the service's must not write there.
	for i, reply := range []string{"$KV." + ConfigKV + ".secret", "$KV." + SubscribersKV + ".injected", "varsel.jobs.email", ServiceInbox + ".x"} {
		id := fmt.Sprintf("auth-inject-%d", i)
		data := eventJSON(id, "incident.opened", "2019-09-16T11:00:00+02:00", "investigating", "major", "styreweb")
		if err := pnc.PublishRequest("varsel.events.incident.opened", reply, data); err != nil {
			t.Fatal(err)
		}
	}
	_ = pnc.Flush()
	time.Sleep(300 * time.Millisecond)
	if again, err := cli.Secret(context.Background(), ""); err != nil || !bytes.Equal(again, secret) {
		t.Fatalf("after a publish replying to the secret's key the secret is %q (%v), was %q", again, err, secret)
	}
	if _, err := cli.Subscribers.Get(context.Background(), "injected"); err == nil {
		t.Fatal("a publish's reply subject wrote a subscriber")
	}
	if info, err := cli.JS.Stream(context.Background(), DeliveriesStream); err == nil && info.CachedInfo().State.Msgs > 0 {
		t.Fatalf("a publish's reply subject queued %d jobs", info.CachedInfo().State.Msgs)
	}

	// A restart keeps the same credentials, so producers keep working.
	before, _ := os.ReadFile(filepath.Join(dir, CredentialsDir, "producer.json"))
	c.Close()
	cli.Close()
	c2 := startConn(t, dir)
	defer c2.Close()
	_, again, err := LoadContext(filepath.Join(dir, CredentialsDir, "producer.json"))
	if err != nil || again.Password != prodCreds.Password {
		t.Fatalf("the producer's password changed on restart (err %v)\nbefore: %s", err, before)
	}
}

// TestStoreEncryptedAtRest: with a key, no subscriber's address can be
// found in the store's files; without one it can (so the search works),
// and a rotation to a new key keeps the data readable.
func TestStoreEncryptedAtRest(t *testing.T) {
	const address = "kari.nordmann.secret@example.com"
	write := func(cfg Config) {
		c := startConnWith(t, cfg)
		if err := c.Subscribers.Put(context.Background(), &notifier.Subscriber{ID: "kari", Email: address, Locale: "nb"}); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	plain := t.TempDir()
	write(Config{DataDir: plain, Listen: "127.0.0.1:0"})
	if files := filesHolding(t, plain, address); len(files) == 0 {
		t.Fatal("the address is not found in a plain store: the search below proves nothing")
	}

	dir := t.TempDir()
	key := "7f3c2a9be1d04f5a8c6e2b1d9a7f3c2a9be1d04f5a8c6e2b1d9a7f3c"
	write(Config{DataDir: dir, Listen: "127.0.0.1:0", EncryptionKey: key})
	if files := filesHolding(t, dir, address); len(files) > 0 {
		t.Fatalf("the address is readable in the encrypted store: %v", files)
	}

	// Rotate: start with the new key and the previous one, then with the
	// new one alone.
	newKey := "e1d04f5a8c6e2b1d9a7f3c2a9be1d04f5a8c6e2b1d9a7f3c7f3c2a9b"
	for _, cfg := range []Config{
		{DataDir: dir, Listen: "127.0.0.1:0", EncryptionKey: newKey, PreviousEncryptionKey: key},
		{DataDir: dir, Listen: "127.0.0.1:0", EncryptionKey: newKey},
	} {
		c := startConnWith(t, cfg)
		sub, err := c.Subscribers.Get(context.Background(), "kari")
		c.Close()
		if err != nil || sub.Email != address {
			t.Fatalf("after rotating the key the subscriber reads %v, %v", sub, err)
		}
	}
	if files := filesHolding(t, dir, address); len(files) > 0 {
		t.Fatalf("the address is readable after the rotation: %v", files)
	}

	// A plain store is encrypted the first time it is opened with a key.
	c := startConnWith(t, Config{DataDir: plain, Listen: "127.0.0.1:0", EncryptionKey: key})
	sub, err := c.Subscribers.Get(context.Background(), "kari")
	c.Close()
	if err != nil || sub.Email != address {
		t.Fatalf("a plain store opened with a key reads %v, %v", sub, err)
	}
	if files := filesHolding(t, plain, address); len(files) > 0 {
		t.Fatalf("the plain store still holds the address in clear after opening it with a key: %v", files)
	}
}

// filesHolding lists the files under dir that contain s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, strings.TrimPrefix(path, dir))
		}
		return nil
	})
	return out
}

// TestBogusEventRecordDoesNotStopIntake: a record in the events bucket
// that holds no event (written by someone other than intake) neither
// crashes intake nor hides the event: it is planned and delivered.
func TestBogusEventRecordDoesNotStopIntake(t *testing.T) {
	s := startStack(t, t.TempDir(), notifier.DispatchConfig{})
	ctx := context.Background()
	addSubscribers(t, s.conn, 1, fullSubscriber)
	if _, err := s.conn.Events.kv.Put(ctx, "bogus-1", []byte(`{"stream":"VARSEL_EVENTS","seq":5}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.conn.PublishEvent(ctx, eventJSON("bogus-1", "incident.opened", "2019-09-16T11:00:00+02:00", "investigating", "major", "styreweb")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the event's email", func() bool { n, _ := s.chans[notifier.Email].total(); return n == 1 })
}
