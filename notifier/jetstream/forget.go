package jetstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// Removing a subscriber removes them from the store's files, not only from
// view: their record's revisions are erased (the subscribers bucket is an
// erasable one, see erasable.go), and the delivery log's records about
// them are rewritten under a pseudonym, the old batches securely deleted.
// Errors are stored with the addresses they quote masked, so a delivery
// waiting for a retry only loses its key.

// removedRecordNote replaces what a forgotten delivery said about its
// recipient (an SMTP error quotes the address, for one).
const removedRecordNote = "subscriber removed; details erased"

// Forget rewrites every delivery record of subscriberID without them: the
// subscriber's id becomes a random pseudonym (the same for all of their
// records, so counts and statuses still add up), and errors and notes,
// which may quote an address, are erased. The old records are securely
// deleted from the store. It returns how many records were rewritten. It
// reads the whole log, so it takes time in proportion to it. A rewritten
// batch keeps the time it had left (a per-message TTL), so nobody's
// records outlive the retention because someone else was removed.
func (s *Deliveries) Forget(ctx context.Context, subscriberID string) (int, error) {
	s.Flush()
	pseudo := "removed-" + randomHex(6)
	mask := func(r *notifier.DeliveryRecord) {
		r.SubscriberID = pseudo
		r.ID = r.EventID + "." + pseudo + "." + string(r.Channel)
		if r.LastError != "" {
			r.LastError = removedRecordNote
		}
		r.Note, r.ProviderError = "", ""
	}
	n := 0
	// Deliveries still waiting for a retry, in the bucket.
	keys, err := s.kv.ListKeysFiltered(ctx, "*."+subscriberID+".*")
	if err != nil {
		return 0, fmt.Errorf("forget deliveries of %s: %w", subscriberID, err)
	}
	var hot []string
	for k := range keys.Keys() {
		hot = append(hot, k)
	}
	for _, k := range hot {
		// Their errors were stored with addresses masked; the key goes,
		// and a delivery waiting for a retry no longer counts as one (its
		// job, when it comes, finds no subscriber and is skipped).
		r := new(notifier.DeliveryRecord)
		if _, err := getJSON(ctx, s.kv, k, r); err == nil && r.Status == notifier.StatusQueued && r.NextAttemptAt != nil && s.counts != nil {
			if err := s.counts.Count(ctx, r.EventID, r.Channel, notifier.CountRetrying, -1,
				notifier.CountKey(r.ID, r.Retries, notifier.CountRetrying, -1)); err != nil {
				s.logger.Warn("a forgotten retry not uncounted", "event", r.EventID, "error", err)
			}
		}
		if err := s.kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return n, fmt.Errorf("forget deliveries of %s: %w", subscriberID, err)
		}
		n++
	}
	// Settled records, in the log's batches.
	st, err := s.js.Stream(ctx, LogStream)
	if err != nil {
		return n, fmt.Errorf("forget deliveries of %s: %w", subscriberID, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return n, fmt.Errorf("forget deliveries of %s: %w", subscriberID, err)
	}
	needle := []byte(`"subscriber_id":"` + subscriberID + `"`)
	touched := map[string]bool{}
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(LogPrefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("forget deliveries of %s: read the log at %d: %w", subscriberID, seq, err)
		}
		seq = m.Sequence + 1
		if m.Sequence > info.State.LastSeq {
			break // written after we started: our own rewrites, or new sends
		}
		if !bytes.Contains(m.Data, needle) {
			continue
		}
		var out bytes.Buffer
		err = eachLine(m.Data, func(r *notifier.DeliveryRecord) error {
			if r.SubscriberID == subscriberID {
				mask(r)
				n++
			}
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			out.Write(b)
			out.WriteByte('\n')
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("forget deliveries of %s: %w", subscriberID, err)
		}
		if left := info.Config.MaxAge - time.Since(m.Time); info.Config.MaxAge <= 0 || left >= time.Second {
			msg := nats.NewMsg(m.Subject)
			msg.Data = out.Bytes()
			msg.Header.Set(jetstream.MsgIDHeader, newBatchID())
			if info.Config.MaxAge > 0 {
				msg.Header.Set("Nats-TTL", strconv.Itoa(int(left.Seconds()))+"s")
			}
			if _, err := s.js.PublishMsg(ctx, msg); err != nil {
				return n, fmt.Errorf("forget deliveries of %s: rewrite a batch: %w", subscriberID, err)
			}
		}
		if err := st.SecureDeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, fmt.Errorf("forget deliveries of %s: erase batch %d: %w", subscriberID, m.Sequence, err)
		}
		touched[strings.TrimPrefix(m.Subject, LogPrefix)] = true
	}
	// The in-memory indexes of those events point at erased batches.
	s.idxMu.Lock()
	for ev := range touched {
		delete(s.idx, ev)
		if i := indexOf(s.order, ev); i >= 0 {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
		}
	}
	s.idxMu.Unlock()
	s.mu.Lock()
	for id, r := range s.unstored {
		if r.SubscriberID == subscriberID {
			delete(s.unstored, id)
		}
	}
	s.mu.Unlock()
	return n, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
