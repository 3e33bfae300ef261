/*
 * hash.c -- SipHash (Aumasson and Bernstein, 2012) and the process's random hash key.
 *
 * Map keys use SipHash-1-3, the reduced-round variant also chosen for hash tables elsewhere:
 * fast on the short keys that dominate, and still keyed. The key comes from getrandom() the
 * first time a key is hashed; if the kernel cannot supply it, the clock and addresses that
 * vary between runs stand in, which still defeats collisions computed in advance.
 */
#include "hash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint8_t process_key[16];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static atomic_bool key_made; /* set after key_once has run, so most calls skip it */

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);                                  \
        v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);                                  \
    } while (0)

static inline uint64_t siphash(int c, int d, const uint8_t key[16], const uint8_t *in, size_t len)
{
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575u, v1 = k1 ^ 0x646f72616e646f6du;
    uint64_t v2 = k0 ^ 0x6c7967656e657261u, v3 = k1 ^ 0x7465646279746573u;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        for (int r = 0; r < c; r++)
            SIPROUND;
        v0 ^= m;
    }
    /* The last word: the remaining bytes, and the length's low byte on top. */
    uint64_t m = (uint64_t)len << 56;
    const uint8_t *tail = in + whole;
    switch (len & 7) {
    case 7:
        m |= (uint64_t)tail[6] << 48; /* fall through */
    case 6:
        m |= (uint64_t)tail[5] << 40; /* fall through */
    case 5:
        m |= (uint64_t)tail[4] << 32; /* fall through */
    case 4:
        m |= (uint64_t)tail[3] << 24; /* fall through */
    case 3:
        m |= (uint64_t)tail[2] << 16; /* fall through */
    case 2:
        m |= (uint64_t)tail[1] << 8; /* fall through */
    case 1:
        m |= tail[0];
    }
    v3 ^= m;
    for (int r = 0; r < c; r++)
        SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    for (int r = 0; r < d; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t rs__siphash(int c, int d, const uint8_t key[16], const void *data, size_t len)
{
    return siphash(c, d, key, data, len);
}

static void make_key(void)
{
    size_t got = 0;
    while (got < sizeof process_key) {
        ssize_t n = getrandom(process_key + got, sizeof process_key - got, GRND_NONBLOCK);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == sizeof process_key)
        return;
    /* No entropy from the kernel (very early boot, or a seccomp filter): fall back to what
     * differs between runs, mixed through SipHash itself. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uintptr_t stir[4] = {(uintptr_t)ts.tv_sec, (uintptr_t)ts.tv_nsec, (uintptr_t)&ts,
                         (uintptr_t)&make_key};
    uint64_t a = siphash(2, 4, process_key, (const uint8_t *)stir, sizeof stir);
    stir[0] ^= (uintptr_t)a;
    uint64_t b = siphash(2, 4, process_key, (const uint8_t *)stir, sizeof stir);
    memcpy(process_key, &a, 8);
    memcpy(process_key + 8, &b, 8);
}

uint64_t rs__hash_key(const char *key, size_t len)
{
    if (!atomic_load_explicit(&key_made, memory_order_acquire)) {
        pthread_once(&key_once, make_key);
        atomic_store_explicit(&key_made, true, memory_order_release);
    }
    return siphash(1, 3, process_key, (const uint8_t *)key, len);
}
