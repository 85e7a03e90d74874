package jetstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestLastMsgsTakesOnlyCompleteAnswers answers direct gets from a stand-in
// and checks that a read is complete only when the server says so: an end
// of batch with nothing left out, or "none" before any answer. An answer
// cut short, a failure after answers and no responder are errors, so the
// caller reads one by one instead of taking the missing ones as removed.
func TestLastMsgsTakesOnlyCompleteAnswers(t *testing.T) {
	c := startConn(t, t.TempDir())
	status := func(code string, pending string) *nats.Msg {
		m := nats.NewMsg("")
		m.Header.Set("Status", code)
		if pending != "" {
			m.Header.Set(numPendingHeader, pending)
		}
		return m
	}
	answer := func(subj string) *nats.Msg {
		m := nats.NewMsg("")
		m.Header.Set(nats.JSSubject, subj)
		m.Data = []byte(`{"id":"x"}`)
		return m
	}
	cases := []struct {
		name    string
		replies []*nats.Msg
		want    int    // answers, when no error
		err     string // part of the error, "" for none
	}{
		{"complete", []*nats.Msg{answer("$KV.b.a"), answer("$KV.b.c"), status("204", "0")}, 2, ""},
		{"none exists", []*nats.Msg{status("404", "")}, 0, ""},
		{"cut short", []*nats.Msg{answer("$KV.b.a"), status("204", "1")}, 0, "left out"},
		{"failed after answers", []*nats.Msg{answer("$KV.b.a"), status("404", "")}, 0, "404"},
		{"refused", []*nats.Msg{status("400", "")}, 0, "400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := "FAKE_" + strings.ReplaceAll(tc.name, " ", "_")
			sub, err := c.NC.Subscribe(directGetPrefix+stream, func(req *nats.Msg) {
				for _, m := range tc.replies {
					m.Subject = req.Reply
					_ = c.NC.PublishMsg(m)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			_ = c.NC.Flush()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			got, err := c.Subscribers.last.get(ctx, stream, []string{"$KV.b.a", "$KV.b.c"})
			switch {
			case tc.err == "" && (err != nil || len(got) != tc.want):
				t.Errorf("got %d answers, %v; want %d", len(got), err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("got %d answers, %v; want an error with %q", len(got), err, tc.err)
			}
		})
	}
	t.Run("no responder", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := c.Subscribers.last.get(ctx, "NO_SUCH_STREAM", []string{"$KV.b.a"}); err == nil {
			t.Error("a direct get nobody answers gave no error")
		} else if time.Since(start) > 2*time.Second {
			t.Errorf("no responder took %v to tell (%v): it should be at once", time.Since(start), err)
		}
	})
}
