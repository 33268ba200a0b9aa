/* kvtouch: a small program recorded with valgrind lackey for uvm-emu's trace replay tests.
 * A 6 MiB heap (1536 pages) used as a toy key-value table in three phases:
 *   1. fill: write a header word into every page, in order;
 *   2. skewed updates: read-modify-write of random slots, 7/8 of them in a 64-page hot set;
 *   3. moving window: reads and writes inside a 256-page window that slides 4 times.
 * Build: gcc -O2 -static -o kvtouch kvtouch.c
 * Record: valgrind --tool=lackey --trace-mem=yes --log-file=kvtouch.lackey ./kvtouch
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGES 1536u
#define PG 4096u
#define SLOTS (PG / sizeof(uint64_t))

static uint64_t state = 88172645463325252ull;

static inline uint64_t next(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

int main(void)
{
	uint64_t *heap = malloc((size_t)PAGES * PG);
	uint64_t sum = 0;
	unsigned i, w;

	if (heap == NULL)
		return 1;
	for (i = 0; i < PAGES; i++)
		heap[(size_t)i * SLOTS] = i;
	for (i = 0; i < 40000; i++) {
		uint64_t x = next();
		unsigned page = (x & 7) ? (unsigned)(x >> 8) % 64u : (unsigned)(x >> 8) % PAGES;
		heap[(size_t)page * SLOTS + (x >> 40) % SLOTS] += x;
	}
	for (w = 0; w < 4; w++) {
		for (i = 0; i < 10000; i++) {
			uint64_t x = next();
			size_t slot = (size_t)(w * 256u + (unsigned)(x >> 8) % 256u) * SLOTS + (x >> 40) % SLOTS;
			if (x & 3)
				sum += heap[slot];
			else
				heap[slot] = sum;
		}
	}
	printf("%llu\n", (unsigned long long)sum);
	return 0;
}
