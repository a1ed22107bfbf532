#include "pacer.h"

#include <stdlib.h>

#include "mem.h"

void
pacer_init(struct pacer *p, int limit, int64_t window_ms)
{
    p->limit = limit < 1 ? 1 : limit;
    p->ring = xcalloc((size_t)p->limit, sizeof *p->ring);
    p->cur = p->limit;
    p->count = 0;
    p->head = 0;
    p->window_ms = window_ms;
    p->changed_ms = 0;
    p->hold_ms = 0;
}

void
pacer_free(struct pacer *p)
{
    free(p->ring);
    p->ring = NULL;
}

/* The pace at now_ms from cur raised by a tenth per clean window since changed_ms; *at gets
 * the start of the window that raise belongs to. At most ~70 steps from 1 to any int limit. */
static int
pace_at(const struct pacer *p, int64_t now_ms, int64_t *at)
{
    int cur = p->cur;
    int64_t t = p->changed_ms;

    while (cur < p->limit && p->window_ms > 0 && now_ms - t >= p->window_ms) {
        cur += cur / 10 > 0 ? cur / 10 : 1;
        t += p->window_ms;
    }
    if (cur > p->limit)
        cur = p->limit;
    if (at != NULL)
        *at = t;
    return cur;
}

int
pacer_pace(const struct pacer *p, int64_t now_ms)
{
    return pace_at(p, now_ms, NULL);
}

int64_t
pacer_wait(const struct pacer *p, int n, int64_t now_ms)
{
    int over, oldest, pace;
    int64_t t, w = 0;

    if (p->ring == NULL)
        return 0;
    if (p->hold_ms > now_ms)
        w = p->hold_ms - now_ms;
    pace = pace_at(p, now_ms, NULL);
    if (n > pace)
        n = pace;
    over = p->count + n - pace; /* how many of the oldest sends must leave the window */
    if (over <= 0)
        return w;
    /* Until the ring wraps the oldest send is at 0; afterwards it is where head points. */
    oldest = p->count < p->limit ? 0 : p->head;
    t = p->ring[(oldest + over - 1) % p->limit];
    t = t + p->window_ms > now_ms ? t + p->window_ms - now_ms : 0;
    return t > w ? t : w;
}

void
pacer_note(struct pacer *p, int n, int64_t now_ms)
{
    if (p->ring == NULL)
        return;
    p->cur = pace_at(p, now_ms, &p->changed_ms);
    for (int i = 0; i < n; i++) {
        p->ring[p->head] = now_ms;
        p->head = (p->head + 1) % p->limit;
        if (p->count < p->limit)
            p->count++;
    }
}

int
pacer_cut(struct pacer *p, int floor, int64_t now_ms)
{
    int cur = pace_at(p, now_ms, NULL) / 2;

    if (floor > p->limit)
        floor = p->limit;
    if (cur < floor)
        cur = floor;
    if (cur < 1)
        cur = 1;
    p->cur = cur;
    p->changed_ms = now_ms;
    return cur;
}

void
pacer_hold(struct pacer *p, int64_t until_ms)
{
    if (until_ms > p->hold_ms)
        p->hold_ms = until_ms;
}
