package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/varsel/varsel/channels/webhook"
	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
)

// connect reaches the NATS a running `varsel serve` uses and binds to its
// streams and buckets without creating or changing any (jetstream.Dial).
// A failure names the URL it tried, where that came from, and the fix.
func connect(ctx context.Context, target *natsTarget) (*jetstream.Conn, error) {
	url, from, creds, err := target.resolve()
	if err != nil {
		return nil, err
	}
	if url == "" {
		// An empty URL would make the jetstream package start an embedded server.
		return nil, fmt.Errorf("%w: --nats is empty (set it or VARSEL_NATS_URL to the URL of `varsel serve`'s NATS)", errUsage)
	}
	c, err := jetstream.Dial(ctx, url, creds, newLogger(io.Discard))
	if err == nil {
		return c, nil
	}
	tried := fmt.Sprintf("%s (from %s)", redactURL(url), from)
	if from == "" {
		tried = redactURL(url) + " (the default: no --nats, VARSEL_NATS_URL, context file or VARSEL_NATS_LISTEN names another)"
	}
	switch {
	case strings.Contains(err.Error(), "Authorization Violation") || strings.Contains(err.Error(), "authorization"):
		return nil, fmt.Errorf("NATS at %s refused these credentials: %w; on the machine of `varsel serve` the CLI reads $VARSEL_DATA_DIR/nats/varsel.json (set VARSEL_DATA_DIR to serve's data directory, or give --context FILE or VARSEL_NATS_CONTEXT)", tried, err)
	case errors.Is(err, nats.ErrNoServers):
		return nil, fmt.Errorf("nothing answers at %s: is `varsel serve` running? If it listens elsewhere, give --nats URL or set VARSEL_NATS_URL (or VARSEL_DATA_DIR to serve's data directory, whose nats/varsel.json names its URL; or VARSEL_NATS_LISTEN as serve has it)", tried)
	}
	return nil, fmt.Errorf("%s: %w", tried, err)
}

// redactURL hides the password of each URL in a comma-separated list.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

func cmdPublish(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlags("varsel publish", "varsel publish FILE|- [--watch]",
		"Validate an incident event (.json or .toml; - reads standard input) and publish it.\n"+
			"An invalid file is refused with every reason, before connecting. An id published before is not sent again.", stdout)
	natsURL := natsFlag(fs)
	watch := fs.Bool("watch", false, "follow the deliveries until they are done: counts, rate, time left")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: varsel publish FILE|-", errUsage)
	}
	// Validate before connecting, so a bad file fails fast and offline.
	raw, _, err := readEvent(pos[0], stdin)
	if err != nil {
		return err
	}
	c, err := connect(ctx, natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	return publishAndWatch(ctx, c, raw, *watch, stdout)
}

// publishAndWatch publishes an event as the person at the terminal, says
// whether it was new, and with watch follows its deliveries to the end.
func publishAndWatch(ctx context.Context, c *jetstream.Conn, raw []byte, watch bool, stdout io.Writer) error {
	ev, duplicate, err := c.PublishEventAs(ctx, raw, cliUser())
	if err != nil {
		return err
	}
	what := string(ev.Type)
	if duplicate {
		fmt.Fprintf(stdout, "%s already published (%s): nothing sent; to say something new, give the event a new id\n", ev.ID, what)
	} else {
		fmt.Fprintf(stdout, "published %s (%s)\n", ev.ID, what)
	}
	if !watch {
		fmt.Fprintf(stdout, "follow it with: varsel deliveries list --event %s --summary\n", ev.ID)
		return nil
	}
	return newWatcher(c, stdout).watch(ctx, ev.ID)
}

// cliUser names who publishes from this terminal, for the audit trail.
func cliUser() string {
	name := os.Getenv("USER")
	if name == "" {
		name = "unknown"
	}
	if host, err := os.Hostname(); err == nil {
		name += "@" + host
	}
	return "cli:" + name
}

func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(stdin, 1<<20))
	}
	return os.ReadFile(name)
}

