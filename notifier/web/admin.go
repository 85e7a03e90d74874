package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/varsel/varsel/notifier"
)

// maxBody bounds admin request bodies.
const maxBody = 1 << 20

func (s *server) listSubscribers(w http.ResponseWriter, r *http.Request) {
	subs := []*notifier.Subscriber{}
	limit := queryInt(r, "limit", 1000)
	err := s.deps.Subscribers.Each(r.Context(), func(sub *notifier.Subscriber) error {
		if len(subs) >= limit {
			return errLimit
		}
		subs = append(subs, sub)
		return nil
	})
	if err != nil && !errors.Is(err, errLimit) {
		writeError(w, http.StatusServiceUnavailable, "list subscribers: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, subs)
}

var errLimit = errors.New("limit reached")

func queryInt(r *http.Request, name string, def int) int {
	if n, err := strconv.Atoi(r.URL.Query().Get(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// pathID returns the {id} path value, or answers 404 and returns false
// when it cannot be a subscriber id (and so names no subscriber): such a
// value must not reach the KV store, where it is not even a valid key.
func pathID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !notifier.ValidID(id) {
		writeError(w, http.StatusNotFound, "no subscriber "+strconv.Quote(id)+" (ids are 1-128 letters, digits, '-' or '_')")
		return "", false
	}
	return id, true
}

func (s *server) getSubscriber(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	sub, err := s.deps.Subscribers.Get(r.Context(), id)
	if errors.Is(err, notifier.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no subscriber "+strconv.Quote(r.PathValue("id")))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

// putSubscriber creates (POST) or replaces (PUT /{id}) a subscriber.
func (s *server) putSubscriber(w http.ResponseWriter, r *http.Request) {
	var sub notifier.Subscriber
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sub); err != nil {
		writeError(w, http.StatusBadRequest, "body is not a subscriber: "+err.Error())
		return
	}
	if id := r.PathValue("id"); id != "" {
		if sub.ID != "" && sub.ID != id {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("id %q in the body differs from %q in the path", sub.ID, id))
			return
		}
		sub.ID = id
	}
	if err := sub.Normalize(); err != nil {
		// A problem with what the client sent is a 400; anything else
		// (today only crypto/rand failing to make a webhook secret) is ours.
		var ve *notifier.ValidationError
		if errors.As(err, &ve) {
			writeError(w, http.StatusBadRequest, "invalid subscriber", ve.Problems...)
			return
		}
		s.logger.Error("normalize subscriber", "error", err)
		writeError(w, http.StatusInternalServerError, "could not prepare the subscriber: "+err.Error())
		return
	}
	if err := sub.Validate(); err != nil {
		var ve *notifier.ValidationError
		errors.As(err, &ve)
		writeError(w, http.StatusBadRequest, "invalid subscriber", ve.Problems...)
		return
	}
	if sub.WebhookURL != "" && s.deps.CheckWebhookTarget != nil {
		if err := s.deps.CheckWebhookTarget(r.Context(), sub.WebhookURL); err != nil {
			writeError(w, http.StatusBadRequest, "invalid subscriber", notifier.FieldError{Field: "webhook_url", Problem: err.Error()})
			return
		}
	}
	if err := s.deps.Subscribers.Put(r.Context(), &sub); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	stored, err := s.deps.Subscribers.Get(r.Context(), sub.ID)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.logger.Info("subscriber saved", "subscriber", sub.ID)
	writeJSON(w, http.StatusOK, stored)
}

func (s *server) deleteSubscriber(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if err := s.deps.Subscribers.Delete(r.Context(), id); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// enableChannel lifts a pause (a disabled webhook, paused email) for one
// channel: POST /api/v1/subscribers/{id}/enable?channel=webhook.
func (s *server) enableChannel(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ch := notifier.ChannelName(r.URL.Query().Get("channel"))
	force := r.URL.Query().Get("force") == "true"
	sub, err := notifier.EnableChannel(r.Context(), s.deps.Subscribers, id, ch, force)
	switch {
	case errors.Is(err, notifier.ErrOwnOptOut):
		writeError(w, http.StatusConflict, err.Error()+"; add force=true only if the person asked you to")
	case errors.Is(err, notifier.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, notifier.ErrUnknownChannel):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusOK, sub)
	}
}

func (s *server) postEvent(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, notifier.MaxEventSize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	ev, _, err := s.deps.Operator.PublishEventAs(r.Context(), raw, "admin API")
	var ve *notifier.ValidationError
	switch {
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, "invalid event", ve.Problems...)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"id": ev.ID, "type": string(ev.Type)})
	}
}

func (s *server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := notifier.DeliveryFilter{EventID: q.Get("event"), Status: notifier.DeliveryStatus(q.Get("status"))}
	// The event id becomes part of a KV watch filter, where "*" and ">"
	// are wildcards: only a valid id may get there.
	if f.EventID != "" && !notifier.ValidID(f.EventID) {
		writeError(w, http.StatusBadRequest, "parameter event: "+strconv.Quote(f.EventID)+" is not an event id (1-128 letters, digits, '-' or '_')")
		return
	}
	if f.Status != "" && !slices.Contains(notifier.DeliveryStatuses, f.Status) {
		names := make([]string, len(notifier.DeliveryStatuses))
		for i, st := range notifier.DeliveryStatuses {
			names[i] = string(st)
		}
		writeError(w, http.StatusBadRequest, "parameter status: "+strconv.Quote(string(f.Status))+" is not one of "+strings.Join(names, ", "))
		return
	}
	limit := queryInt(r, "limit", 1000)
	out := []*notifier.DeliveryRecord{}
	err := s.deps.Operator.ListDeliveries(r.Context(), f, func(rec *notifier.DeliveryRecord) error {
		if len(out) >= limit {
			return errLimit
		}
		out = append(out, rec)
		return nil
	})
	if err != nil && !errors.Is(err, errLimit) {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) retryDelivery(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validDeliveryID(id) {
		writeError(w, http.StatusNotFound, "no delivery "+strconv.Quote(id)+" (ids are <event id>.<subscriber id>.<channel>)")
		return
	}
	rec, err := s.deps.Operator.RetryJob(r.Context(), id)
	switch {
	case errors.Is(err, notifier.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeJSON(w, http.StatusAccepted, rec)
	}
}

// validDeliveryID reports whether id has the form of notifier.DeliveryID.
func validDeliveryID(id string) bool {
	parts := strings.Split(id, ".")
	return len(parts) == 3 && notifier.ValidID(parts[0]) && notifier.ValidID(parts[1]) &&
		slices.Contains(notifier.ChannelNames, notifier.ChannelName(parts[2]))
}
