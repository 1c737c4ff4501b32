// LRU eviction in C: the same rules and the same victims as the Rust `lru` policy and the
// host's native LRU (host/abi/src/lru.rs).
//
// Entries form a doubly-linked list in one array of nodes indexed by the host's dense ids
// (head = most recently used). Insert, hit and update move an entry to the head (an insert
// of a live id counts as an update); remove unlinks it; victims are read from the tail
// until `bytes_to_free` are freed or `max_count` ids are chosen, and stay linked until the
// host's remove events arrive. Events are decoded as the Rust SDK does: a trailing partial
// event is ignored, an unknown kind byte skips the event, ids >= UINT32_MAX are ignored.
//
// No libc is linked: this file and the generated bindings use wasi-libc's headers only and
// link against alloc.c (-nostdlib), so the component imports no WASI at all.

#include <stdint.h>
#include <stddef.h>

#include "eviction_policy.h"
#include <stdlib.h>

#define NIL UINT32_MAX

typedef struct {
  uint32_t prev;
  uint32_t next;
  uint64_t size;
  uint8_t live;
} node_t;

static node_t *nodes;      // indexed by id
static uint32_t n_nodes;   // slots allocated
static uint32_t head = NIL, tail = NIL;

// Cold path, out of the event loop: at least doubles, so growth is O(log n) copies.
__attribute__((noinline, cold)) static void grow(uint32_t want) {
  uint32_t n = n_nodes ? n_nodes : 64;
  while (n < want) {
    n = n > UINT32_MAX / 2 ? UINT32_MAX : n * 2;
  }
  nodes = (node_t *)realloc(nodes, (size_t)n * sizeof(node_t));
  for (uint32_t i = n_nodes; i < n; i++) {
    nodes[i] = (node_t){NIL, NIL, 0, 0};
  }
  n_nodes = n;
}

static inline void unlink_node(uint32_t i) {
  uint32_t prev = nodes[i].prev, next = nodes[i].next;
  if (prev == NIL) head = next; else nodes[prev].next = next;
  if (next == NIL) tail = prev; else nodes[next].prev = prev;
}

static inline void push_front(uint32_t i) {
  uint32_t old = head;
  nodes[i].prev = NIL;
  nodes[i].next = old;
  if (old == NIL) tail = i; else nodes[old].prev = i;
  head = i;
}

// An access of a live entry (hit, or update when `set_size`).
static inline void touch(uint32_t i, int set_size, uint64_t size) {
  if (i >= n_nodes || !nodes[i].live) return;
  if (set_size) nodes[i].size = size;
  if (head != i) {
    unlink_node(i);
    push_front(i);
  }
}

static inline void insert(uint32_t i, uint64_t size) {
  if (i >= n_nodes) grow(i + 1);
  if (nodes[i].live) {  // never sent by the host; like the native LRU, an update
    touch(i, 1, size);
    return;
  }
  nodes[i] = (node_t){NIL, NIL, size, 1};
  push_front(i);
}

static inline void remove_node(uint32_t i) {
  if (i >= n_nodes || !nodes[i].live) return;
  unlink_node(i);
  nodes[i] = (node_t){NIL, NIL, 0, 0};
}

void exports_rmhost_policy_eviction_configure(uint64_t capacity_bytes, uint32_t expected_entries) {
  (void)capacity_bytes;
  // Dense ids: the expected entry count bounds the array, so growth leaves the first batches.
  if (expected_entries > n_nodes) grow(expected_entries);
}

void exports_rmhost_policy_eviction_observe(eviction_policy_list_u64_t *events, uint64_t bytes_to_free,
                                            uint32_t max_count, eviction_policy_list_u64_t *ret) {
  const uint64_t *e = events->ptr;
  size_t n = events->len / 3;
  for (size_t k = 0; k < n; k++, e += 3) {
    uint64_t id = e[0];
    if (id >= NIL) continue;
    switch ((uint8_t)(e[2] >> 8)) {
      case 0: insert((uint32_t)id, e[1]); break;
      case 1: touch((uint32_t)id, 0, 0); break;
      case 2: touch((uint32_t)id, 1, e[1]); break;
      case 3: remove_node((uint32_t)id); break;
      default: break;  // unknown kind: skipped
    }
  }
  eviction_policy_list_u64_free(events);

  ret->ptr = NULL;
  ret->len = 0;
  if (bytes_to_free == 0 || max_count == 0) return;
  // Count first, so the answer is one exact allocation (the host frees it after the call).
  uint64_t freed = 0;
  size_t count = 0;
  for (uint32_t cur = tail; cur != NIL && freed < bytes_to_free && count < max_count; cur = nodes[cur].prev) {
    uint64_t s = nodes[cur].size;
    freed = freed + s < freed ? UINT64_MAX : freed + s;  // saturating, as in Rust
    count++;
  }
  if (count == 0) return;
  uint64_t *out = (uint64_t *)malloc(count * sizeof(uint64_t));
  uint32_t cur = tail;
  for (size_t k = 0; k < count; k++, cur = nodes[cur].prev) out[k] = cur;
  ret->ptr = out;
  ret->len = count;
}
