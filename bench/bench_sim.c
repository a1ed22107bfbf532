/* bench_sim.c - requests per second of small Graph requests against `memsync sim`.
 *
 * Forks the simulator in-process (sim_main) on 127.0.0.1:0 with no latency and no throttling,
 * takes a token, then keeps CONC keep-alive connections busy with
 * GET /graph/v1.0/deviceManagement/managedDevices/{id}?$select=id,deviceName for SECONDS.
 * Usage: bench_sim [SECONDS] [CONC]
 */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "mem.h"
#include "sim.h"

#define MAXCONC 256

static size_t
sink(char *p, size_t s, size_t n, void *arg)
{
    struct buf *b = arg;

    if (b)
        (void)buf_add(b, p, s * n);
    return s * n;
}

static int
env_get(const char *file, const char *key, char *out, size_t outlen)
{
    FILE *f = fopen(file, "r");
    char line[1024];
    size_t kl = strlen(key);
    int rc = ERR_NOTFOUND;

    if (f == NULL)
        return ERR_IO;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
            char *v = line + kl + 1;
            size_t n = strcspn(v, "\n");
            v[n] = '\0';
            if (*v == '\'' && n >= 2) {
                v[n - 1] = '\0';
                v++;
            }
            snprintf(out, outlen, "%s", v);
            rc = ERR_OK;
        }
    }
    fclose(f);
    return rc;
}

static int
fetch(const char *url, const char *post, const char *auth, struct buf *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    long code = 0;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (post)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    if (auth) {
        h = curl_slist_append(h, auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return (int)code;
}

int
main(int argc, char **argv)
{
    int seconds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5;
    int conc = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 32;
    char envfile[] = "/tmp/bench_sim_XXXXXX";
    char envpath[128], graph[256], login[256], sid[64], ssec[128], body[1024], auth[4096], url[512],
        tenant[64];
    struct buf b;
    pid_t pid;
    int fd;

    if (seconds < 1 || conc < 1 || conc > MAXCONC) {
        fprintf(stderr, "usage: bench_sim [SECONDS] [CONC<=%d]\n", MAXCONC);
        return 2;
    }
    fd = mkstemp(envfile);
    if (fd < 0)
        return 1;
    close(fd);
    unlink(envfile);
    snprintf(envpath, sizeof envpath, "%s", envfile);
    pid = fork();
    if (pid == 0) {
        char *sargv[] = {"sim",       "--listen", "127.0.0.1:0", "--env-file", envpath,
                         "--tenants", "1",        "--devices",   "50",         "--no-throttle",
                         "--threads", "2",        NULL};
        _exit(sim_main(12, sargv));
    }
    for (int i = 0; i < 600 && access(envpath, R_OK) != 0; i++)
        usleep(50 * 1000);
    if (env_get(envpath, "MEMSYNC_GRAPH_URL", graph, sizeof graph) != ERR_OK ||
        env_get(envpath, "MEMSYNC_LOGIN_URL", login, sizeof login) != ERR_OK ||
        env_get(envpath, "MEMSYNC_SIM_SYNC_APP_ID", sid, sizeof sid) != ERR_OK ||
        env_get(envpath, "MEMSYNC_SIM_SYNC_APP_SECRET", ssec, sizeof ssec) != ERR_OK) {
        fprintf(stderr, "bench_sim: simulator did not start\n");
        kill(pid, SIGTERM);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* the tenant id and a device id */
    buf_init(&b, 1 << 24);
    char world[300];
    snprintf(world, sizeof world, "%.*s/_sim/world", (int)(strlen(login) - 6), login);
    fetch(world, NULL, NULL, &b);
    json_t *w = json_loads(buf_cstr(&b), 0, NULL);
    snprintf(
        tenant, sizeof tenant, "%s",
        json_string_value(json_object_get(json_array_get(json_object_get(w, "tenants"), 0), "id")));
    json_decref(w);
    buf_reset(&b);
    {
        CURL *e = curl_easy_init();
        char *esc = curl_easy_escape(e, ssec, 0);
        snprintf(body, sizeof body,
                 "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=https%%3A%%2F"
                 "%%2Fgraph.microsoft.com%%2F.default",
                 sid, esc);
        curl_free(esc);
        curl_easy_cleanup(e);
    }
    snprintf(url, sizeof url, "%s/%s/oauth2/v2.0/token", login, tenant);
    fetch(url, body, NULL, &b);
    json_t *tok = json_loads(buf_cstr(&b), 0, NULL);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s",
             json_string_value(json_object_get(tok, "access_token")));
    json_decref(tok);
    buf_reset(&b);
    snprintf(url, sizeof url, "%s/v1.0/deviceManagement/managedDevices?$top=1&$select=id", graph);
    fetch(url, NULL, auth, &b);
    json_t *dl = json_loads(buf_cstr(&b), 0, NULL);
    snprintf(
        url, sizeof url, "%s/v1.0/deviceManagement/managedDevices/%s?$select=id,deviceName", graph,
        json_string_value(json_object_get(json_array_get(json_object_get(dl, "value"), 0), "id")));
    json_decref(dl);
    buf_free(&b);

    CURLM *m = curl_multi_init();
    struct curl_slist *hdr = curl_slist_append(NULL, auth);
    CURL *easy[MAXCONC];
    long done = 0, failed = 0;
    for (int i = 0; i < conc; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, NULL);
        curl_multi_add_handle(m, easy[i]);
    }
    int64_t start = clock_mono_ms(), end = start + seconds * 1000;
    int running = 1;
    while (clock_mono_ms() < end) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            long code = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            if (msg->data.result == CURLE_OK && code == 200)
                done++;
            else
                failed++;
            CURL *e = msg->easy_handle;
            curl_multi_remove_handle(m, e);
            curl_multi_add_handle(m, e);
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double secs = (double)(clock_mono_ms() - start) / 1000.0;
    printf("bench_sim: %ld requests in %.2f s = %.0f requests/s (%d connections, %ld failed)\n",
           done, secs, (double)done / secs, conc, failed);
    for (int i = 0; i < conc; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    curl_slist_free_all(hdr);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(envpath);
    return failed ? 1 : 0;
}
