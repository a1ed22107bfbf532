/* cli_webhook.c - `memsync webhook test` (cli_int.h): one signed delivery to a URL, through the
 * same checks and signature as every webhook. */
#include "cli.h"
#include "cli_int.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "guid.h"
#include "opt.h"
#include "webhook.h"

#define SECRET_FILE_MAX 256

/* The secret's bytes from path ("-": stdin), trailing whitespace dropped. */
static int
read_secret_file(const char *path, unsigned char *out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t n;

    if (f == NULL)
        return -1;
    n = fread(out, 1, SECRET_FILE_MAX, f);
    if (f != stdin)
        fclose(f);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    *len = n;
    return n > 0 && n < SECRET_FILE_MAX ? 0 : -1;
}

int
cli_cmd_webhook(struct ctx *cx, int argc, char **argv)
{
    static const char usage[] =
        "usage: memsync webhook test URL --secret-file FILE [--event NAME]\n"
        "Sends one signed test delivery to URL (https, or http to a host in "
        "MEMSYNC_WEBHOOK_HTTP_HOSTS; private and loopback addresses need "
        "MEMSYNC_WEBHOOK_ALLOW_PRIVATE) and prints the answer's status and latency.\n";
    const char *file = NULL, *event = "test", *pos[2] = {NULL, NULL};
    const struct opt opts[] = {
        {"secret-file", 1, &file, NULL},
        {"event", 1, &event, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct webhook_policy p;
    struct webhook_result res;
    struct errbuf eb = {0};
    unsigned char secret[SECRET_FILE_MAX];
    char hosts[1024], body[256], id[40], at[32];
    size_t slen = 0;
    int npos = 0, help = 0, rc, n;

    if (opt_parse("webhook", argc, argv, opts, pos, 2, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (npos != 2 || strcmp(pos[0], "test") != 0 || file == NULL || strlen(event) > 64 ||
        strspn(event, "abcdefghijklmnopqrstuvwxyz._") != strlen(event)) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    if (read_secret_file(file, secret, &slen) != 0) {
        fprintf(stderr, "memsync webhook: cannot read a secret from %s\n", file);
        return CLI_USAGE;
    }
    webhook_policy_from_env(&p, hosts, sizeof hosts, cx->cfg.ca_file);
    guid_random(id);
    clock_fmt(clock_now(), at, sizeof at);
    n = snprintf(body, sizeof body, "{\"id\":\"%s\",\"event\":\"%s\",\"at\":\"%s\",\"data\":{}}",
                 id, event, at);
    rc = webhook_deliver(&p, pos[1], secret, slen, event, id, body, (size_t)n, &res, &eb);
    sodium_memzero(secret, sizeof secret);
    if (rc != ERR_OK) {
        fprintf(stderr, "memsync webhook: %s\n", eb.msg);
        return rc == ERR_DENIED ? CLI_USAGE : CLI_FAIL;
    }
    printf("status=%ld latency_ms=%" PRId64 "\n", res.status, res.latency_ms);
    return res.status >= 200 && res.status < 300 ? CLI_OK : CLI_FAIL;
}
