// The few libc functions the policy and its wit-bindgen C bindings need, written here so
// the module links with -nostdlib: wasi-libc would bring in its startup code and, with
// it, WASI imports that rmhost does not provide to C policies.
//
// Allocator: power-of-two size classes with one free list each, carved from a bump
// region grown with memory.grow. The hot pattern is steady (the host's event list and the
// answer list are allocated and freed once per call, at similar sizes), so blocks are
// reused from the free lists and memory stays flat; the node array's doubling leaves old
// blocks for later reuse. Single-threaded: components are.

#include <stddef.h>
#include <stdint.h>

#define HEADER 8u          // keeps payloads 8-aligned (enough for u64 lists)
#define MIN_SHIFT 4u       // smallest class: 16 bytes including the header
#define CLASSES 40u

extern unsigned char __heap_base;

static uintptr_t bump, bump_end;
static void *free_lists[CLASSES];

__attribute__((noreturn)) void abort(void) { __builtin_trap(); }

static unsigned class_of(size_t total) {
  unsigned c = 0;
  while (((size_t)1 << (c + MIN_SHIFT)) < total) c++;
  return c;
}

static void *carve(size_t bytes) {
  if (bump == 0) bump = bump_end = ((uintptr_t)&__heap_base + 7u) & ~(uintptr_t)7u;
  if (bytes > bump_end - bump) {
    size_t pages = (bytes - (bump_end - bump) + 65535u) / 65536u;
    if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
    bump_end += pages * 65536u;
  }
  void *p = (void *)bump;
  bump += bytes;
  return p;
}

void *malloc(size_t n) {
  if (n > ((size_t)1 << 31)) return NULL;
  unsigned c = class_of(n + HEADER);
  if (c >= CLASSES) return NULL;
  unsigned char *block = free_lists[c];
  if (block) {
    free_lists[c] = *(void **)(block + HEADER);
  } else {
    block = carve((size_t)1 << (c + MIN_SHIFT));
    if (!block) return NULL;
  }
  *(uint32_t *)block = c;
  return block + HEADER;
}

void free(void *p) {
  if (!p) return;
  unsigned char *block = (unsigned char *)p - HEADER;
  unsigned c = *(uint32_t *)block;
  *(void **)p = free_lists[c];
  free_lists[c] = block;
}

void *memcpy(void *restrict d, const void *restrict s, size_t n) {
  unsigned char *dd = d;
  const unsigned char *ss = s;
  while (n--) *dd++ = *ss++;
  return d;
}

void *memset(void *d, int v, size_t n) {
  unsigned char *dd = d;
  while (n--) *dd++ = (unsigned char)v;
  return d;
}

void *realloc(void *p, size_t n) {
  if (!p) return malloc(n);
  unsigned c = *(uint32_t *)((unsigned char *)p - HEADER);
  size_t usable = ((size_t)1 << (c + MIN_SHIFT)) - HEADER;
  if (n <= usable) return p;
  void *q = malloc(n);
  if (!q) return NULL;
  memcpy(q, p, usable);
  free(p);
  return q;
}

void *calloc(size_t k, size_t n) {
  if (n && k > (size_t)-1 / n) return NULL;
  void *p = malloc(k * n);
  if (p) memset(p, 0, k * n);
  return p;
}

size_t strlen(const char *s) {
  const char *e = s;
  while (*e) e++;
  return (size_t)(e - s);
}
