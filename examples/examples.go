// Package examples holds event files that replay Varsel's two seed scenarios
// and one planned maintenance, and a file of demo subscribers in both
// languages:
//
//   - styreweb: the StyreWeb login outage of 16–19 September 2019, one event
//     per update on the status page, Norwegian with an English translation;
//   - led: the Life Events Diary outage (opened, updated, resolved), its
//     postmortem, and the apology letter last;
//   - maintenance: a StyreWeb database upgrade on a night window in October
//     2019, announced a week ahead, started and completed.
//
// Together they hold an event of every type in notifier.EventTypes, so
// `varsel templates check` renders every template for every type.
//
// `varsel demo`, the tests and the documentation use them; `varsel publish
// examples/styreweb/06-2019-09-17-1000-updated.json` publishes one by hand.
package examples

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/varsel/varsel/notifier"
)

// SubscribersFile is the path in FS of the demo subscribers, in the CSV
// format of `varsel subscribers import`. The two webhook subscribers point at
// http://127.0.0.1:8080/demo/webhook, the receiver of serve's own listener
// (on the default VARSEL_HTTP_ADDR), which verifies their signatures: serve
// calls that exact URL without VARSEL_WEBHOOK_ALLOW_PRIVATE, but importing
// them still needs --allow-private-webhooks.
const SubscribersFile = "subscribers.csv"

// FS holds every scenario directory (<name>/*.json) and SubscribersFile.
//
//go:embed styreweb/*.json led/*.json maintenance/*.json subscribers.csv site.toml
var FS embed.FS

// ErrUnknownScenario is returned for a scenario name that Names does not list.
var ErrUnknownScenario = errors.New("unknown scenario")

// Names lists the scenarios in FS in lexical order.
func Names() []string {
	entries, err := FS.ReadDir(".")
	if err != nil {
		// The embedded root always exists; an error here is a build defect.
		panic(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// Files returns the paths in FS of a scenario's event files in the order they
// are published: numbered files in time order, then the letter, if any.
func Files(name string) ([]string, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("open scenario %q: %w (want one of %s)", name, ErrUnknownScenario, strings.Join(Names(), ", "))
	}
	// ReadDir sorts by name: "01-…" to "99-…" come before "letter.json".
	entries, err := fs.ReadDir(FS, name)
	if err != nil {
		return nil, fmt.Errorf("read scenario %q: %w", name, err)
	}
	files := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			files = append(files, path.Join(name, e.Name()))
		}
	}
	return files, nil
}

// Scenario returns the events of a scenario (one of Names), each
// decoded and validated with notifier.DecodeEvent, in publishing order.
func Scenario(name string) ([]*notifier.Event, error) {
	files, err := Files(name)
	if err != nil {
		return nil, err
	}
	events := make([]*notifier.Event, 0, len(files))
	for _, f := range files {
		b, err := FS.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		ev, err := notifier.DecodeEvent(b)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", f, err)
		}
		events = append(events, ev)
	}
	return events, nil
}

// Site is the demo's site file (site.toml): the page's name and the
// example components, named in both languages.
func Site() (*notifier.Site, error) {
	b, err := FS.ReadFile("site.toml")
	if err != nil {
		return nil, err
	}
	return notifier.ParseSite("examples/site.toml", b)
}
