/* pacer.h - a sliding-window rate limiter: never more than `limit` sends in any `window_ms`.
 *
 * Microsoft counts requests in windows (Intune: 2000 per 20 s per app per tenant), so a token
 * bucket of the same rate could still burst past them; this remembers the send time of each of
 * the last `limit` sends instead. A struct pacer is caller-allocated (its fields are private)
 * and belongs to one thread. Memory: 8 bytes per unit of limit.
 */
#ifndef MEMSYNC_PACER_H
#define MEMSYNC_PACER_H

#include <stdint.h>

struct pacer {
    /* private */
    int64_t *ring;
    int limit;
    int count;
    int head;
    int64_t window_ms;
};

void pacer_init(struct pacer *p, int limit, int64_t window_ms); /* limit < 1 counts as 1 */
void pacer_free(struct pacer *p);                               /* NULL ring is fine */
/* Milliseconds to wait before n more sends fit (n above the limit counts as the limit);
 * 0 when they may go now. */
int64_t pacer_wait(const struct pacer *p, int n, int64_t now_ms);
/* Records n sends at now_ms. */
void pacer_note(struct pacer *p, int n, int64_t now_ms);

#endif
