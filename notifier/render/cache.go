package render

import (
	"container/list"
	"sync"

	"github.com/varsel/varsel/notifier"
)

// cacheKey is what a rendered event part depends on.
type cacheKey struct {
	eventID  string
	locale   string
	channel  notifier.ChannelName
	timezone string
}

// lru caches rendered event parts.
type lru = lruOf[cacheKey, *part]

func newLRU(max int) *lru { return newLRUOf[cacheKey, *part](max) }

// lruOf is a bounded map that drops the least recently used entry, so a
// long-running server's memory does not grow with every event or name.
type lruOf[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // front is the most recently used
	items map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	key K
	val V
}

func newLRUOf[K comparable, V any](max int) *lruOf[K, V] {
	return &lruOf[K, V]{max: max, order: list.New(), items: make(map[K]*list.Element)}
}

func (c *lruOf[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruItem[K, V]).val, true
}

func (c *lruOf[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value.(*lruItem[K, V]).val = v
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&lruItem[K, V]{key: k, val: v})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruItem[K, V]).key)
	}
}

func (c *lruOf[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
