package render

import (
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// renderAll renders ev for sub on every channel and returns what a reader
// sees: subject, text and HTML email, SMS and webhook text, keyed by channel.
func renderAll(t *testing.T, r *Renderer, ev *notifier.Event, st *notifier.IncidentState, sub *notifier.Subscriber) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ch := range notifier.ChannelNames {
		m, err := r.Render(ev, st, sub, ch)
		if err != nil {
			t.Fatal(err)
		}
		switch ch {
		case notifier.Email:
			out["subject"] = m.Subject
			out["text"] = m.Text
			out["html"] = m.HTML
		case notifier.SMS:
			out["sms"] = m.SMS
		case notifier.Webhook:
			out["webhook"] = m.WebhookText
		}
	}
	return out
}

// resolvedWithCriticalImpact is an incident that was down, resolved by an
// event whose impact field was left at critical.
func resolvedWithCriticalImpact() (*notifier.Event, *notifier.IncidentState) {
	events := everyType()
	opened, resolved := events[0], events[2]
	opened.Incident.Impact = notifier.ImpactCritical
	resolved.Incident.Impact = notifier.ImpactCritical
	st := &notifier.IncidentState{}
	st.Apply(opened)
	st.Apply(resolved)
	return resolved, st
}

func TestResolvedStatesNoCurrentImpact(t *testing.T) {
	r := newTestRenderer(t, Config{})
	ev, st := resolvedWithCriticalImpact()
	current := map[string][]string{
		"en": {"Service down", "service down", "Impact:", "Major disruption"},
		"nb": {"Tjenesten er nede", "tjenesten er nede", "Omfang:", "Store forstyrrelser"},
	}
	was := map[string]string{"en": "Worst impact: Service was down", "nb": "Største omfang: Tjenesten var nede"}
	for _, sub := range testSubscribers("") {
		locale := ResolveLocale(sub.Locale, "en")
		got := renderAll(t, r, ev, st, sub)
		for part, text := range got {
			for _, bad := range current[locale] {
				if strings.Contains(text, bad) {
					t.Errorf("%s %s of a resolved incident states a current impact %q:\n%s", locale, part, bad, text)
				}
			}
		}
		if !strings.Contains(got["text"], was[locale]) {
			t.Errorf("%s: resolved email does not say what the impact was (%q):\n%s", locale, was[locale], got["text"])
		}
		if !strings.Contains(got["text"], map[string]string{"en": "resolved 2 May 2024, 11:00 CEST", "nb": "løst 02.05.2024 kl. 11:00"}[locale]) {
			t.Errorf("%s: resolved email does not say when it was resolved:\n%s", locale, got["text"])
		}
	}
}

func TestDataStatementFollowsItsState(t *testing.T) {
	r := newTestRenderer(t, Config{})
	backup := time.Date(2024, 5, 1, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		risk  notifier.Risk
		state notifier.RestoreState
		want  map[string][]string
		never map[string][]string
	}{
		{notifier.RiskLow, notifier.RestorePlanned,
			map[string][]string{"en": {"assessed the risk to your data as low", "We plan to restore data from the backup of 1 May 2024, 05:00 CEST"},
				"nb": {"vurdert risikoen for dataene dine som lav", "Vi planlegger å gjenopprette dataene fra sikkerhetskopien fra 01.05.2024 kl. 05:00"}},
			map[string][]string{"en": {"has not been at risk", "has been restored", "We are restoring"}, "nb": {"har ikke vært i fare", "er gjenopprettet", "gjenoppretter nå"}}},
		{notifier.RiskUnknown, notifier.RestoreInProgress,
			map[string][]string{"en": {"do not know yet whether your data has been affected", "We are restoring data from the backup of"},
				"nb": {"vet ennå ikke om dataene dine er berørt", "Vi gjenoppretter nå dataene fra sikkerhetskopien fra"}},
			map[string][]string{"en": {"has been restored", "plan to"}, "nb": {"er gjenopprettet", "planlegger"}}},
		{notifier.RiskNone, notifier.RestoreDone,
			// Not "never at risk": recent entries may be gone.
			map[string][]string{"en": {"Your data has not been exposed to anyone.", "Data has been restored from the backup of"},
				"nb": {"Dataene dine har ikke kommet på avveie.", "Dataene er gjenopprettet fra sikkerhetskopien fra"}},
			map[string][]string{"en": {"We are restoring", "plan to", "has not been at risk"}, "nb": {"gjenoppretter nå", "planlegger", "har ikke vært i fare"}}},
		{notifier.RiskNone, "",
			map[string][]string{"en": {"Your data has not been at risk."}, "nb": {"Dataene dine har ikke vært i fare."}},
			map[string][]string{"en": {"backup", "exposed"}, "nb": {"sikkerhetskopi", "avveie"}}},
		{notifier.RiskConfirmed, "",
			map[string][]string{"en": {"confirmed that data was exposed or lost"}, "nb": {"bekreftet at data har kommet på avveie eller gått tapt"}},
			map[string][]string{"en": {"backup"}, "nb": {"backup"}}},
	}
	for _, tt := range tests {
		t.Run(string(tt.risk)+"/"+string(tt.state), func(t *testing.T) {
			ev := everyType()[1]
			ev.ID = "data-" + string(tt.risk) + string(tt.state)
			ev.Incident.Data = &notifier.DataSafety{Risk: tt.risk}
			if tt.state != "" {
				ev.Incident.Data.Restore = &notifier.Restore{FromBackupAt: backup, State: tt.state}
			}
			for _, sub := range testSubscribers("") {
				locale := ResolveLocale(sub.Locale, "en")
				got := renderAll(t, r, ev, nil, sub)
				for _, part := range []string{"text", "html", "webhook"} {
					for _, w := range tt.want[locale] {
						if !strings.Contains(got[part], w) {
							t.Errorf("%s %s lacks %q:\n%s", locale, part, w, got[part])
						}
					}
					for _, w := range tt.never[locale] {
						if strings.Contains(got[part], w) {
							t.Errorf("%s %s says %q, which its data does not:\n%s", locale, part, w, got[part])
						}
					}
				}
			}
		})
	}
}

