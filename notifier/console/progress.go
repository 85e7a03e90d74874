package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/varsel/varsel/notifier"
)

type progressView struct {
	Page
	EventID  string
	Record   *notifier.EventRecord
	Progress *notifier.Progress
	Total    notifier.ChannelProgress
	Channels []notifier.ChannelName
	Failures []*notifier.DeliveryRecord
	// More is set when there are more failures than the page lists.
	More bool
}

// maxFailuresShown bounds the failures the progress page lists.
const maxFailuresShown = 100

// progress follows a broadcast until it is done: planned, sent, failed,
// skipped and waiting per channel, and the failures, each retryable:
// GET /console/progress/{event}.
func (c *console) progress(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("event")
	if !notifier.ValidID(id) {
		http.NotFound(w, r)
		return
	}
	v := progressView{Page: c.newPage(r, "ConsoleProgress"), EventID: id, Channels: notifier.ChannelNames}
	rec, err := c.deps.Operator.Event(r.Context(), id)
	switch {
	case errors.Is(err, notifier.ErrNotFound):
		// Published, not yet taken in: the page reloads until it is.
		v.Notice = v.T("ConsoleNotTakenIn")
		c.render(w, "progress.html", v)
		return
	case err != nil:
		c.problem(w, v.Page, http.StatusServiceUnavailable, v.T("ConsoleUnavailable"))
		return
	}
	v.Record = rec
	if v.Progress, err = c.deps.Operator.Progress(r.Context(), id); err != nil {
		c.problem(w, v.Page, http.StatusServiceUnavailable, v.T("ConsoleUnavailable"))
		return
	}
	v.Total = v.Progress.Total()
	err = c.deps.Operator.ListDeliveries(r.Context(), notifier.DeliveryFilter{EventID: id, Status: notifier.StatusFailed}, func(d *notifier.DeliveryRecord) error {
		if len(v.Failures) >= maxFailuresShown {
			v.More = true
			return errStop
		}
		v.Failures = append(v.Failures, d)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		c.log.Warn("list failed deliveries", "event", id, "error", err)
	}
	if r.URL.Query().Get("retried") != "" {
		v.Notice = v.T("ConsoleRetried", "ID", r.URL.Query().Get("retried"))
	}
	c.render(w, "progress.html", v)
}

var errStop = errors.New("enough")

// retry queues a failed delivery again: POST /console/deliveries/{id}/retry.
func (c *console) retry(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(r, "ConsoleProgress")
	id := r.PathValue("id")
	parts := strings.Split(id, ".")
	if len(parts) != 3 || !notifier.ValidID(parts[0]) {
		http.NotFound(w, r)
		return
	}
	if _, err := c.deps.Operator.RetryJob(r.Context(), id); err != nil {
		status := http.StatusConflict
		if errors.Is(err, notifier.ErrNotFound) {
			status = http.StatusNotFound
		}
		c.problem(w, p, status, err.Error())
		return
	}
	c.log.Info("delivery retried from the console", "delivery", id, "by", p.Account.Name)
	http.Redirect(w, r, Prefix+"/progress/"+parts[0]+"?retried="+id, http.StatusSeeOther)
}
