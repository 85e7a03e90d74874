package jetstream

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// TestHotJSONMatchesEncodingJSON: what the per-delivery paths write is
// byte for byte what encoding/json writes, and what they read is the value
// encoding/json reads, so records, jobs and subscribers stored by either
// read the same, and a reader of the log (or of the queue) with plain
// encoding/json sees no difference.
func TestHotJSONMatchesEncodingJSON(t *testing.T) {
	oslo, err := time.LoadLocation("Europe/Oslo")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2019, 9, 16, 11, 0, 0, 123456789, oslo)
	utc := at.UTC().Add(90 * time.Minute)
	texts := []string{"", "plain", "<b>Tom & Jerry</b>", "line\nbreak\ttab\x01\x1f", "æøå ÆØÅ «»",
		"\u2028\u2029", "not utf-8 \xff\xfe", `quote " and back\slash`, "🚨 emoji", "smtp 550 5.1.1 <***@example.com>: user unknown"}

	t.Run("delivery records", func(t *testing.T) {
		for i, text := range texts {
			r := &notifier.DeliveryRecord{ID: "styreweb-2019-09-16-1100.s000123.email", EventID: "styreweb-2019-09-16-1100",
				EventType: notifier.IncidentOpened, SubscriberID: "s000123", Channel: notifier.Email, Status: notifier.StatusSent,
				Attempts: i, LastError: text, Reason: notifier.ReasonServer, ProviderID: "<" + text + ">", ProviderStatus: text,
				ProviderError: text, Segments: i % 3, Note: text, EventTime: at, QueuedAt: utc, UpdatedAt: at.Add(time.Duration(i) * time.Nanosecond),
				Retries: i % 2, Revision: 7}
			if i%2 == 0 {
				r.FirstAttemptAt, r.LastAttemptAt, r.SentAt = &at, &utc, &utc
			} else {
				r.NextAttemptAt = &at
				r.QueuedAt = time.Time{}
			}
			sameEncoding(t, r)
			sameDecoding(t, r, new(notifier.DeliveryRecord))
		}
	})
	t.Run("jobs", func(t *testing.T) {
		for _, j := range []notifier.Job{
			notifier.NewJob("styreweb-2019-09-16-1100", "s000123", notifier.Webhook),
			{EventID: "led-2019-03-05-0805", Channel: notifier.Email, Seen: true, Attempt: 3, Subscribers: []string{"a", "b", "æ"}},
			{},
		} {
			sameEncoding(t, j)
			sameDecoding(t, j, new(notifier.Job))
		}
	})
	t.Run("subscribers", func(t *testing.T) {
		for _, text := range texts {
			s := &notifier.Subscriber{ID: "s000123", Name: text, Email: "kari@example.com", Phone: "+4791000000",
				WebhookURL: "https://hooks.example.com/varsel?a=1&b=<2>", WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
				PreviousWebhookSecret: "whsec_old", PreviousSecretUntil: &utc, Locale: "nb-NO", Timezone: "Europe/Oslo",
				Components: []string{"styreweb", text},
				Suppressed: map[notifier.ChannelName]notifier.Suppression{notifier.SMS: {Reason: notifier.ReasonOptedOut, Detail: text, At: at}},
				Failures:   map[notifier.ChannelName]int{notifier.Webhook: 3, notifier.Email: 0},
				CreatedAt:  at, UpdatedAt: utc, PhoneUnverified: true, SMSStartEndOnly: true,
				PhoneCheck: &notifier.PhoneCheck{Digest: text, Salt: "salt", Expires: at, Attempts: 2}}
			sameEncoding(t, s)
			sameDecoding(t, s, new(notifier.Subscriber))
		}
		// As stored by hand or an older version: other cases in the
		// names, unknown fields, nulls, escapes.
		for _, doc := range []string{
			`{"ID":"x","EMAIL":"a@example.com","Webhook_URL":"https://h.example/","components":null,"suppressed":{"email":{"reason":"bounced","at":"2019-09-16T11:00:00+02:00"}},"extra":{"a":[1,2,{"b":null}]},"created_at":"2019-09-16T11:00:00+02:00"}`,
			`{"id":"\u00e6\ud83d\udea8","name":"a\u2028b\\\"","failures":{"sms":1},"phone_check":null,"previous_secret_until":null}`,
			`{}`,
		} {
			var want, got notifier.Subscriber
			if err := json.Unmarshal([]byte(doc), &want); err != nil {
				t.Fatalf("encoding/json refuses %s: %v", doc, err)
			}
			if err := decodeHot([]byte(doc), &got); err != nil {
				t.Fatalf("decodeHot refuses %s: %v", doc, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:\ndecodeHot    %+v\nencoding/json %+v", doc, got, want)
			}
		}
		// What encoding/json refuses, decodeHot refuses too, in the same
		// words, which never quote the record (segmentio's would: here a
		// webhook secret).
		for _, doc := range []string{`{"id":`, `{"id":1}`, `{"created_at":"yesterday"}`, `{"components":"styreweb"}`, `[]`, ``,
			`{"id":"s1","webhook_url":1,"webhook_secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`} {
			var a, b notifier.Subscriber
			errA, errB := json.Unmarshal([]byte(doc), &a), decodeHot([]byte(doc), &b)
			if (errA == nil) != (errB == nil) || (errA != nil && errA.Error() != errB.Error()) {
				t.Errorf("%q: encoding/json says %v, decodeHot %v", doc, errA, errB)
			}
			if errB != nil && strings.Contains(errB.Error(), "whsec_") {
				t.Errorf("%q: the error quotes the record: %v", doc, errB)
			}
		}
		// What encoding/json reads and segmentio refuses (a time in a
		// layout of its own, written by hand) is read as encoding/json
		// reads it, with nothing left of the refused attempt.
		for _, doc := range []string{`{"id":"s1","name":"Kari","created_at":"2019-09-16T11:00:00,5Z"}`} {
			var want, got notifier.Subscriber
			if err := json.Unmarshal([]byte(doc), &want); err != nil {
				t.Fatalf("encoding/json refuses %s: %v", doc, err)
			}
			got.Email = "left@over.example"
			if err := decodeHot([]byte(doc), &got); err != nil {
				t.Fatalf("decodeHot refuses %s: %v", doc, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s:\ndecodeHot     %+v\nencoding/json %+v", doc, got, want)
			}
		}
	})
}

func sameEncoding(t *testing.T, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeHot(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encodeHot wrote\n%s\nencoding/json\n%s", got, want)
	}
}

// sameDecoding decodes encoding/json's encoding of v with both into fresh
// copies of into and compares them.
func sameDecoding[T any](t *testing.T, v any, into *T) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var want T
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if err := decodeHot(b, into); err != nil {
		t.Fatalf("decodeHot %s: %v", b, err)
	}
	if !reflect.DeepEqual(*into, want) {
		t.Errorf("%s:\ndecodeHot     %+v\nencoding/json %+v", b, *into, want)
	}
}
