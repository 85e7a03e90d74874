package jetstream

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// lastMsgs reads the last message of several subjects of one stream in a
// single direct get: NATS 2.11+ answers a request with "multi_last" by a
// message per subject that has one, then an end-of-batch status. A job of
// several deliveries reads its subscribers this way, in one round trip
// instead of one each.
//
// The answers come on one long-lived wildcard inbox subscription shared by
// every read, each read on its own reply subject below it: a subscription
// per read (what a request-many helper does) would make the server insert
// and remove an interest, and reset its subject cache, for every job.
type lastMsgs struct {
	nc *nats.Conn

	seq atomic.Uint64

	mu     sync.Mutex
	sub    *nats.Subscription // nil until a subscribe works
	prefix string             // reply subjects are prefix + a read's number
	reads  map[string]chan *nats.Msg
}

// directGetPrefix is the JetStream API's direct get, followed by the
// stream; numPendingHeader, on its end of batch, counts what it left out.
const (
	directGetPrefix  = "$JS.API.DIRECT.GET."
	numPendingHeader = "Nats-Num-Pending"
)

// start subscribes to the reply subjects, once it works: a failure (the
// connection closing, say) is tried again by the next read.
func (l *lastMsgs) start() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sub != nil {
		return l.prefix, nil
	}
	prefix := l.nc.NewInbox() + "."
	if l.reads == nil {
		l.reads = map[string]chan *nats.Msg{}
	}
	l.prefix = prefix // before the subscription can deliver
	sub, err := l.nc.Subscribe(prefix+"*", l.route)
	if err != nil {
		return "", err
	}
	l.sub = sub
	return prefix, nil
}

// route hands an answer to the read waiting for it; one whose read gave up
// is dropped.
func (l *lastMsgs) route(m *nats.Msg) {
	l.mu.Lock()
	ch := l.reads[m.Subject[len(l.prefix):]]
	l.mu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default: // more answers than asked for: not from the server
		}
	}
}

// get returns the last message of each of subjects in stream that has
// one, by subject.
func (l *lastMsgs) get(ctx context.Context, stream string, subjects []string) (map[string]*nats.Msg, error) {
	prefix, err := l.start()
	if err != nil {
		return nil, fmt.Errorf("subscribe for direct gets: %w", err)
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{subjects, len(subjects)})
	if err != nil {
		return nil, err
	}
	token := strconv.FormatUint(l.seq.Add(1), 36)
	// Room for every answer and the end: route never blocks.
	ch := make(chan *nats.Msg, len(subjects)+1)
	l.mu.Lock()
	l.reads[token] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.reads, token)
		l.mu.Unlock()
	}()
	if err := l.nc.PublishRequest(directGetPrefix+stream, prefix+token, req); err != nil {
		return nil, fmt.Errorf("direct get from %s: %w", stream, err)
	}
	out := make(map[string]*nats.Msg, len(subjects))
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("direct get from %s: %w", stream, ctx.Err())
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") != "" {
				switch status := m.Header.Get("Status"); {
				case status == "204" && m.Header.Get(numPendingHeader) == "0":
					return out, nil // the end, with nothing left out
				case status == "404" && len(out) == 0:
					return out, nil // none of the subjects has a message
				case status == "204":
					// The server stopped short (its byte limit).
					return nil, fmt.Errorf("direct get from %s: %d answers, %s left out", stream, len(out), m.Header.Get(numPendingHeader))
				}
				// A 404 after answers: a message that failed to load.
				return nil, fmt.Errorf("direct get from %s: %s %s", stream, m.Header.Get("Status"), m.Header.Get("Description"))
			}
			subj := m.Header.Get(nats.JSSubject)
			if subj == "" {
				return nil, fmt.Errorf("direct get from %s: an answer without %s (a server before 2.11?)", stream, nats.JSSubject)
			}
			out[subj] = m
		}
	}
}
