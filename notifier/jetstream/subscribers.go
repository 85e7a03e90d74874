package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier"
)

// The address index lives in the subscribers bucket itself, under keys
// addrPrefix + notifier.AddressKey(address) (the SHA-256 hex of the
// lower-cased email or the E.164 phone, so no plain address is a key) whose
// value is the subscriber id. Subscriber ids have no dots, so Each, which
// reads single-token keys only, never sees an index key. Put, Update,
// Delete and PutMany keep the index; FindByAddress reads it in one lookup
// and checks the subscriber still has the address, so an entry left stale
// by a crash between the two writes finds nothing rather than the wrong
// subscriber.
const (
	addrPrefix = "addr."
	// addrIndexed marks a bucket whose subscribers are all indexed (set by
	// IndexAddresses once, for subscribers stored before the index).
	addrIndexed = "addr.indexed-v1"
)

func addrKey(addr string) string { return addrPrefix + notifier.AddressKey(addr) }

var _ notifier.AddressFinder = (*Subscribers)(nil)

// FindByAddress implements notifier.AddressFinder.
func (s *Subscribers) FindByAddress(ctx context.Context, addr string) (*notifier.Subscriber, error) {
	e, err := s.kv.Get(ctx, addrKey(addr))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("address %s: %w", maskAddress(addr), notifier.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("address %s: %w", maskAddress(addr), err)
	}
	sub, err := s.Get(ctx, string(e.Value()))
	if err != nil {
		return nil, err
	}
	if !sub.HasAddress(addr) {
		return nil, fmt.Errorf("address %s: %w", maskAddress(addr), notifier.ErrNotFound)
	}
	return sub, nil
}

func maskAddress(addr string) string {
	if len(addr) > 0 && addr[0] == '+' {
		return notifier.MaskPhone(addr)
	}
	return notifier.MaskEmail(addr)
}

// reindex points the index at id for every address in after, and drops the
// entries of addresses in before that id no longer has.
func (s *Subscribers) reindex(ctx context.Context, id string, before, after []string) error {
	keys := make([]string, 0, len(after))
	for _, a := range after {
		keys = append(keys, addrKey(a))
	}
	for _, a := range before {
		if k := addrKey(a); !slices.Contains(keys, k) {
			if err := s.unindex(ctx, id, k); err != nil {
				return err
			}
		}
	}
	for _, k := range keys {
		if e, err := s.kv.Get(ctx, k); err == nil && string(e.Value()) == id {
			continue
		}
		if _, err := s.kv.PutString(ctx, k, id); err != nil {
			return fmt.Errorf("index subscriber %s: %w", id, err)
		}
	}
	return nil
}

// unindex removes the index entry k if it still names id (another
// subscriber with the same address may have taken it since).
func (s *Subscribers) unindex(ctx context.Context, id, k string) error {
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unindex subscriber %s: %w", id, err)
	}
	if string(e.Value()) != id {
		return nil
	}
	// Purge, not delete: no earlier revision of the entry stays.
	err = s.kv.Purge(ctx, k, jetstream.LastRevision(e.Revision()))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("unindex subscriber %s: %w", id, err)
	}
	return nil
}

// IndexAddresses indexes every stored subscriber's addresses once: for a
// bucket written before the index existed. It returns how many subscribers
// it indexed; 0 when the bucket is indexed already.
func (s *Subscribers) IndexAddresses(ctx context.Context) (int, error) {
	if _, err := s.kv.Get(ctx, addrIndexed); err == nil {
		return 0, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("index addresses: %w", err)
	}
	n := 0
	err := s.Each(ctx, func(sub *notifier.Subscriber) error {
		n++
		return s.reindex(ctx, sub.ID, nil, sub.Addresses())
	})
	if err != nil {
		return n, fmt.Errorf("index addresses: %w", err)
	}
	if _, err := s.kv.PutString(ctx, addrIndexed, "1"); err != nil {
		return n, fmt.Errorf("index addresses: %w", err)
	}
	return n, nil
}

// A declined sign-up is remembered beside the address index, under
// addrKey(address) + declinedSuffix (three tokens: neither Each nor
// FindByAddress reads it), as the Unix seconds of the decline: the
// address's hash and a time, nothing else.
const declinedSuffix = ".declined"

// DeclineSignup remembers that the owner of addr cancelled a sign-up from
// its confirmation email at at (notifier/web.SignupDeclines).
func (s *Subscribers) DeclineSignup(ctx context.Context, addr string, at time.Time) error {
	if _, err := s.kv.PutString(ctx, addrKey(addr)+declinedSuffix, strconv.FormatInt(at.Unix(), 10)); err != nil {
		return fmt.Errorf("decline sign-up of %s: %w", maskAddress(addr), err)
	}
	return nil
}

// SignupDeclined returns when the owner of addr last cancelled a sign-up,
// if not before since; else the zero time, and a record older than since
// is erased.
func (s *Subscribers) SignupDeclined(ctx context.Context, addr string, since time.Time) (time.Time, error) {
	k := addrKey(addr) + declinedSuffix
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("sign-up declines of %s: %w", maskAddress(addr), err)
	}
	sec, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if at := time.Unix(sec, 0); err == nil && !at.Before(since.Truncate(time.Second)) {
		return at, nil
	}
	// Past its time: erase it, unless a new decline replaced it meanwhile.
	err = s.kv.Purge(ctx, k, jetstream.LastRevision(e.Revision()))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return time.Time{}, fmt.Errorf("sign-up declines of %s: %w", maskAddress(addr), err)
	}
	return time.Time{}, nil
}
