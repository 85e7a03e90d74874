package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPromiseRemindsTheOnCallAddress: a promise a few seconds away reaches
// the on-call address by email and the staff chat webhook, first as "due"
// and then as "overdue", once each; a holding update published through the
// API then reads right in both languages, and cancels nothing it should not.
func TestPromiseRemindsTheOnCallAddress(t *testing.T) {
	mb := startMailbox(t)
	var mu sync.Mutex
	var chat []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Text string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		chat = append(chat, body.Text)
		mu.Unlock()
	}))
	defer hook.Close()
	svc, _ := testService(t, func(c *Config) {
		c.SMTPURL = "smtp://" + mb.addr + "?tls=none"
		c.StaffEmail = "oncall@example.com"
		c.StaffWebhookURL = hook.URL
		c.RemindBefore = 2 * time.Second
	})
	now := time.Now().Truncate(time.Second)
	promise := now.Add(4 * time.Second)
	opened := fmt.Sprintf(`{"id":"gnist-open","type":"incident.opened","time":%q,"incident":{"id":"gnist-2026","title":{"en":"Gnist app outage","nb":"Driftsavbrudd i Gnist-appen"},
"status":"investigating","impact":"major","components":["gnist"],"started_at":%q,"next_update_at":%q,
"message":{"en":"The Gnist app does not load. We are looking into it.","nb":"Gnist-appen lastes ikke. Vi undersøker saken."}}}`,
		now.Format(time.RFC3339), now.Format(time.RFC3339), promise.Format(time.RFC3339))
	publishEvent(t, svc, opened)

	reminders := func() (subjects []string) {
		for _, m := range mb.all() {
			if m.Header.Get("To") != "" && strings.Contains(m.Header.Get("To"), "oncall@example.com") {
				s, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
				subjects = append(subjects, s)
			}
		}
		return subjects
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(reminders()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := reminders()
	if len(got) != 2 || !strings.HasPrefix(got[0], "Update due ") || got[1] != "Update overdue: Gnist app outage" {
		t.Fatalf("on-call reminders: %q", got)
	}
	// The overdue one comes when the promise has passed, not before.
	if time.Now().Before(promise) {
		t.Errorf("the overdue reminder came before the promised %s", promise.Format(time.RFC3339))
	}
	time.Sleep(time.Second)
	if n := len(reminders()); n != 2 {
		t.Errorf("%d reminders for one promise, want 2", n)
	}
	mu.Lock()
	if len(chat) != 2 || !strings.Contains(chat[1], "is overdue") || !strings.Contains(chat[1], "/console/incidents/gnist-2026") {
		t.Errorf("chat posts: %q", chat)
	}
	mu.Unlock()

	// A holding update through the API, as an on-call script would post it.
	base := "http://" + svc.listener.Addr().String()
	next := time.Now().Add(2 * time.Hour).Truncate(time.Minute)
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/incidents/gnist-2026/holding",
		strings.NewReader(fmt.Sprintf(`{"next_update_at":%q}`, next.Format(time.RFC3339))))
	req.Header.Set("Authorization", "Bearer test-admin-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct{ ID string }
	_ = json.NewDecoder(res.Body).Decode(&accepted)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || accepted.ID == "" {
		t.Fatalf("holding: %d %+v", res.StatusCode, accepted)
	}
	oslo, _ := time.LoadLocation("Europe/Oslo")
	nb, en := "02.01.2006 kl. 15:04", "2 Jan 2006, 15:04 MST"
	for lang, want := range map[string][]string{
		"nb": {"Statusen fra " + now.In(oslo).Format(nb) + " gjelder fortsatt.", "Neste oppdatering kommer senest " + next.In(oslo).Format(nb) + "."},
		"en": {"The update from " + now.In(oslo).Format(en) + " still applies.", "Next update by " + next.In(oslo).Format(en) + "."},
	} {
		var page string
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			res, err := http.Get(base + "/incidents/gnist-2026?lang=" + lang)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if page = string(b); strings.Contains(page, want[0]) {
				break
			}
		}
		for _, w := range want {
			if !strings.Contains(page, w) {
				t.Errorf("%s page lacks %q:\n%s", lang, w, page)
			}
		}
		if lang == "nb" && (strings.Contains(page, "still applies") || strings.Contains(page, "Next update")) {
			t.Errorf("the Norwegian page has English phrases")
		}
	}
	rec, err := svc.conn.Events.Get(context.Background(), accepted.ID)
	if err != nil || rec.PublishedBy != "admin API" {
		t.Errorf("holding update's audit trail: %v %+v", err, rec)
	}
}
