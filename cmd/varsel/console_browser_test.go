package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "copy the console screenshots into docs/console/")

// screenshotDir keeps the browser test's screenshots as artifacts.
const screenshotDir = "../../test-artifacts/console"

// chromium finds Debian's chromium (or another Chrome). CI installs it
// (.ci/run); without it the test fails in CI and is skipped elsewhere with
// the command that installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH: .ci/run installs it with apt-get install -y chromium")
	}
	t.Skip("no chromium on PATH: install it (apt-get install -y chromium) to run the console in a browser")
	return ""
}

// browser is one staff member's browser tab.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// newBrowser opens a tab; opts such as chromedp.WithNewBrowserContext give
// it a cookie jar of its own.
func newBrowser(t *testing.T, parent context.Context, base, acceptLanguage string, opts ...chromedp.ContextOption) *browser {
	ctx, cancel := chromedp.NewContext(parent, opts...)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, base: base}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": acceptLanguage}}); err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs actions with a deadline and fails the test with what was tried.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

// fail stops the test with where the browser was and what it showed.
func (b *browser) fail(what string, err error) {
	b.t.Helper()
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	body, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
	b.t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
}

// value runs one action that returns a value.
func value[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return value(b, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// inDocs are the screenshots docs/console.md shows.
var inDocs = map[string]bool{"05-dashboard-nb": true, "02-new-incident-nb": true, "03-preview-nb": true, "04-progress-nb": true,
	"03-preview-en": true, "05-letter-en": true}

// shoot keeps a full-page screenshot under test-artifacts/console/ and,
// with -update-screenshots, the ones docs/console.md shows in docs/console/.
func (b *browser) shoot(name string) {
	b.t.Helper()
	png := value(b, "screenshot "+name, chromedp.FullScreenshot(100))
	dirs := []string{screenshotDir}
	if *updateScreenshots && inDocs[name] {
		dirs = append(dirs, "../../docs/console")
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// signIn fills the sign-in form as a person does, key by key.
func (b *browser) signIn(email, password string) {
	b.t.Helper()
	b.run("sign in as "+email,
		chromedp.Navigate(b.base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#open`)))
}

// fill sets form fields by name; a select gets its option's value.
func (b *browser) fill(fields map[string]string) {
	b.t.Helper()
	var actions []chromedp.Action[chromedp.Void]
	for name, value := range fields {
		actions = append(actions, chromedp.SetValue(chromedp.CSS(`[name="`+name+`"]`), value))
	}
	b.run("fill the form", actions...)
}

// waitDone waits on the progress page until its script says the broadcast
// is done, and returns the total sent.
func (b *browser) waitDone(what string) string {
	b.t.Helper()
	b.run(what+": wait for the progress view to finish",
		chromedp.WaitVisible(chromedp.CSS(`#progress`)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.getElementById("progress-state").textContent === document.getElementById("progress").dataset.done`,
				chromedp.WithPollingTimeout(15*time.Second))(ctx, t)
			return err
		}))
	return b.text(`[data-count="total.sent"]`)
}

// TestConsoleInABrowser drives the console in headless Chromium as two
// staff members would: Kari (nb) opens an incident in both languages,
// previews it, publishes it, follows its progress, updates it, posts a
// holding update in one click and drafts the letter; James (en) resolves
// it and sends the letter after a test to himself. Screenshots of every
// step in both languages are kept in test-artifacts/console/.
func TestConsoleInABrowser(t *testing.T) {
	path := chromium(t)
	svc, dir := testService(t, nil)
	nats := svc.conn.ClientURL()
	if out, err := varsel(t, "subscribers", "import", "../../examples/subscribers.csv", "--nats", nats, "--allow-private-webhooks"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, a := range [][]string{{"kari@example.com", "Kari Nordmann", "nb", "kari sitt lange passord"}, {"james@example.com", "James Smith", "en", "james has a long password"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"staff", "add", "--email", a[0], "--name", a[1], "--locale", a[2], "--password-stdin", "--nats", nats},
			strings.NewReader(a[3]+"\n"), &out, &errOut); err != nil {
			t.Fatalf("staff add %s: %v\n%s%s", a[0], err, out.String(), errOut.String())
		}
	}
	base := "http://" + svc.listener.Addr().String()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()

	// Kari, in Norwegian.
	kari := newBrowser(t, alloc, base, "nb-NO,nb;q=0.9,en;q=0.5")
	start := time.Now()
	kari.run("the sign-in page", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)))
	lang := value(kari, "read the page language", chromedp.Evaluate[string](`document.documentElement.lang`))
	if lang != "nb" {
		t.Errorf("sign-in page for a Norwegian browser has lang=%q", lang)
	}
	kari.shoot("01-login-nb")
	kari.signIn("kari@example.com", "kari sitt lange passord")
	cookies, err := chromedp.Call(kari.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "varsel_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteLax || session.Secure {
		t.Errorf("session cookie on http: %+v (want HttpOnly, SameSite=Lax, not Secure)", session)
	}
	if h := kari.text("#open"); h != "Åpne hendelser og vedlikehold" && !strings.Contains(h, "Åpne") {
		t.Errorf("dashboard heading %q is not Norwegian", h)
	}

	// Open an incident in both languages, side by side.
	kari.run("new incident", chromedp.Navigate(base+"/console/incidents/new"), chromedp.WaitVisible(chromedp.CSS(`textarea[name="message_nb"]`)))
	kari.fill(map[string]string{
		"incident_id": "styreweb-login-2026-12",
		"title_nb":    "Problemer med innlogging i StyreWeb",
		"title_en":    "Login problems in StyreWeb",
		"message_nb":  "Vi har problemer med innlogging i StyreWeb. Vi jobber med å finne årsaken.",
		"message_en":  "Signing in to StyreWeb fails. We are working to find the cause.",
		"contact_nb":  "Spørsmål kan sendes til kundeservice.",
		"contact_en":  "Questions can be sent to customer service.",
		"status":      "investigating", "impact": "major", "components": "styreweb", "risk": "unknown",
	})
	kari.shoot("02-new-incident-nb")
	kari.run("preview", chromedp.Click(chromedp.CSS(`form.incident button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`section.preview`)))
	preview := kari.text("section.preview")
	for _, want := range []string{"Problemer med innlogging i StyreWeb", "Login problems in StyreWeb", "Neste oppdatering kommer senest", "Next update by"} {
		if !strings.Contains(preview, want) {
			t.Errorf("preview lacks %q:\n%s", want, preview)
		}
	}
	kari.shoot("03-preview-nb")
	// A change to the form after the preview disables the preview's
	// publish button, which would send the text before the change.
	kari.run("edit after the preview", chromedp.SendKeys(chromedp.CSS(`[name="contact_nb"]`), " Ring oss gjerne."))
	if disabled := value(kari, "read the publish button", chromedp.Evaluate[bool](`document.querySelector('form.publish button[type=submit]').disabled`)); !disabled {
		t.Errorf("after the form changed, the publish button still sends the preview before the change")
	}
	if note := kari.text("form.publish p.warning"); !strings.Contains(note, "forhåndsvis på nytt") {
		t.Errorf("no note that the preview is out of date: %q", note)
	}
	kari.run("preview again", chromedp.Click(chromedp.CSS(`form.incident button[type="submit"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`form.publish button[disabled]`)), chromedp.WaitVisible(chromedp.CSS(`section.preview`)))
	if preview := kari.text("section.preview"); !strings.Contains(preview, "Ring oss gjerne.") {
		t.Errorf("the new preview lacks the change:\n%s", preview)
	}
	kari.run("publish", chromedp.Click(chromedp.CSS(`form.publish button[type="submit"]`)))
	sent := kari.waitDone("the opening")
	signInToSent := time.Since(start)
	kari.shoot("04-progress-nb")
	if sent == "0" {
		t.Errorf("the opening reached nobody")
	}
	emails, _ := os.ReadDir(filepath.Join(dir, "outbox", "email"))
	t.Logf("sign-in to sent, as the browser does it: %s (%s deliveries sent; outbox holds %d events)", signInToSent.Round(time.Millisecond), sent, len(emails))

	// An update: the form holds the incident as it stands.
	kari.run("update", chromedp.Navigate(base+"/console/incidents/styreweb-login-2026-12"), chromedp.WaitVisible(chromedp.CSS(`textarea[name="message_nb"]`)))
	title := value(kari, "read the title", chromedp.Value(chromedp.CSS(`[name="title_nb"]`)))
	if title != "Problemer med innlogging i StyreWeb" {
		t.Errorf("the update form does not hold the incident's title: %q", title)
	}
	kari.fill(map[string]string{
		"status":     "identified",
		"message_nb": "Vi har funnet årsaken: en database er utilgjengelig. Vi gjenoppretter den fra sikkerhetskopi.",
		"message_en": "We have found the cause: a database is unavailable. We are restoring it from a backup.",
		"risk":       "low", "restore_state": "planned", "restore_from": time.Now().Add(-24 * time.Hour).Format("2006-01-02T15:04"),
	})
	kari.run("preview the update", chromedp.Click(chromedp.CSS(`form.incident button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`section.preview`)))
	if p := kari.text("section.preview"); !strings.Contains(p, "Vi planlegger å gjenopprette") || !strings.Contains(p, "We plan to restore") {
		t.Errorf("the update's preview does not say the restore is planned:\n%s", p)
	}
	kari.run("publish the update", chromedp.Click(chromedp.CSS(`form.publish button[type="submit"]`)))
	kari.waitDone("the update")

	// A holding update in one click from the dashboard.
	kari.run("dashboard", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`#open`)))
	kari.shoot("05-dashboard-nb")
	kari.run("holding update", chromedp.Click(chromedp.CSS(`form[action$="/holding"] button[type="submit"]`)))
	kari.waitDone("the holding update")
	kari.run("the incident's timeline", chromedp.Navigate(base+"/console/incidents/styreweb-login-2026-12"), chromedp.WaitVisible(chromedp.CSS(`#timeline`)))
	timeline := kari.text(".timeline")
	if !strings.Contains(timeline, "gjelder fortsatt") || !strings.Contains(timeline, "Kari Nordmann") {
		t.Errorf("the timeline lacks the holding update or who published it:\n%s", timeline)
	}
	kari.shoot("06-incident-nb")

	// Kari drafts the letter in Norwegian.
	fillLetter(kari)
	kari.run("preview the letter", chromedp.Click(chromedp.CSS(`button[name="action"][value="preview"]`)), chromedp.WaitVisible(chromedp.CSS(`section.preview`)))
	kari.shoot("07-letter-nb")
	kari.run("sign out", chromedp.Click(chromedp.CSS(`form[action="/console/logout"] button`)), chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)))

	// James, in English, resolves the incident.
	james := newBrowser(t, kari.ctx, base, "en-GB,en;q=0.9", chromedp.WithNewBrowserContext())
	james.signIn("james@example.com", "james has a long password")
	james.shoot("01-dashboard-en")
	james.run("resolve", chromedp.Navigate(base+"/console/incidents/styreweb-login-2026-12?type=incident.resolved"), chromedp.WaitVisible(chromedp.CSS(`textarea[name="message_en"]`)))
	james.fill(map[string]string{
		"message_nb":    "Innlogging i StyreWeb virker igjen. Dataene er gjenopprettet fra sikkerhetskopien.",
		"message_en":    "Signing in to StyreWeb works again. The data has been restored from the backup.",
		"restore_state": "done",
	})
	james.shoot("02-resolve-en")
	james.run("preview the resolution", chromedp.Click(chromedp.CSS(`form.incident button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`section.preview`)))
	if p := james.text("section.preview"); !strings.Contains(p, "Resolved") || !strings.Contains(p, "Løst") || !strings.Contains(p, "Worst impact") {
		t.Errorf("the resolution's preview:\n%s", p)
	}
	james.shoot("03-preview-en")
	james.run("publish the resolution", chromedp.Click(chromedp.CSS(`form.publish button[type="submit"]`)))
	james.waitDone("the resolution")
	james.shoot("04-progress-en")

	// James sends the letter: a test to himself first, then to everyone.
	fillLetter(james)
	james.run("test the letter", chromedp.Click(chromedp.CSS(`button[name="action"][value="test"]`)), chromedp.WaitVisible(chromedp.CSS(`section.preview`)))
	if body := james.text("main"); !strings.Contains(body, "james@example.com") {
		t.Errorf("the test send does not say where it went:\n%s", body)
	}
	james.shoot("05-letter-en")
	james.run("send the letter", chromedp.Click(chromedp.CSS(`input[name="confirm_send"]`)),
		chromedp.Click(chromedp.CSS(`form.publish button[type="submit"]`)))
	letterSent := james.waitDone("the letter")
	james.shoot("06-letter-progress-en")
	if letterSent == "0" {
		t.Errorf("the letter reached nobody")
	}
	t.Logf("screenshots in %s", screenshotDir)
}

// fillLetter writes the letter after the incident in both languages.
func fillLetter(b *browser) {
	b.t.Helper()
	b.run("new letter", chromedp.Navigate(b.base+"/console/letters/new?incident=styreweb-login-2026-12"), chromedp.WaitVisible(chromedp.CSS(`textarea[name="what_happened_nb"]`)))
	b.fill(map[string]string{
		"subject_nb":       "Om driftsavbruddet i StyreWeb",
		"subject_en":       "About the StyreWeb outage",
		"what_happened_nb": "Mandag morgen sluttet innloggingen i StyreWeb å virke fordi en database ble utilgjengelig.\n\nVi gjenopprettet dataene fra sikkerhetskopien fra natten før.",
		"what_happened_en": "On Monday morning signing in to StyreWeb stopped working because a database became unavailable.\n\nWe restored the data from the previous night's backup.",
		"data_safety_nb":   "Vi vurderte risikoen for tap av data som lav. Endringer gjort etter sikkerhetskopien må legges inn på nytt.",
		"data_safety_en":   "We assessed the risk of data loss as low. Changes made after the backup must be entered again.",
		"going_forward_nb": "Vi tar sikkerhetskopi oftere og øver på gjenoppretting hver måned.",
		"going_forward_en": "We now back up more often and rehearse restoring every month.",
		"apology_nb":       "Vi beklager på det sterkeste ulempen dette skapte for dere.",
		"apology_en":       "We are truly sorry for the trouble this caused you.",
		"sign_name":        "Kari Nordmann",
		"sign_title_nb":    "Kundeservicesjef",
		"sign_title_en":    "Head of Customer Service",
	})
}
