package render

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// noticeWebhook carries a token in its path and query, as real ones do; the
// notice must show only its scheme and host.
const noticeWebhook = "https://hooks.example.com/in/T0K3N-path?key=s3cr3t-query"

// noticeSubscribers are a Norwegian webhook owner in Oslo and an English one
// in London, both with the webhook switched off after five failures.
func noticeSubscribers() []*notifier.Subscriber {
	subs := testSubscribers("Europe/London")
	for _, s := range subs {
		s.WebhookURL = noticeWebhook
		s.WebhookSecret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
		s.Failures = map[notifier.ChannelName]int{notifier.Webhook: 5}
	}
	return subs
}

// noticeAt is 10:00 in Oslo, 09:00 in London.
var noticeAt = time.Date(2019, 9, 17, 8, 0, 0, 0, time.UTC)

func TestWebhookDisabledNotice(t *testing.T) {
	tokens, err := notifier.NewTokens([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRenderer(t, Config{PublicURL: "https://status.example.com"})
	foreign, err := r.foreignPhrases()
	if err != nil {
		t.Fatal(err)
	}
	// The dispatcher's detail quotes the last error, which may hold the URL.
	detail := "7 failed deliveries in a row; last: post " + noticeWebhook + ": connection refused"
	tests := []struct {
		name string
		why  notifier.Suppression
		want map[string]string // locale → the reason sentence
	}{
		{
			name: "gone", why: notifier.Suppression{Reason: notifier.ReasonGone, Detail: "webhook " + noticeWebhook + " answered 410 Gone", At: noticeAt},
			want: map[string]string{
				"en": "Reason: The endpoint answered 410 Gone, which means it no longer exists.",
				"nb": "Årsak: Endepunktet svarte med HTTP-status 410, som betyr at det ikke finnes lenger.",
			},
		},
		{
			name: "failures counted in the detail", why: notifier.Suppression{Reason: notifier.ReasonDisabled, Detail: detail, At: noticeAt},
			want: map[string]string{
				"en": "Reason: Delivery failed 7 times in a row.",
				"nb": "Årsak: Leveringen feilet 7 ganger på rad.",
			},
		},
		{
			name: "failures counted on the subscriber", why: notifier.Suppression{Reason: notifier.ReasonDisabled, Detail: "too many failures", At: noticeAt},
			want: map[string]string{
				"en": "Reason: Delivery failed 5 times in a row.",
				"nb": "Årsak: Leveringen feilet 5 ganger på rad.",
			},
		},
		{
			name: "other reason", why: notifier.Suppression{Reason: notifier.ReasonRejected, Detail: "403 from " + noticeWebhook, At: noticeAt},
			want: map[string]string{
				"en": "Reason: The endpoint did not accept our deliveries.",
				"nb": "Årsak: Endepunktet tok ikke imot meldingene våre.",
			},
		},
	}
	when := map[string]string{"en": "Stopped: 17 Sep 2019, 09:00 BST", "nb": "Stanset: 17.09.2019 kl. 10:00"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sub := range noticeSubscribers() {
				locale := ResolveLocale(sub.Locale, "en")
				m, err := r.WebhookDisabledNotice(sub, tt.why)
				if err != nil {
					t.Fatalf("%s: %v", locale, err)
				}
				if m.Locale != locale || m.Subject == "" || m.Text == "" || m.HTML == "" {
					t.Errorf("%s: Locale %q, Subject %q, %d bytes of text, %d of HTML", locale, m.Locale, m.Subject, len(m.Text), len(m.HTML))
				}
				if m.StatusURL != "https://status.example.com/" {
					t.Errorf("%s: StatusURL %q", locale, m.StatusURL)
				}
				claims, err := tokens.Verify(strings.TrimPrefix(m.UnsubscribeURL, "https://status.example.com/unsubscribe/"))
				if err != nil || claims.SubscriberID != sub.ID || claims.Channel != notifier.Email || claims.Purpose != notifier.PurposeUnsubscribe {
					t.Errorf("%s: unsubscribe link %q: claims %+v, %v", locale, m.UnsubscribeURL, claims, err)
				}
				for _, want := range []string{tt.want[locale], when[locale], "https://hooks.example.com/…", sub.ID, m.StatusURL, m.UnsubscribeURL} {
					if !strings.Contains(m.Text, want) {
						t.Errorf("%s text lacks %q:\n%s", locale, want, m.Text)
					}
				}
				reason := tt.want[locale][strings.Index(tt.want[locale], ": ")+2:]
				for _, want := range []string{reason, "https://hooks.example.com/…", m.UnsubscribeURL} {
					if !strings.Contains(m.HTML, want) {
						t.Errorf("%s HTML lacks %q", locale, want)
					}
				}
				all := m.Subject + m.Text + m.HTML
				for _, secret := range []string{"/in/", "T0K3N", "key=", "s3cr3t", "connection refused", sub.WebhookSecret} {
					if strings.Contains(all, secret) {
						t.Errorf("%s notice shows %q of the webhook URL or the detail", locale, secret)
					}
				}
				text := fixedText(m)
				for _, ph := range foreign[locale] {
					if ph.re.MatchString(text) {
						t.Errorf("%s notice contains the %s phrase %q", locale, languageLabel(otherLocale(locale)), ph.text)
					}
				}
			}
		})
	}
}

