package dns

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// cache holds packed answers by key, within a memory budget. It is split
// in shards so that readers on different cores rarely meet on a lock; a
// full shard drops entries at random (Go's map iteration order), expired
// ones first when it finds any.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]shard
	budget int // bytes per shard
	bytes  atomic.Int64
	count  atomic.Int64
}

const cacheShards = 32

type shard struct {
	mu    sync.RWMutex
	m     map[string]*entry
	bytes int
	_     [40]byte // keeps shards on different cache lines
}

func newCache(maxBytes int) *cache {
	c := &cache{seed: maphash.MakeSeed(), budget: max(maxBytes/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	return c
}

func (c *cache) shard(key []byte) *shard {
	return &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
}

func (c *cache) get(key []byte) *entry {
	s := c.shard(key)
	s.mu.RLock()
	e := s.m[string(key)]
	s.mu.RUnlock()
	return e
}

// put stores e under key, unless e alone exceeds a shard's budget.
func (c *cache) put(key []byte, e *entry, now int64) bool {
	size := e.size() + len(key)
	if size > c.budget {
		return false
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[string(key)]; ok {
		s.bytes -= old.size() + len(key)
		c.bytes.Add(-int64(old.size() + len(key)))
		c.count.Add(-1)
	}
	for k, old := range s.m {
		if s.bytes+size <= c.budget {
			break
		}
		// Look a little for an entry that can no longer be served.
		if old.staleUntil > now || old.staleUntil == 0 {
			tries := 8
			for k2, o2 := range s.m {
				if o2.staleUntil != 0 && o2.staleUntil <= now {
					k, old = k2, o2
					break
				}
				if tries--; tries == 0 {
					break
				}
			}
		}
		delete(s.m, k)
		s.bytes -= old.size() + len(k)
		c.bytes.Add(-int64(old.size() + len(k)))
		c.count.Add(-1)
	}
	s.m[string(key)] = e
	s.bytes += size
	c.bytes.Add(int64(size))
	c.count.Add(1)
	return true
}

// full says whether the cache holds budget bytes or more, for the
// authoritative answers, which stop being remembered then rather than
// evict each other.
func (c *cache) full(key []byte) bool {
	s := c.shard(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bytes >= c.budget
}
