/* test_cursor.c - list cursors: every kind round-trips, the size bound holds both ways, and
 * anything cursor_encode cannot have written (garbage, truncation, tampering, non-canonical
 * numbers, bad UTF-8, trailing bytes) is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"

static char out[CURSOR_TEXT_MAX + 1];

static int
setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* base64url of raw bytes, as a client tampering with a cursor would write it. */
static const char *
b64(const char *raw, size_t n)
{
    static char txt[CURSOR_TEXT_MAX * 2];

    sodium_bin2base64(txt, sizeof txt, (const unsigned char *)raw, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return txt;
}

#define B64L(lit) b64(lit, sizeof lit - 1)

static void
test_positional_and_id(void **state)
{
    struct cursor c = {0}, d;

    (void)state;
    c.kind = 'o';
    c.n = 400;
    assert_int_equal(cursor_encode(&c, out, sizeof out), 0);
    assert_int_equal(cursor_decode(out, &d), 0);
    assert_int_equal(d.kind, 'o');
    assert_int_equal(d.n, 400);
    /* The format sorted lists used before keyset cursors still decodes. */
    assert_int_equal(cursor_decode(b64("o:200", 5), &d), 0);
    assert_int_equal(d.n, 200);
    c.kind = 'k';
    c.n = INT64_MAX;
    assert_int_equal(cursor_encode(&c, out, sizeof out), 0);
    assert_int_equal(cursor_decode(out, &d), 0);
    assert_int_equal(d.kind, 'k');
    assert_true(d.n == INT64_MAX);
    c.n = -1;
    assert_int_equal(cursor_encode(&c, out, sizeof out), -1);
    c.n = 1;
    assert_int_equal(cursor_encode(&c, out, 10), -1); /* a buffer below CURSOR_TEXT_MAX */
}

static void
test_seek_round_trip(void **state)
{
    struct store_sort ss[3] = {{"name", 0}, {"last_check_in_at", 1}, {"imei", 0}};
    struct cursor c = {0}, d;

    (void)state;
    c.kind = 's';
    c.sig = cursor_sort_sig("hardware", ss, 3);
    c.pos = 600;
    c.id = 123456789;
    c.nvals = 3;
    c.vals[0].kind = SC_TEXT;
    c.vals[0].s = "Élodie's \"MacBook\"; n;t3:x: 💻";
    c.vals[1].kind = SC_INT;
    c.vals[1].i = INT64_MIN;
    c.vals[2].kind = SC_NULL;
    assert_int_equal(cursor_encode(&c, out, sizeof out), 0);
    assert_null(strpbrk(out, "+/=")); /* URL-safe without padding */
    assert_int_equal(cursor_decode(out, &d), 0);
    assert_int_equal(d.kind, 's');
    assert_int_equal(d.sig, c.sig);
    assert_int_equal(d.pos, 600);
    assert_int_equal(d.id, 123456789);
    assert_int_equal(d.nvals, 3);
    assert_int_equal(d.vals[0].kind, SC_TEXT);
    assert_string_equal(d.vals[0].s, c.vals[0].s);
    assert_int_equal(d.vals[1].kind, SC_INT);
    assert_true(d.vals[1].i == INT64_MIN);
    assert_int_equal(d.vals[2].kind, SC_NULL);
    cursor_free(&d);

    /* An empty string is a value, not a NULL. */
    c.nvals = 1;
    c.vals[0].s = "";
    assert_int_equal(cursor_encode(&c, out, sizeof out), 0);
    assert_int_equal(cursor_decode(out, &d), 0);
    assert_int_equal(d.vals[0].kind, SC_TEXT);
    assert_string_equal(d.vals[0].s, "");
    cursor_free(&d);
}

static void
test_sort_sig(void **state)
{
    struct store_sort a[2] = {{"name", 0}, {"id", 1}};
    struct store_sort b[2] = {{"name", 1}, {"id", 1}};
    struct store_sort c[1] = {{"name", 0}};

    (void)state;
    assert_int_equal(cursor_sort_sig("hardware", a, 2), cursor_sort_sig("hardware", a, 2));
    assert_int_not_equal(cursor_sort_sig("hardware", a, 2), cursor_sort_sig("hardware", b, 2));
    assert_int_not_equal(cursor_sort_sig("hardware", a, 2), cursor_sort_sig("hardware", c, 1));
    assert_int_not_equal(cursor_sort_sig("hardware", c, 1), cursor_sort_sig("clients", c, 1));
}

static void
test_size_bound(void **state)
{
    struct cursor c = {0}, d;
    char *big = malloc(CURSOR_RAW_MAX + 1);
    char *txt = malloc(CURSOR_TEXT_MAX + 2);

    (void)state;
    assert_non_null(big);
    assert_non_null(txt);
    c.kind = 's';
    c.nvals = 1;
    c.vals[0].kind = SC_TEXT;
    c.vals[0].s = big;
    /* The largest value that fits: the whole text stays within CURSOR_TEXT_MAX. */
    memset(big, 'x', CURSOR_RAW_MAX - 40);
    big[CURSOR_RAW_MAX - 40] = '\0';
    assert_int_equal(cursor_encode(&c, out, sizeof out), 0);
    assert_true(strlen(out) <= CURSOR_TEXT_MAX);
    assert_int_equal(cursor_decode(out, &d), 0);
    assert_int_equal(strlen(d.vals[0].s), CURSOR_RAW_MAX - 40);
    cursor_free(&d);
    /* One that does not: refused (the API falls back to a positional cursor). */
    memset(big, 'x', CURSOR_RAW_MAX);
    big[CURSOR_RAW_MAX] = '\0';
    assert_int_equal(cursor_encode(&c, out, sizeof out), -1);
    /* Input longer than any cursor is refused before decoding. */
    memset(txt, 'A', CURSOR_TEXT_MAX + 1);
    txt[CURSOR_TEXT_MAX + 1] = '\0';
    assert_int_equal(cursor_decode(txt, &d), -1);
    free(big);
    free(txt);
}

static void
test_rejects_garbage(void **state)
{
    static const char *const raws[] = {
        "",
        "o",
        "o:",
        "o:-1",
        "o:01",
        "o:+1",
        "o: 1",
        "o:1x",
        "o:99999999999999999999",
        "k:1:",
        "x:1",
        "s:",
        "s:0000000:0:1:1:n;",          /* short signature */
        "s:0000000G:0:1:1:n;",         /* not hex */
        "s:0000000A:0:1:1:n;",         /* upper case */
        "s:00000000:0:1:0:",           /* no values */
        "s:00000000:0:1:5:n;n;n;n;n;", /* more than STORE_LIST_MAX_SORTS */
        "s:00000000:0:1:2:n;",         /* fewer values than said */
        "s:00000000:0:1:1:n;n;",       /* more values than said */
        "s:00000000:0:1:1:n",          /* no terminator */
        "s:00000000:0:1:1:q;",         /* unknown tag */
        "s:00000000:0:1:1:i;",         /* empty number */
        "s:00000000:0:1:1:i-0;",       /* negative zero */
        "s:00000000:0:1:1:i007;",      /* leading zeros */
        "s:00000000:0:1:1:t4:abc;",    /* length past the end */
        "s:00000000:0:1:1:t2:abc;",    /* length short of the terminator */
        "s:00000000:0:1:1:t01:a;",     /* non-canonical length */
        "s:00000000:-1:1:1:n;",        /* negative position */
        "s:00000000:0:-1:1:n;",        /* negative id */
        "s:00000000:0:1:1:n;x",        /* trailing bytes */
    };
    struct cursor d;

    (void)state;
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
        int rc = cursor_decode(b64(raws[i], strlen(raws[i])), &d);

        if (rc != -1)
            print_error("accepted: %s\n", raws[i]);
        assert_int_equal(rc, -1);
    }
    /* Text that is not valid UTF-8, or holds a NUL. */
    assert_int_equal(cursor_decode(B64L("s:00000000:0:1:1:t2:\xc3("
                                        ";"),
                                   &d),
                     -1);
    assert_int_equal(cursor_decode(B64L("s:00000000:0:1:1:t3:\xed\xa0\x80;"), &d), -1);
    assert_int_equal(cursor_decode(B64L("s:00000000:0:1:1:t1:\0;"), &d), -1);
    assert_int_equal(cursor_decode(B64L("s:00000000:0:1:1:t2:\xc0\xaf;"), &d), -1);
    /* The same layout with valid text decodes (the cases above fail on the text alone). */
    assert_int_equal(cursor_decode(B64L("s:00000000:0:1:1:t2:\xc3\xa9;"), &d), 0);
    cursor_free(&d);
    /* Not base64url at all, or with padding or the other alphabet. */
    assert_int_equal(cursor_decode("garbage!", &d), -1);
    assert_int_equal(cursor_decode("bzo1MA==", &d), -1);
    assert_int_equal(cursor_decode("bzo1MA+/", &d), -1);
    assert_int_equal(cursor_decode("", &d), -1);
    /* Random bytes: never accepted as anything but a well-formed cursor, never a crash. */
    for (int i = 0; i < 20000; i++) {
        char raw[64];
        size_t n = 1 + randombytes_uniform(sizeof raw);

        randombytes_buf(raw, n);
        if (i % 3 == 0)
            memcpy(raw, "s:00000000:0:1:1:", n < 17 ? n : 17);
        if (cursor_decode(b64(raw, n), &d) == 0) {
            char again[CURSOR_TEXT_MAX + 1];

            /* What decodes re-encodes to the same text. */
            assert_int_equal(cursor_encode(&d, again, sizeof again), 0);
            assert_string_equal(again, b64(raw, n));
            cursor_free(&d);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positional_and_id), cmocka_unit_test(test_seek_round_trip),
        cmocka_unit_test(test_sort_sig),          cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_rejects_garbage),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
