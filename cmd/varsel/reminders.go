package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
)

// staffTargets are where reminders of promised updates go: every address
// of VARSEL_STAFF_EMAIL, by email in the language of the staff account with
// that address (else the default), and VARSEL_STAFF_WEBHOOK_URL.
func (s *service) staffTargets() []jetstream.ReminderTarget {
	var targets []jetstream.ReminderTarget
	for _, to := range s.cfg.staffEmails() {
		targets = append(targets, jetstream.ReminderTarget{Name: "email:" + notifier.MaskEmail(to),
			Send: func(ctx context.Context, rem notifier.Reminder, st *notifier.IncidentState) error {
				locale := s.cfg.DefaultLocale
				if a, err := s.conn.Staff.Get(ctx, to); err == nil {
					locale = a.Locale
				}
				m, err := s.renderer.StaffReminder(rem, st, locale, time.Now())
				if err != nil {
					return err
				}
				return s.sendOneOff(ctx, "reminder", "staff-reminder", to, m)
			}})
	}
	if url := s.cfg.StaffWebhookURL; url != "" {
		client := &http.Client{Timeout: 10 * time.Second}
		targets = append(targets, jetstream.ReminderTarget{Name: "staff webhook",
			Send: func(ctx context.Context, rem notifier.Reminder, st *notifier.IncidentState) error {
				m, err := s.renderer.StaffReminder(rem, st, s.cfg.DefaultLocale, time.Now())
				if err != nil {
					return err
				}
				return postChat(ctx, client, url, m.WebhookText)
			}})
	}
	return targets
}

// postChat posts text to a chat webhook the way Slack, Mattermost and
// Teams' incoming webhooks take it: {"text": "..."}.
func postChat(ctx context.Context, client *http.Client, url, text string) error {
	body, _ := json.Marshal(map[string]string{"text": text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post to the staff webhook: %w", err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return errors.New("the staff webhook answered " + res.Status)
	}
	return nil
}