// subscribersGroup is `varsel subscribers`.
var subscribersGroup = group{name: "subscribers", about: "Manage the people and systems that are told about incidents.", subs: []subcommand{
	{"add", "--id ID [--email E] [--phone P] [flags]", "add a subscriber, or replace the one with that id (its opt-outs kept)"},
	{"import", "FILE.csv", "add or update subscribers from a CSV file; bad rows are reported, the good ones imported"},
	{"list", "", "every subscriber, with their paused channels"},
	{"show", "ID", "one subscriber's record, as JSON"},
	{"export", "ID", "everything held about one subscriber, as JSON (a request of access)"},
	{"remove", "ID", "erase a subscriber; their deliveries stay in the counts under a pseudonym"},
	{"enable", "ID --channel C [--force]", "lift the pause of a channel (bounces, a disabled webhook); --force for the person's own opt-out"},
}}

func cmdSubscribers(ctx context.Context, args []string, stdout io.Writer) error {
	cmd, args, err := subscribersGroup.pick(args, stdout)
	if err != nil {
		return err
	}
	sub := cmd.name
	fs := subscribersGroup.flags(cmd, stdout)
	natsURL := natsFlag(fs)
	allowPrivate := new(bool)
	region := new(string)
	if sub == "add" || sub == "import" {
		allowPrivate = fs.Bool("allow-private-webhooks", os.Getenv("VARSEL_WEBHOOK_ALLOW_PRIVATE") == "true", "accept webhook targets on private addresses (VARSEL_WEBHOOK_ALLOW_PRIVATE)")
		region = fs.String("default-region", envOr("VARSEL_DEFAULT_REGION", notifier.FallbackRegion), "region of phone numbers written without a country code (VARSEL_DEFAULT_REGION)")
	}
	var s notifier.Subscriber
	var components, channel string
	var force bool
	if sub == "add" {
		fs.StringVar(&s.ID, "id", "", "subscriber id (required)")
		fs.StringVar(&s.Name, "name", "", "name")
		fs.StringVar(&s.Email, "email", "", "email address")
		fs.StringVar(&s.Phone, "phone", "", "mobile number: +4791234567, or without the country code in --default-region")
		fs.StringVar(&s.WebhookURL, "webhook-url", "", "webhook URL")
		fs.StringVar(&s.WebhookSecret, "webhook-secret", "", "whsec_… secret (generated when empty)")
		fs.StringVar(&s.Locale, "locale", "", "language: en, nb, …")
		fs.StringVar(&s.Timezone, "timezone", "", "IANA time zone")
		fs.StringVar(&components, "components", "", "components separated by ; (empty: all)")
	}
	if sub == "enable" {
		fs.StringVar(&channel, "channel", "", "channel to enable again: email, sms or webhook")
		fs.BoolVar(&force, "force", false, "also lift an opt-out the person made themselves (only when they asked you to)")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *region != "" {
		if err := notifier.SetDefaultRegion(*region); err != nil {
			return fmt.Errorf("%w: --default-region: %v", errUsage, err)
		}
	}
	// Refuse a malformed command line before connecting.
	switch {
	case sub == "import" && len(pos) != 1:
		return fmt.Errorf("%w: varsel subscribers import FILE.csv", errUsage)
	case (sub == "show" || sub == "remove" || sub == "export") && len(pos) != 1:
		return fmt.Errorf("%w: varsel subscribers %s ID", errUsage, sub)
	case sub == "enable" && (len(pos) != 1 || channel == ""):
		return fmt.Errorf("%w: varsel subscribers enable ID --channel email|sms|webhook", errUsage)
	case (sub == "add" || sub == "list") && len(pos) != 0:
		return fmt.Errorf("%w: varsel subscribers %s takes no arguments, only flags: %q", errUsage, sub, pos[0])
	}
	if sub == "enable" && !slices.Contains(notifier.ChannelNames, notifier.ChannelName(channel)) {
		return fmt.Errorf("%w: --channel %q: want email, sms or webhook", errUsage, channel)
	}
	c, err := connect(ctx, natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	// A target's check is its scheme and host's (a DNS lookup): an import
	// of many subscribers of one receiver looks it up once.
	checked := map[string]error{}
	var checkedMu sync.Mutex
	check := func(ctx context.Context, s *notifier.Subscriber) error {
		if s.WebhookURL == "" {
			return nil
		}
		u, err := neturl.Parse(s.WebhookURL)
		if err != nil || u.Host == "" {
			return webhook.CheckTarget(ctx, s.WebhookURL, *allowPrivate)
		}
		key := u.Scheme + "://" + u.Host
		checkedMu.Lock()
		err, ok := checked[key]
		checkedMu.Unlock()
		if ok {
			return err
		}
		err = webhook.CheckTarget(ctx, s.WebhookURL, *allowPrivate)
		checkedMu.Lock()
		checked[key] = err
		checkedMu.Unlock()
		return err
	}
	switch sub {
	case "add":
		if components != "" && components != "*" {
			s.Components = strings.Split(components, ";")
		}
		if err := s.Normalize(); err != nil {
			return err
		}
		if err := errors.Join(s.Validate(), check(ctx, &s)); err != nil {
			return fmt.Errorf("subscriber %s: %w", s.ID, err)
		}
		if err := c.Subscribers.Put(ctx, &s); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s\n", s.ID)
	case "import":
		if len(pos) != 1 {
			return fmt.Errorf("%w: varsel subscribers import FILE.csv", errUsage)
		}
		return importCSV(ctx, c, pos[0], check, stdout)
	case "list":
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tEMAIL\tPHONE\tWEBHOOK\tLOCALE\tCOMPONENTS\tPAUSED")
		err := c.Subscribers.Each(ctx, func(s *notifier.Subscriber) error {
			var paused []string
			for ch, why := range s.Suppressed {
				paused = append(paused, string(ch)+":"+string(why.Reason))
			}
			hook := "-"
			if s.WebhookURL != "" {
				hook = notifier.MaskContact(notifier.Webhook, s.WebhookURL)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, s.Email, s.Phone,
				hook, s.Locale, strings.Join(s.Components, ";"), strings.Join(paused, ","))
			return nil
		})
		w.Flush()
		return err
	case "show":
		if len(pos) != 1 {
			return fmt.Errorf("%w: varsel subscribers show ID", errUsage)
		}
		s, err := c.Subscribers.Get(ctx, pos[0])
		if err != nil {
			return noSubscriber(err, pos[0])
		}
		return printJSON(stdout, s)
	case "export":
		return exportSubscriber(ctx, c, pos[0], stdout)
	case "remove":
		if len(pos) != 1 {
			return fmt.Errorf("%w: varsel subscribers remove ID", errUsage)
		}
		if _, err := c.Subscribers.Get(ctx, pos[0]); err != nil {
			return noSubscriber(err, pos[0])
		}
		if err := c.Subscribers.Delete(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s\n", pos[0])
	case "enable":
		if len(pos) != 1 || channel == "" {
			return fmt.Errorf("%w: varsel subscribers enable ID --channel email|sms|webhook", errUsage)
		}
		return enableChannel(ctx, c, pos[0], notifier.ChannelName(channel), force, stdout)
	default:
		return fmt.Errorf("%w: unknown subscribers command %q", errUsage, sub)
	}
	return nil
}

// importCSV imports good rows and reports bad ones by line and column;
// the command fails if any row was bad, after importing the rest.
// importWorkers is how many rows an import stores at once; the address
// index of every importChunk rows is written together, one write a shard
// (a row written but not yet indexed is not found by address; an import
// run again indexes it).
const importWorkers = 8

// importChunk is a variable for the tests.
var importChunk = 50_000

func importCSV(ctx context.Context, c *jetstream.Conn, file string, check func(context.Context, *notifier.Subscriber) error, stdout io.Writer) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	subs, bad, err := notifier.ReadSubscribersCSV(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var rowErrs []error
	for _, b := range bad {
		rowErrs = append(rowErrs, fmt.Errorf("%s: %w", file, b))
	}
	// Rows are independent (the reader refuses an id given twice), so they
	// are stored importWorkers at a time; refusals are reported in file
	// order.
	refused := make([]error, len(subs))
	var imported atomic.Int64
	var putErr error
	var mu sync.Mutex
	later := c.Subscribers.IndexLater()
	for start := 0; start < len(subs) && putErr == nil; start += importChunk {
		chunk := subs[start:min(start+importChunk, len(subs))]
		next := atomic.Int64{}
		var wg sync.WaitGroup
		for range min(importWorkers, len(chunk)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					mu.Lock()
					stop := i >= len(chunk) || putErr != nil
					mu.Unlock()
					if stop {
						return
					}
					s := chunk[i]
					if err := check(ctx, s); err != nil {
						refused[start+i] = fmt.Errorf("%s: subscriber %s, column webhook_url: %w", file, s.ID, err)
						continue
					}
					if err := c.Subscribers.PutIndexLater(ctx, s, later); err != nil {
						mu.Lock()
						if putErr == nil {
							putErr = fmt.Errorf("subscriber %s: %w", s.ID, err)
						}
						mu.Unlock()
						return
					}
					imported.Add(1)
				}
			}()
		}
		wg.Wait()
		// What was stored is indexed, even when a row failed or the
		// import was interrupted.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		err := later.Apply(actx, importWorkers)
		cancel()
		if err != nil {
			return fmt.Errorf("after %d imported: %w", imported.Load(), errors.Join(putErr, err))
		}
		if err := ctx.Err(); err != nil && putErr == nil {
			putErr = err
		}
	}
	if putErr != nil {
		return fmt.Errorf("after %d imported: %w", imported.Load(), putErr)
	}
	for _, err := range refused {
		if err != nil {
			rowErrs = append(rowErrs, err)
		}
	}
	fmt.Fprintf(stdout, "imported %d subscribers from %s", imported.Load(), file)
	if len(rowErrs) > 0 {
		fmt.Fprintf(stdout, "; %d rows refused:\n", len(rowErrs))
		return errors.Join(rowErrs...)
	}
	fmt.Fprintln(stdout)
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// deliveriesGroup is `varsel deliveries`.
var deliveriesGroup = group{name: "deliveries", about: "See what was sent to whom, and send a failed delivery again.", subs: []subcommand{
	{"list", "[--event ID [--summary]] [--status STATUS]", "deliveries with their status, attempts and last error; times in VARSEL_TIMEZONE"},
	{"retry", "ID | --failed --event ID", "queue a delivery again (one that failed, or was skipped); --failed: every delivery of the event that failed for a reason an outage explains (network, timeout, server error, rate limit)"},
}}

func cmdDeliveries(ctx context.Context, args []string, stdout io.Writer) error {
	cmd, args, err := deliveriesGroup.pick(args, stdout)
	if err != nil {
		return err
	}
	sub := cmd.name
	fs := deliveriesGroup.flags(cmd, stdout)
	natsURL := natsFlag(fs)
	event, status, summary, failed := new(string), new(string), new(bool), new(bool)
	if sub == "retry" {
		failed = fs.Bool("failed", false, "queue every failed delivery of --event again (after an outage of a relay or an endpoint)")
		event = fs.String("event", "", "with --failed: the event whose failed deliveries to queue again")
	}
	if sub == "list" {
		event = fs.String("event", "", "only this event's deliveries")
		status = fs.String("status", "", "only this status: "+strings.Join(deliveryStatusNames(), ", "))
		summary = fs.Bool("summary", false, "with --event: print only the counts per channel, not every delivery")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	zone, err := cliZone()
	if err != nil {
		return err
	}
	// Check the filters before connecting: a typo must not look like "0 deliveries".
	if *status != "" && !slices.Contains(notifier.DeliveryStatuses, notifier.DeliveryStatus(*status)) {
		return fmt.Errorf("%w: --status %q: want one of %s", errUsage, *status, strings.Join(deliveryStatusNames(), ", "))
	}
	if *event != "" && !notifier.ValidID(*event) {
		return fmt.Errorf("%w: --event %q: want an event id (1-128 letters, digits, '-' or '_', starting with a letter or digit)", errUsage, *event)
	}
	if sub == "retry" && *failed != (*event != "") {
		return fmt.Errorf("%w: --failed and --event go together: varsel deliveries retry --failed --event ID", errUsage)
	}
	if sub == "retry" && (*failed == (len(pos) == 1) || len(pos) > 1) {
		return fmt.Errorf("%w: varsel deliveries retry ID, or varsel deliveries retry --failed --event ID", errUsage)
	}
	if sub == "list" && len(pos) != 0 {
		return fmt.Errorf("%w: varsel deliveries list takes flags only, not %q (an event's deliveries: --event ID)", errUsage, pos[0])
	}
	if *summary && (*event == "" || *status != "") {
		return fmt.Errorf("%w: --summary counts one event's deliveries: give --event ID, without --status", errUsage)
	}
	c, err := connect(ctx, natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	switch sub {
	case "list":
		if *summary {
			return printSummary(ctx, c, *event, stdout)
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tSTATUS\tATTEMPTS\tUPDATED\tLAST ERROR / NOTE")
		n := 0
		err := c.Deliveries.List(ctx, jetstream.DeliveryFilter{EventID: *event, Status: notifier.DeliveryStatus(*status)},
			func(r *notifier.DeliveryRecord) error {
				note := r.LastError
				if note == "" {
					note = r.Note
				}
				if r.Status == notifier.StatusQueued && r.NextAttemptAt != nil {
					note = "next attempt " + r.NextAttemptAt.In(zone).Format(cliTime) + "; " + note
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", r.ID, r.Status, r.Attempts, r.UpdatedAt.In(zone).Format(cliTime), note)
				n++
				return nil
			})
		w.Flush()
		fmt.Fprintf(stdout, "%d deliveries\n", n)
		if err != nil {
			return err
		}
		// Jobs get a record when a worker first takes them: say how many
		// of the event's planned jobs are still waiting for that.
		if *event != "" && *status == "" {
			if ev, err := c.Events.Get(ctx, *event); err == nil && ev.PlannedAt != nil && ev.Jobs > n {
				fmt.Fprintf(stdout, "%d of %d planned jobs are waiting in the queue\n", ev.Jobs-n, ev.Jobs)
			}
		}
		return nil
	case "retry":
		if *failed {
			return retryFailed(ctx, c, *event, stdout)
		}
		rec, err := c.RetryJob(ctx, pos[0])
		if errors.Is(err, notifier.ErrNotFound) {
			return fmt.Errorf("no delivery %s (the ids are in `varsel deliveries list`)", pos[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "queued %s again\n", rec.ID)
		return nil
	}
	return fmt.Errorf("%w: unknown deliveries command %q", errUsage, sub)
}

// retryFailed queues every failed delivery of an event again, and says
// how many, and which could not be queued.
func retryFailed(ctx context.Context, c *jetstream.Conn, eventID string, stdout io.Writer) error {
	// Only what an outage explains: a bounce, a refusal, a 410, an
	// address or a template that is wrong fails the same way again.
	forGood := map[notifier.Reason]bool{notifier.ReasonBounced: true, notifier.ReasonRejected: true, notifier.ReasonInvalidAddress: true,
		notifier.ReasonOptedOut: true, notifier.ReasonGone: true, notifier.ReasonDisabled: true, notifier.ReasonTemplate: true}
	var ids []string
	kept := 0
	if err := c.Deliveries.List(ctx, jetstream.DeliveryFilter{EventID: eventID, Status: notifier.StatusFailed}, func(r *notifier.DeliveryRecord) error {
		if forGood[r.Reason] {
			kept++
			return nil
		}
		ids = append(ids, r.ID)
		return nil
	}); err != nil {
		return err
	}
	if kept > 0 {
		fmt.Fprintf(stdout, "left %d that failed for good (a bounce, a refusal, a wrong address or template): fix the cause, then `varsel deliveries retry ID` each\n", kept)
	}
	var errs []error
	queued := 0
	for _, id := range ids {
		if _, err := c.RetryJob(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		queued++
	}
	fmt.Fprintf(stdout, "queued %d of %d failed deliveries of %s again\n", queued, len(ids), eventID)
	return errors.Join(errs...)
}

// printSummary prints an event's delivery counts per channel, read from
// its counters (O(1) however many deliveries it has).
func printSummary(ctx context.Context, c *jetstream.Conn, eventID string, stdout io.Writer) error {
	rec, err := c.Events.Get(ctx, eventID)
	if errors.Is(err, notifier.ErrNotFound) {
		return fmt.Errorf("no event %s has been taken in (see `varsel rejected list` if it was published)", eventID)
	}
	if err != nil {
		return err
	}
	p, err := c.Counts.Progress(ctx, eventID)
	if err != nil {
		return err
	}
	p.Planned = p.Planned || rec.PlannedAt != nil
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "CHANNEL\tPLANNED\tSENT\tFAILED\tSKIPPED\tWAITING\tFOR A RETRY\t")
	row := func(name string, c notifier.ChannelProgress) {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, c.Planned, c.Sent, c.Failed, c.Skipped, c.Waiting, c.Retrying)
	}
	for _, ch := range notifier.ChannelNames {
		if cp := p.Channels[ch]; cp != nil {
			row(string(ch), *cp)
		}
	}
	row("total", p.Total())
	w.Flush()
	switch {
	case !p.Planned:
		fmt.Fprintln(stdout, "still planning: the planned counts grow until the plan is finished")
	case p.Done():
		fmt.Fprintln(stdout, "done: every planned delivery is sent, failed or skipped")
	}
	return nil
}

func deliveryStatusNames() []string {
	names := make([]string, len(notifier.DeliveryStatuses))
	for i, s := range notifier.DeliveryStatuses {
		names[i] = string(s)
	}
	return names
}

// rejectedGroup is `varsel rejected`.
var rejectedGroup = group{name: "rejected", about: "See the events that were refused, and why.", subs: []subcommand{
	{"list", "", "invalid events and why they were rejected (the default)"},
}}

func cmdRejected(ctx context.Context, args []string, stdout io.Writer) error {
	// `varsel rejected` alone lists too, as it always has.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		args = append([]string{"list"}, args...)
	}
	cmd, args, err := rejectedGroup.pick(args, stdout)
	if err != nil {
		return err
	}
	fs := rejectedGroup.flags(cmd, stdout)
	natsURL := natsFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: varsel rejected list takes no arguments", errUsage)
	}
	zone, err := cliZone()
	if err != nil {
		return err
	}
	c, err := connect(ctx, natsURL)
	if err != nil {
		return err
	}
	defer c.Close()
	rej, err := c.Rejections(ctx)
	if err != nil {
		return err
	}
	for _, r := range rej {
		// Which event, when its id can be read, and how big: a producer
		// finds its own by these.
		var head struct {
			ID string `json:"id"`
		}
		which := ""
		if json.Unmarshal(r.Data, &head) == nil && head.ID != "" {
			which = fmt.Sprintf(" event %q", head.ID)
		}
		fmt.Fprintf(stdout, "#%d %s %s%s (%d bytes)\n    %s\n", r.Seq, r.RejectedAt.In(zone).Format(cliTime), r.Subject, which, r.OriginalSize, r.Reason)
	}
	fmt.Fprintf(stdout, "%d rejected events\n", len(rej))
	return nil
}

// exportSubscriber prints everything Varsel holds about one subscriber, as
// one JSON document: their record and every delivery made to them (the
// right of access, GDPR article 15).
func exportSubscriber(ctx context.Context, c *jetstream.Conn, id string, stdout io.Writer) error {
	s, err := c.Subscribers.Get(ctx, id)
	if err != nil {
		return noSubscriber(err, id)
	}
	out := struct {
		ExportedAt time.Time                  `json:"exported_at"`
		Subscriber *notifier.Subscriber       `json:"subscriber"`
		Deliveries []*notifier.DeliveryRecord `json:"deliveries"`
	}{ExportedAt: time.Now().UTC().Truncate(time.Second), Subscriber: s, Deliveries: []*notifier.DeliveryRecord{}}
	err = c.Deliveries.List(ctx, jetstream.DeliveryFilter{}, func(r *notifier.DeliveryRecord) error {
		if r.SubscriberID == id {
			out.Deliveries = append(out.Deliveries, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(out.Deliveries, func(a, b *notifier.DeliveryRecord) int { return a.QueuedAt.Compare(b.QueuedAt) })
	return printJSON(stdout, out)
}

// noSubscriber says "no subscriber ID" for a missing one, without the
// store's internal names; other errors pass.
func noSubscriber(err error, id string) error {
	if errors.Is(err, notifier.ErrNotFound) {
		return fmt.Errorf("no subscriber %s", id)
	}
	return err
}

// errOwnChoice refuses to lift an opt-out the person made themselves.
var errOwnChoice = errors.New("their own choice")

// enableChannel lifts the pause of one channel and forgets its failures.
// An opt-out the person made themselves (a link, their preferences page,
// an SMS STOP) is theirs to undo: it is lifted only with force.
func enableChannel(ctx context.Context, c *jetstream.Conn, id string, ch notifier.ChannelName, force bool, stdout io.Writer) error {
	var was *notifier.Suppression
	var failures int
	_, err := c.Subscribers.Update(ctx, id, func(s *notifier.Subscriber) error {
		was, failures = nil, s.Failures[ch]
		if sup, ok := s.Suppressed[ch]; ok {
			if sup.Reason == notifier.ReasonOptedOut && !force {
				return fmt.Errorf("%w: %s", errOwnChoice, ownOptOut(id, ch, sup))
			}
			was = &sup
		}
		delete(s.Suppressed, ch)
		delete(s.Failures, ch)
		return nil
	})
	if err != nil {
		if errors.Is(err, errOwnChoice) {
			return errors.New(strings.TrimPrefix(err.Error(), errOwnChoice.Error()+": "))
		}
		return noSubscriber(err, id)
	}
	switch {
	case was != nil:
		why := string(was.Reason)
		if was.Detail != "" {
			why += ": " + was.Detail
		}
		fmt.Fprintf(stdout, "enabled %s for %s (it was paused: %s)\n", ch, id, why)
	case failures > 0:
		fmt.Fprintf(stdout, "%s for %s was not paused; its %d failures in a row are forgotten\n", ch, id, failures)
	default:
		fmt.Fprintf(stdout, "%s for %s was not paused: nothing to enable\n", ch, id)
	}
	return nil
}

// ownOptOut says why an opt-out is the person's own and how it is undone.
func ownOptOut(id string, ch notifier.ChannelName, sup notifier.Suppression) string {
	how := "they can turn it on again on their preferences page (linked from every email)"
	if ch == notifier.SMS && !sup.SelfService() {
		how = "they can send START to turn it on again"
	}
	when := ""
	if !sup.At.IsZero() {
		when = " on " + sup.At.UTC().Format("2006-01-02")
	}
	detail := sup.Detail
	if detail == "" {
		detail = "opted out"
	}
	return fmt.Sprintf("not enabled: %s turned %s off themselves (%s%s); that is their own choice, and %s. "+
		"Give --force only if they asked you to turn it on again", id, ch, detail, when, how)
}

// cliTime is how the CLI prints a time: with its zone, as "2019-09-16 11:00:00 CEST".
const cliTime = "2006-01-02 15:04:05 MST"

// cliZone is the zone the CLI prints times in: VARSEL_TIMEZONE, as the
// service's default, else Europe/Oslo.
func cliZone() (*time.Location, error) {
	name := envOr("VARSEL_TIMEZONE", "Europe/Oslo")
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%w: VARSEL_TIMEZONE %q: not an IANA time zone (e.g. Europe/Oslo, UTC)", errUsage, name)
	}
	return loc, nil
}