func TestWebhookDisabledNoticeWithoutCountOrTime(t *testing.T) {
	r := newTestRenderer(t, Config{})
	sub := &notifier.Subscriber{ID: "ola", Locale: "nb", WebhookURL: noticeWebhook}
	m, err := r.WebhookDisabledNotice(sub, notifier.Suppression{Reason: notifier.ReasonDisabled})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "Årsak: Leveringen feilet mange ganger på rad.") {
		t.Errorf("no generic failure sentence:\n%s", m.Text)
	}
	if strings.Contains(m.Text, "Stanset") || strings.Contains(m.HTML, "Stanset") {
		t.Errorf("a stop time is shown although none is known:\n%s", m.Text)
	}
	if !strings.HasPrefix(m.Text, "Hei,\n\n") {
		t.Errorf("the greeting without a name is not the plain one:\n%s", m.Text)
	}
	if _, err := r.WebhookDisabledNotice(nil, notifier.Suppression{}); err == nil {
		t.Error("a nil subscriber gave no error")
	}
}

func TestWebhookDisabledNoticeGolden(t *testing.T) {
	r := newTestRenderer(t, Config{})
	why := notifier.Suppression{Reason: notifier.ReasonDisabled, At: noticeAt,
		Detail: "5 failed deliveries in a row; last: post " + noticeWebhook + ": 503 Service Unavailable"}
	for _, sub := range noticeSubscribers() {
		m, err := r.WebhookDisabledNotice(sub, why)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join("testdata", "golden", "notice-webhook-disabled")
		checkGolden(t, filepath.Join(dir, m.Locale+".email.txt"), "Subject: "+m.Subject+"\n\n"+m.Text)
		checkGolden(t, filepath.Join(dir, m.Locale+".email.html"), m.HTML)
	}
}

// TestCheckCoversWebhookNotice: a fault in the notice templates is reported
// by Check, with the notice's id and the file and line.
func TestCheckCoversWebhookNotice(t *testing.T) {
	tests := []struct {
		name, text, want string
		line             int
	}{
		{
			name: "English phrase in Norwegian",
			text: `{{define "subject.notice.webhook_disabled"}}{{t "SubjectWebhookDisabled"}}{{end}}
{{- define "email.txt.notice.webhook_disabled"}}{{.Reason}}
Call us for an update. {{.StatusURL}}{{end}}`,
			want: `English phrase "update"`, line: 3,
		},
		{
			name: "missing template",
			text: `{{define "subject.notice.webhook_disabled"}}{{t "SubjectWebhookDisabled"}}{{end}}`,
			want: "email.txt.notice.webhook_disabled",
		},
		{
			name: "missing message id",
			text: `{{define "subject.notice.webhook_disabled"}}
{{t "NoSuchMessage"}}{{end}}`,
			want: `"NoSuchMessage"`, line: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRenderer(t, Config{TemplatesDir: writeOverride(t, "notice.tmpl", tt.text)})
			problems := r.Check(nil)
			for _, p := range problems {
				if strings.HasPrefix(p.EventID, "notice.webhook_disabled/") && strings.Contains(p.Message, tt.want) &&
					strings.HasSuffix(p.File, "notice.tmpl") && p.Line == tt.line {
					return
				}
			}
			t.Errorf("no notice problem in notice.tmpl line %d mentioning %s; got:\n%v", tt.line, tt.want, problems)
		})
	}
}