// TestOneClockPerReader: a reader in New York sees every time in New York
// time with the zone named, in both languages, and no Oslo time.
func TestOneClockPerReader(t *testing.T) {
	r := newTestRenderer(t, Config{})
	events, states := loadScenario(t, "styreweb")
	for _, id := range []string{"styreweb-2019-09-17-1000", "styreweb-2019-09-17-1600", "styreweb-2019-09-18-0740"} {
		for _, sub := range testSubscribers("America/New_York") {
			ny := *sub
			ny.Timezone = "America/New_York"
			got := renderAll(t, r, events[id], states[id], &ny)
			for part, text := range got {
				if part == "html" {
					continue // the same text, marked up
				}
				if strings.Contains(text, "CEST") || strings.Contains(text, "12:00") && id == "styreweb-2019-09-17-1000" {
					t.Errorf("%s %s %s shows an Oslo time:\n%s", id, ny.Locale, part, text)
				}
				// The SMS of 07:40 has no time to name: no promise, no room.
				if part != "subject" && !(part == "sms" && id == "styreweb-2019-09-18-0740") && !strings.Contains(text, "EDT") {
					t.Errorf("%s %s %s names no New York time:\n%s", id, ny.Locale, part, text)
				}
			}
		}
	}
	// A Norwegian reader in the default zone needs no zone name.
	got := renderAll(t, r, events["styreweb-2019-09-17-1000"], states["styreweb-2019-09-17-1000"], testSubscribers("")[0])
	if !strings.Contains(got["text"], "Neste oppdatering kommer senest 17.09.2019 kl. 12:00 (om 2 timer).") {
		t.Errorf("Oslo reader:\n%s", got["text"])
	}
}

func TestHoldingUpdateInBothLanguages(t *testing.T) {
	r := newTestRenderer(t, Config{})
	events, states := loadScenario(t, "styreweb")
	id := "styreweb-2019-09-17-2000"
	want := map[string]string{
		"en": "The update from 14:00 CEST still applies.\n\nWe can see that the work will have to go on through the night.\n\nNext update by 18 Sep 2019, 08:00 CEST (in 12 hours).",
		"nb": "Statusen fra kl. 14:00 gjelder fortsatt.\n\nVi ser at arbeidet vil måtte pågå gjennom natten.\n\nNeste oppdatering kommer senest 18.09.2019 kl. 08:00 (om 12 timer).",
	}
	for _, sub := range testSubscribers("") {
		locale := ResolveLocale(sub.Locale, "en")
		got := renderAll(t, r, events[id], states[id], sub)
		if !strings.Contains(got["text"], want[locale]) {
			t.Errorf("%s:\n%s\nwant in it:\n%s", locale, got["text"], want[locale])
		}
	}
}

func TestMaintenanceSaysExpectedAndCompleted(t *testing.T) {
	r := newTestRenderer(t, Config{})
	events, states := loadScenario(t, "maintenance")
	for _, sub := range testSubscribers("") {
		locale := ResolveLocale(sub.Locale, "en")
		sched := renderAll(t, r, events["styreweb-db-2019-10-01-1000-scheduled"], states["styreweb-db-2019-10-01-1000-scheduled"], sub)
		if w := map[string]string{"en": "Expected impact: Minor disruption", "nb": "Forventet omfang: Mindre forstyrrelser"}[locale]; !strings.Contains(sched["text"], w) {
			t.Errorf("%s: planned maintenance does not call its impact expected:\n%s", locale, sched["text"])
		}
		done := renderAll(t, r, events["styreweb-db-2019-10-09-0120-completed"], states["styreweb-db-2019-10-09-0120-completed"], sub)
		for part, text := range done {
			if strings.Contains(text, map[string]string{"en": "esolved", "nb": "Løst"}[locale]) || strings.Contains(text, map[string]string{"en": "Impact:", "nb": "Omfang:"}[locale]) {
				t.Errorf("%s %s of completed maintenance says resolved or an impact:\n%s", locale, part, text)
			}
		}
		if w := map[string]string{"en": "Completed 9 Oct 2019, 01:20 CEST", "nb": "Fullført 09.10.2019 kl. 01:20"}[locale]; !strings.Contains(done["text"], w) {
			t.Errorf("%s: completed maintenance does not say when (%q):\n%s", locale, w, done["text"])
		}
	}
}

func TestPostmortemIsLabelled(t *testing.T) {
	r := newTestRenderer(t, Config{})
	events, states := loadScenario(t, "led")
	id := "led-2019-03-06-2215-postmortem"
	for _, sub := range testSubscribers("Europe/London") {
		locale := ResolveLocale(sub.Locale, "en")
		got := renderAll(t, r, events[id], states[id], sub)
		if w := map[string]string{"en": ": postmortem.", "nb": ": rapport etter hendelsen."}[locale]; !strings.Contains(got["webhook"], w) {
			t.Errorf("%s: webhook text of a postmortem %q lacks %q", locale, got["webhook"], w)
		}
		// The postmortem came at 22:15; the incident was resolved at 20:45.
		if w := map[string]string{"en": "resolved 6 Mar 2019, 20:45 GMT", "nb": "løst 06.03.2019 kl. 21:45"}[locale]; !strings.Contains(got["text"], w) {
			t.Errorf("%s: postmortem does not give the resolution's time %q:\n%s", locale, w, got["text"])
		}
	}
}
