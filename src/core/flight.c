#include "flight.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"

enum { RUNNING = 1, DONE, FAILED, TOO_BIG };

/* Frees a slot nobody uses any more. Under f->mu. */
static void
slot_clear(struct flight_slot *s)
{
    free(s->key);
    free(s->res.bytes);
    memset(s, 0, sizeof *s);
}

/* The running flight of key, else -1. Under f->mu. */
static int
find_running(const struct flight *f, const void *key, size_t keylen)
{
    for (size_t i = 0; i < f->nslots && i < FLIGHT_MAX_SLOTS; i++) {
        const struct flight_slot *s = &f->slot[i];

        if (s->key != NULL && s->state == RUNNING && s->keylen == keylen &&
            memcmp(s->key, key, keylen) == 0)
            return (int)i;
    }
    return -1;
}

/* A free slot, else -1. Under f->mu. */
static int
find_free(const struct flight *f)
{
    for (size_t i = 0; i < f->nslots && i < FLIGHT_MAX_SLOTS; i++)
        if (f->slot[i].key == NULL)
            return (int)i;
    return -1;
}

enum flight_role
flight_begin(struct flight *f, const void *key, size_t keylen, int64_t wait_ms,
             struct flight_result *out, int *ticket)
{
    enum flight_role role = FLIGHT_ALONE;
    struct timespec deadline;
    int i;

    memset(out, 0, sizeof *out);
    *ticket = -1;
    if (keylen > FLIGHT_KEY_MAX)
        return FLIGHT_ALONE;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(wait_ms / 1000);
    deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    for (;;) {
        struct flight_slot *s;
        int timed_out = 0;

        if ((i = find_running(f, key, keylen)) < 0) {
            if ((i = find_free(f)) >= 0) {
                s = &f->slot[i];
                s->key = xmalloc(keylen + 1);
                memcpy(s->key, key, keylen);
                s->key[keylen] = '\0';
                s->keylen = keylen;
                s->state = RUNNING;
                *ticket = i;
                role = FLIGHT_LEADER;
            }
            break;
        }
        s = &f->slot[i];
        s->waiters++;
        while (s->state == RUNNING && !timed_out)
            timed_out = pthread_cond_timedwait(&f->cv, &f->mu, &deadline) == ETIMEDOUT;
        if (s->state == DONE) {
            *out = s->res;
            if (s->res.bytes != NULL) {
                out->bytes = xmalloc(s->res.len + 1);
                memcpy(out->bytes, s->res.bytes, s->res.len);
                out->bytes[s->res.len] = '\0';
            }
            role = FLIGHT_RESULT;
        }
        /* The last waiter of a finished flight frees its slot; a running one is the leader's. */
        if (--s->waiters == 0 && s->state != RUNNING)
            slot_clear(s);
        if (role == FLIGHT_RESULT || timed_out || s->state == TOO_BIG)
            break;
        /* The leader failed: start over, as the next leader or a waiter for it. */
    }
    pthread_mutex_unlock(&f->mu);
    return role;
}

void
flight_finish(struct flight *f, int ticket, int ok, int64_t value, const void *bytes, size_t len)
{
    struct flight_slot *s;

    if (ticket < 0 || (size_t)ticket >= FLIGHT_MAX_SLOTS)
        return;
    pthread_mutex_lock(&f->mu);
    s = &f->slot[ticket];
    if (s->waiters == 0) {
        slot_clear(s);
    } else if (!ok) {
        s->state = FAILED;
    } else if (len > FLIGHT_MAX_BYTES) {
        s->state = TOO_BIG;
    } else {
        s->res.value = value;
        if (bytes != NULL) {
            s->res.bytes = xmalloc(len + 1);
            memcpy(s->res.bytes, bytes, len);
            s->res.bytes[len] = '\0';
            s->res.len = len;
        }
        s->state = DONE;
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}
