/* pacer.h - a sliding-window rate limiter: never more than `limit` sends in any `window_ms`.
 *
 * Microsoft counts requests in windows (Intune: 2000 per 20 s per app per tenant), so a token
 * bucket of the same rate could still burst past them; this remembers the send time of each of
 * the last `limit` sends instead. A struct pacer is caller-allocated (its fields are private)
 * and belongs to one thread. Memory: 8 bytes per unit of limit.
 *
 * Adaptive pace: `limit` is the budget, the most ever allowed. pacer_cut() (the service said
 * 429) halves the current pace, never below a floor; every whole window after the last cut or
 * raise without a cut (a clean window) raises it by a tenth (at least 1), up to the budget.
 * pacer_hold() stops every send until a time (a 429 without Retry-After: the window must pass).
 */
#ifndef MEMSYNC_PACER_H
#define MEMSYNC_PACER_H

#include <stdint.h>

struct pacer {
    /* private */
    int64_t *ring;
    int limit; /* the budget: size of ring */
    int cur;   /* the current pace, 1..limit, as of changed_ms */
    int count;
    int head;
    int64_t window_ms;
    int64_t changed_ms; /* when cur was last cut or raised */
    int64_t hold_ms;    /* no sends before this */
};

void pacer_init(struct pacer *p, int limit, int64_t window_ms); /* limit < 1 counts as 1 */
void pacer_free(struct pacer *p);                               /* NULL ring is fine */
/* Milliseconds to wait before n more sends fit (n above the current pace counts as the pace);
 * 0 when they may go now. */
int64_t pacer_wait(const struct pacer *p, int n, int64_t now_ms);
/* Records n sends at now_ms. */
void pacer_note(struct pacer *p, int n, int64_t now_ms);
/* The pace (sends per window) in force at now_ms. */
int pacer_pace(const struct pacer *p, int64_t now_ms);
/* Halves the pace at now_ms, never below min(floor, limit); returns the new pace. */
int pacer_cut(struct pacer *p, int floor, int64_t now_ms);
/* No sends before until_ms (an earlier hold than one in force changes nothing). */
void pacer_hold(struct pacer *p, int64_t until_ms);

#endif
