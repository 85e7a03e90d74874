package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/varsel/varsel/notifier"
	"github.com/varsel/varsel/notifier/jetstream"
)

// maxBody bounds admin request bodies.
const maxBody = 1 << 20

func (s *server) listSubscribers(w http.ResponseWriter, r *http.Request) {
	subs := []*notifier.Subscriber{}
	limit := queryInt(r, "limit", 1000)
	err := s.deps.Conn.Subscribers.Each(r.Context(), func(sub *notifier.Subscriber) error {
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

func (s *server) getSubscriber(w http.ResponseWriter, r *http.Request) {
	sub, err := s.deps.Conn.Subscribers.Get(r.Context(), r.PathValue("id"))
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
		writeError(w, http.StatusInternalServerError, err.Error())
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
	if err := s.deps.Conn.Subscribers.Put(r.Context(), &sub); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	stored, err := s.deps.Conn.Subscribers.Get(r.Context(), sub.ID)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.logger.Info("subscriber saved", "subscriber", sub.ID)
	writeJSON(w, http.StatusOK, stored)
}

func (s *server) deleteSubscriber(w http.ResponseWriter, r *http.Request) {
	if err := s.deps.Conn.Subscribers.Delete(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// enableChannel lifts a pause (a disabled webhook, paused email) for one
// channel: POST /api/v1/subscribers/{id}/enable?channel=webhook.
func (s *server) enableChannel(w http.ResponseWriter, r *http.Request) {
	ch := notifier.ChannelName(r.URL.Query().Get("channel"))
	sub, err := s.deps.Conn.Subscribers.Enable(r.Context(), r.PathValue("id"), ch)
	switch {
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
	ev, err := s.deps.Conn.PublishEvent(r.Context(), raw)
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
	f := jetstream.DeliveryFilter{EventID: r.URL.Query().Get("event"), Status: notifier.DeliveryStatus(r.URL.Query().Get("status"))}
	limit := queryInt(r, "limit", 1000)
	out := []*notifier.DeliveryRecord{}
	err := s.deps.Conn.Deliveries.List(r.Context(), f, func(rec *notifier.DeliveryRecord) error {
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
	rec, err := s.deps.Conn.RetryJob(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, notifier.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeJSON(w, http.StatusAccepted, rec)
	}
}
