package render

import (
	"strconv"
	"testing"

	"github.com/varsel/varsel/notifier"
)

// BenchmarkRenderUncached measures a full render (templates executed) per
// locale and channel: the cost paid once per (event, locale, channel, zone).
func BenchmarkRenderUncached(b *testing.B) {
	r := newTestRenderer(b, Config{})
	events, states := loadScenario(b, "styreweb")
	const id = "styreweb-2019-09-17-1000"
	for _, locale := range Locales {
		for _, ch := range notifier.ChannelNames {
			b.Run(locale+"/"+string(ch), func(b *testing.B) {
				sub := &notifier.Subscriber{ID: "s", Name: "Kari Nordmann", Locale: locale}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := r.Preview(events[id], states[id], sub, ch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRenderCached measures Render once the event part is cached: only
// the greeting, footer and unsubscribe token are per subscriber.
func BenchmarkRenderCached(b *testing.B) {
	r := newTestRenderer(b, Config{})
	events, states := loadScenario(b, "styreweb")
	const id = "styreweb-2019-09-17-1000"
	for _, locale := range Locales {
		for _, ch := range notifier.ChannelNames {
			b.Run(locale+"/"+string(ch), func(b *testing.B) {
				subs := make([]*notifier.Subscriber, 1024)
				for i := range subs {
					subs[i] = &notifier.Subscriber{ID: "s" + strconv.Itoa(i), Name: "Kari Nordmann", Locale: locale}
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := r.Render(events[id], states[id], subs[i%len(subs)], ch); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkFanout100k renders one event by email for 100,000 subscribers,
// half Norwegian and half English, on a fresh renderer each time: two
// template executions in all, the rest personalization.
func BenchmarkFanout100k(b *testing.B) {
	events, states := loadScenario(b, "styreweb")
	const id = "styreweb-2019-09-17-1000"
	subs := make([]*notifier.Subscriber, 100_000)
	for i := range subs {
		locale := "nb-NO"
		if i%2 == 1 {
			locale = "en-GB"
		}
		subs[i] = &notifier.Subscriber{ID: "sub-" + strconv.Itoa(i), Name: "Kari Nordmann", Locale: locale}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		r := newTestRenderer(b, Config{})
		b.StartTimer()
		for _, sub := range subs {
			if _, err := r.Render(events[id], states[id], sub, notifier.Email); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(subs)), "ns/subscriber")
}

// BenchmarkSignToken is the floor of personalization: signing the
// unsubscribe token.
func BenchmarkSignToken(b *testing.B) {
	tokens, err := notifier.NewTokens([]byte(testSecret))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		tokens.Sign(notifier.TokenClaims{Purpose: notifier.PurposeUnsubscribe, SubscriberID: "sub-12345", Channel: notifier.Email})
	}
}
