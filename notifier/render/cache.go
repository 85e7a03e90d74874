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

// lru is a bounded map that drops the least recently used entry, so a
// long-running server's memory does not grow with every event.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List // front is the most recently used
	items map[cacheKey]*list.Element
}

type lruItem struct {
	key cacheKey
	val *part
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: make(map[cacheKey]*list.Element, max)}
}

func (c *lru) get(k cacheKey) (*part, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruItem).val, true
}

func (c *lru) put(k cacheKey, v *part) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value.(*lruItem).val = v
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&lruItem{key: k, val: v})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruItem).key)
	}
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
