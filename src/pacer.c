#include "pacer.h"

#include <stdlib.h>

#include "mem.h"

void
pacer_init(struct pacer *p, int limit, int64_t window_ms)
{
    p->limit = limit < 1 ? 1 : limit;
    p->ring = xcalloc((size_t)p->limit, sizeof *p->ring);
    p->count = 0;
    p->head = 0;
    p->window_ms = window_ms;
}

void
pacer_free(struct pacer *p)
{
    free(p->ring);
    p->ring = NULL;
}

int64_t
pacer_wait(const struct pacer *p, int n, int64_t now_ms)
{
    int over, oldest;
    int64_t t;

    if (p->ring == NULL)
        return 0;
    if (n > p->limit)
        n = p->limit;
    over = p->count + n - p->limit; /* how many of the oldest sends must leave the window */
    if (over <= 0)
        return 0;
    /* Until the ring wraps the oldest send is at 0; afterwards it is where head points. */
    oldest = p->count < p->limit ? 0 : p->head;
    t = p->ring[(oldest + over - 1) % p->limit];
    return t + p->window_ms > now_ms ? t + p->window_ms - now_ms : 0;
}

void
pacer_note(struct pacer *p, int n, int64_t now_ms)
{
    if (p->ring == NULL)
        return;
    for (int i = 0; i < n; i++) {
        p->ring[p->head] = now_ms;
        p->head = (p->head + 1) % p->limit;
        if (p->count < p->limit)
            p->count++;
    }
}
