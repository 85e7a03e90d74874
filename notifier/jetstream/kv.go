package jetstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// maxCASRetries bounds the read-modify-write loop of an Update.
const maxCASRetries = 20

// getJSON reads key into v, mapping a missing key to notifier.ErrNotFound.
func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("%s %q: %w", kv.Bucket(), key, notifier.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("get %s %q: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s %q: %w", kv.Bucket(), key, err)
	}
	return e.Revision(), nil
}

func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", kv.Bucket(), key, err)
	}
	if _, err := kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("put %s %q: %w", kv.Bucket(), key, err)
	}
	return nil
}

// casLost reports whether a write with an expectation lost to another
// writer: the key exists (a create), or is no longer at the revision given
// (an update). nats.go maps the server's "wrong last sequence" to
// ErrKeyExists or ErrKeyRevisionMismatch, but not everywhere: a create
// over a deleted key is retried as an update, and that update's refusal
// comes back unmapped, as code 10164 on a replicated stream.
func casLost(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// updateJSON reads, changes and writes key with compare-and-set, retrying
// when another writer won. With create false a missing key is ErrNotFound;
// with create true fn gets a zero value to fill.
func updateJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string, create bool, fn func(*T) error) (*T, error) {
	for attempt := range maxCASRetries {
		if attempt > 0 {
			// Another writer won the last round. On a cluster the read may
			// come from a replica that has not seen that write yet, and a
			// retry at once would read the same: wait a little longer each
			// time, at random, so that writers of one key spread out.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond)))):
			}
		}
		v := new(T)
		rev, err := getJSON(ctx, kv, key, v)
		if err != nil && !(create && errors.Is(err, notifier.ErrNotFound)) {
			return nil, err
		}
		if err := fn(v); err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s %q: %w", kv.Bucket(), key, err)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, b)
		} else {
			_, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return v, nil
		}
		if !casLost(err) {
			return nil, fmt.Errorf("write %s %q: %w", kv.Bucket(), key, err)
		}
	}
	return nil, fmt.Errorf("update %s %q: %w", kv.Bucket(), key, notifier.ErrConflict)
}

// eachJSON streams the newest value of every key matching filter (">" for
// all), decoding each into a fresh T. It pulls in small batches, so a large
// bucket (a plan over every subscriber) never piles up in this process's
// memory faster than fn takes it. decode is json.Unmarshal, or decodeHot
// for a bucket every plan reads whole.
func eachJSON[T any](ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, filter string, decode func([]byte, any) error, fn func(*T) error) error {
	bucket := kv.Bucket()
	cons, err := js.OrderedConsumer(ctx, "KV_"+bucket, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$KV." + bucket + "." + filter},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", bucket, err)
	}
	if info := cons.CachedInfo(); info == nil || info.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("list %s: %w", bucket, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("list %s: %w", bucket, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("list %s: %w", bucket, err)
		}
		switch msg.Headers().Get("KV-Operation") {
		case "DEL", "PURGE":
		default:
			v := new(T)
			if err := decode(msg.Data(), v); err != nil {
				return fmt.Errorf("decode %s %q: %w", bucket, strings.TrimPrefix(msg.Subject(), "$KV."+bucket+"."), err)
			}
			if err := fn(v); err != nil {
				return err
			}
		}
		if meta.NumPending == 0 {
			return nil
		}
	}
}

// leaderGet reads the newest revision of key in bucket from the leader of
// the bucket's stream, through the stream message-get API that only the
// leader answers, rather than a direct get that any replica may answer
// from behind: for a check that must see every write acknowledged before
// it. found is false when the key is missing, deleted or purged. A read
// that fails for want of a leader (an election, a node going away) is
// tried again for a few seconds, as a write's retries would be.
func leaderGet(ctx context.Context, js jetstream.JetStream, bucket, key string) (data []byte, rev uint64, found bool, err error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + key})
	for attempt := 0; ; attempt++ {
		data, rev, found, err = leaderGetOnce(ctx, js, bucket, req)
		if err == nil || attempt >= leaderGetTries-1 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(100*time.Millisecond<<attempt, time.Second)):
		}
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("get %s %q from the leader: %w", bucket, key, err)
	}
	return data, rev, found, nil
}

// leaderGetTries bounds leaderGet's attempts: about 5 s of waits.
const leaderGetTries = 8

func leaderGetOnce(ctx context.Context, js jetstream.JetStream, bucket string, req []byte) ([]byte, uint64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, 0, false, err
	}
	var resp struct {
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message struct {
			Seq    uint64 `json:"seq"`
			Header []byte `json:"hdrs"`
			Data   []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, 0, false, err
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == int(jetstream.JSErrCodeMessageNotFound) {
			return nil, 0, false, nil
		}
		return nil, 0, false, fmt.Errorf("%s (%d)", resp.Error.Description, resp.Error.ErrCode)
	}
	if bytes.Contains(resp.Message.Header, []byte(kvOperationHeader+":")) {
		// A delete or purge marker: the key's revision, but no value.
		return nil, resp.Message.Seq, false, nil
	}
	return resp.Message.Data, resp.Message.Seq, true, nil
}

// leaderGetJSON is leaderGet decoding the value into v.
func leaderGetJSON(ctx context.Context, js jetstream.JetStream, bucket, key string, v any) (found bool, err error) {
	data, _, found, err := leaderGet(ctx, js, bucket, key)
	if err != nil || !found {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s %q: %w", bucket, key, err)
	}
	return true, nil
}
