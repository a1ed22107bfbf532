/* test_config.c - defaults, precedence, validation messages and printing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"

static const char *const env_names[] = {
    "MEMSYNC_CONFIG",
    "MEMSYNC_DB",
    "MEMSYNC_LISTEN",
    "MEMSYNC_MASTER_KEY_FILE",
    "MEMSYNC_LOGIN_URL",
    "MEMSYNC_GRAPH_URL",
    "MEMSYNC_PARTNER_CENTER_URL",
    "MEMSYNC_CA_FILE",
    "MEMSYNC_LOG_LEVEL",
    "MEMSYNC_LOG_FORMAT",
    "MEMSYNC_SYNC_PARALLEL",
    "MEMSYNC_SYNC_RUNNER",
    "MEMSYNC_SYNC_COMMIT_MS",
};

static char cfg_path[64];

static int
setup(void **state)
{
    int fd;

    (void)state;
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
    snprintf(cfg_path, sizeof cfg_path, "/tmp/memsync-config-XXXXXX");
    fd = mkstemp(cfg_path);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    unlink(cfg_path);
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
    return 0;
}

static void
write_cfg(const char *text)
{
    FILE *f = fopen(cfg_path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void
test_defaults(void **state)
{
    struct config c;
    struct errbuf eb = {0};
    char key[CONFIG_VALUE_MAX];

    (void)state;
    assert_int_equal(config_load(&c, NULL, &eb), ERR_OK);
    assert_string_equal(c.db, "./memsync.db");
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.master_key_file, "");
    assert_string_equal(c.login_url, "https://login.microsoftonline.com");
    assert_string_equal(c.graph_url, "https://graph.microsoft.com");
    assert_string_equal(c.partner_center_url, "https://api.partnercenter.microsoft.com");
    assert_string_equal(c.ca_file, "");
    assert_string_equal(c.log_level, "info");
    assert_string_equal(c.log_format, "text");
    assert_int_equal(c.sync_parallel, 32);
    assert_int_equal(c.api_cache_mb, 64);
    config_master_key_path(&c, key, sizeof key);
    assert_string_equal(key, "./memsync.db.key");
    assert_int_equal(config_set(&c, "master_key_file", "/etc/memsync/key", &eb), ERR_OK);
    config_master_key_path(&c, key, sizeof key);
    assert_string_equal(key, "/etc/memsync/key");
    config_master_key_path(&c, key, 4); /* too small: empty, never a truncated path */
    assert_string_equal(key, "");
}

static void
test_precedence(void **state)
{
    struct config c;
    struct errbuf eb = {0};

    (void)state;
    write_cfg("# comment\n\n  db = /var/lib/file.db  \n"
              "listen = 0.0.0.0:9000\n"
              "log_level = debug\n"
              "graph_url = \"http://127.0.0.1:1234/\"\r\n"
              "sync_parallel = 4\n");
    assert_int_equal(config_load(&c, cfg_path, &eb), ERR_OK);
    assert_string_equal(c.db, "/var/lib/file.db");
    assert_string_equal(c.listen, "0.0.0.0:9000");
    assert_string_equal(c.graph_url, "http://127.0.0.1:1234"); /* trailing '/' dropped */
    assert_int_equal(c.sync_parallel, 4);

    setenv("MEMSYNC_DB", "/env.db", 1);
    setenv("MEMSYNC_LOG_LEVEL", "warn", 1);
    setenv("MEMSYNC_LOG_FORMAT", "", 1); /* empty counts as unset */
    assert_int_equal(config_load(&c, cfg_path, &eb), ERR_OK);
    assert_string_equal(c.db, "/env.db");          /* env > file */
    assert_string_equal(c.log_level, "warn");      /* env > file */
    assert_string_equal(c.listen, "0.0.0.0:9000"); /* file > default */
    assert_string_equal(c.log_format, "text");     /* default */
    assert_int_equal(config_set(&c, "db", "/flag.db", &eb), ERR_OK);
    assert_int_equal(config_set(&c, "log-level", "error", &eb), ERR_OK);
    assert_string_equal(c.db, "/flag.db"); /* flag > env */
    assert_string_equal(c.log_level, "error");
    /* config --show-origin says where each came from. */
    {
        char *out = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&out, &n);

        config_print_origin(&c, cfg_path, f);
        fclose(f);
        assert_non_null(strstr(out, "db = /flag.db  # flag --db\n"));
        assert_non_null(strstr(out, "log_level = error  # flag --log-level\n"));
        assert_non_null(strstr(out, "sync_parallel = 4  # file "));
        assert_non_null(strstr(out, "log_format = text  # default\n"));
        free(out);
    }
    setenv("MEMSYNC_LOG_FORMAT", "json", 1);
    assert_int_equal(config_load(&c, cfg_path, &eb), ERR_OK);
    {
        char *out = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&out, &n);

        config_print_origin(&c, cfg_path, f);
        fclose(f);
        assert_non_null(strstr(out, "log_format = json  # environment MEMSYNC_LOG_FORMAT\n"));
        assert_non_null(strstr(out, "db = /env.db  # environment MEMSYNC_DB\n"));
        free(out);
    }
    unsetenv("MEMSYNC_LOG_FORMAT");

    /* MEMSYNC_CONFIG names the file when no path is given. */
    unsetenv("MEMSYNC_DB");
    setenv("MEMSYNC_CONFIG", cfg_path, 1);
    assert_int_equal(config_load(&c, NULL, &eb), ERR_OK);
    assert_string_equal(c.db, "/var/lib/file.db");
}

static void
test_errors(void **state)
{
    struct config c;
    struct errbuf eb = {0};
    char want[256];
    char *longv;

    (void)state;
    write_cfg("db = x.db\n# fine\nfoo = 1\n");
    assert_int_equal(config_load(&c, cfg_path, &eb), ERR_INVAL);
    snprintf(want, sizeof want, "config file %s line 3: unknown key 'foo'", cfg_path);
    assert_string_equal(eb.msg, want);

    write_cfg("db\n");
    assert_int_equal(config_load(&c, cfg_path, &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "line 1"));

    write_cfg("graph_url = ftp://example.com\n");
    assert_int_equal(config_load(&c, cfg_path, &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "line 1"));
    assert_non_null(strstr(eb.msg, "http:// or https://"));

    write_cfg("");
    setenv("MEMSYNC_LOG_LEVEL", "loud", 1);
    assert_int_equal(config_load(&c, cfg_path, &eb), ERR_INVAL);
    assert_string_equal(eb.msg, "MEMSYNC_LOG_LEVEL: 'loud' is not one of error, warn, info, debug");
    unsetenv("MEMSYNC_LOG_LEVEL");

    setenv("MEMSYNC_SYNC_PARALLEL", "0", 1);
    assert_int_equal(config_load(&c, NULL, &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "MEMSYNC_SYNC_PARALLEL"));
    setenv("MEMSYNC_SYNC_PARALLEL", "12abc", 1);
    assert_int_equal(config_load(&c, NULL, &eb), ERR_INVAL);
    unsetenv("MEMSYNC_SYNC_PARALLEL");

    setenv("MEMSYNC_SYNC_RUNNER", "cluster", 1);
    assert_int_equal(config_load(&c, NULL, &eb), ERR_INVAL);
    assert_string_equal(eb.msg, "MEMSYNC_SYNC_RUNNER: 'cluster' is not one of serve, workers");
    setenv("MEMSYNC_SYNC_RUNNER", "workers", 1);
    assert_int_equal(config_load(&c, NULL, &eb), ERR_OK);
    assert_string_equal(c.sync_runner, "workers");
    unsetenv("MEMSYNC_SYNC_RUNNER");
    assert_int_equal(config_load(&c, NULL, &eb), ERR_OK);
    assert_string_equal(c.sync_runner, "serve");

    config_defaults(&c);
    assert_int_equal(config_set(&c, "log_format", "xml", &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "--log-format"));
    assert_string_equal(c.log_format, "text"); /* unchanged on error */
    assert_int_equal(config_set(&c, "listen", "localhost", &eb), ERR_INVAL);
    assert_int_equal(config_set(&c, "listen", "[::1]:70000", &eb), ERR_INVAL);
    assert_int_equal(config_set(&c, "listen", "[::1]:8443", &eb), ERR_OK);
    assert_int_equal(config_set(&c, "login_url", "https://", &eb), ERR_INVAL);
    assert_int_equal(config_set(&c, "nope", "1", &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "unknown setting 'nope'"));
    assert_int_equal(config_set(&c, "sync_parallel", "257", &eb), ERR_INVAL);
    assert_int_equal(config_set(&c, "sync_parallel", "256", &eb), ERR_OK);
    assert_int_equal(c.sync_parallel, 256);
    /* api_cache_mb: 0 turns the cache off; its own range, not sync_parallel's. */
    assert_int_equal(config_set(&c, "api_cache_mb", "0", &eb), ERR_OK);
    assert_int_equal(c.api_cache_mb, 0);
    assert_int_equal(config_set(&c, "api-cache-mb", "16384", &eb), ERR_OK);
    assert_int_equal(c.api_cache_mb, 16384);
    assert_int_equal(config_set(&c, "api_cache_mb", "16385", &eb), ERR_INVAL);
    assert_int_equal(config_set(&c, "api_cache_mb", "-1", &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "from 0 to 16384"));
    assert_int_equal(config_set(&c, "sync_parallel", "0", &eb), ERR_INVAL);
    assert_int_equal(c.api_cache_mb, 16384);
    setenv("MEMSYNC_API_CACHE_MB", "8", 1);
    assert_int_equal(config_load(&c, NULL, &eb), ERR_OK);
    assert_int_equal(c.api_cache_mb, 8);
    unsetenv("MEMSYNC_API_CACHE_MB");
    /* api_row_cache_mb: its own setting, same range. */
    assert_int_equal(c.api_row_cache_mb, 128);
    assert_int_equal(config_set(&c, "api_row_cache_mb", "0", &eb), ERR_OK);
    assert_int_equal(c.api_row_cache_mb, 0);
    assert_int_equal(c.api_cache_mb, 8);
    assert_int_equal(config_set(&c, "api_row_cache_mb", "16385", &eb), ERR_INVAL);
    setenv("MEMSYNC_API_ROW_CACHE_MB", "512", 1);
    assert_int_equal(config_load(&c, NULL, &eb), ERR_OK);
    assert_int_equal(c.api_row_cache_mb, 512);
    assert_int_equal(c.api_cache_mb, 64);
    unsetenv("MEMSYNC_API_ROW_CACHE_MB");

    /* intune_tenant_budget: conservative by default, never above 95 % of the per-app 2000. */
    assert_int_equal(c.intune_tenant_budget, 1000);
    assert_int_equal(config_set(&c, "intune-tenant-budget", "1900", &eb), ERR_OK);
    assert_int_equal(c.intune_tenant_budget, 1900);
    assert_int_equal(config_set(&c, "intune_tenant_budget", "1901", &eb), ERR_INVAL);
    assert_int_equal(config_set(&c, "intune_tenant_budget", "19", &eb), ERR_INVAL);
    setenv("MEMSYNC_INTUNE_TENANT_BUDGET", "400", 1);
    assert_int_equal(config_load(&c, NULL, &eb), ERR_OK);
    assert_int_equal(c.intune_tenant_budget, 400);
    unsetenv("MEMSYNC_INTUNE_TENANT_BUDGET");

    /* Too long: an error, never truncated. */
    longv = malloc(CONFIG_VALUE_MAX + 1);
    assert_non_null(longv);
    memset(longv, 'a', CONFIG_VALUE_MAX);
    longv[CONFIG_VALUE_MAX] = '\0';
    assert_int_equal(config_set(&c, "ca_file", longv, &eb), ERR_INVAL);
    assert_string_equal(c.ca_file, "");
    longv[CONFIG_VALUE_MAX - 1] = '\0';
    assert_int_equal(config_set(&c, "ca_file", longv, &eb), ERR_OK);
    assert_int_equal(strlen(c.ca_file), CONFIG_VALUE_MAX - 1);
    assert_int_equal(config_set(&c, "db", longv, &eb), ERR_INVAL); /* room for ".key" */
    free(longv);

    assert_int_equal(config_load(&c, "/nonexistent/memsync.conf", &eb), ERR_NOTFOUND);
    assert_int_equal(config_parse_text(&c, "mem", "db = a\0b\n", 9, &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "NUL"));
}

static void
test_print(void **state)
{
    struct config c;
    char out[4096];
    FILE *f;
    size_t n;

    (void)state;
    config_defaults(&c);
    f = fmemopen(out, sizeof out, "w");
    assert_non_null(f);
    config_print(&c, f);
    fclose(f);
    n = strlen(out);
    assert_true(n > 0);
    assert_non_null(strstr(out, "db = ./memsync.db\n"));
    assert_non_null(strstr(out, "listen = 127.0.0.1:8080\n"));
    assert_non_null(strstr(out, "graph_url = https://graph.microsoft.com\n"));
    assert_non_null(strstr(out, "sync_parallel = 32\n"));
    assert_non_null(strstr(out, "api_cache_mb = 64\n"));
    assert_non_null(strstr(out, "api_row_cache_mb = 128\n"));
    assert_non_null(strstr(out, "log_format = text\n"));
    /* What it prints parses back to the same settings. */
    {
        struct config d;
        struct errbuf eb = {0};
        config_defaults(&d);
        assert_int_equal(config_set(&d, "sync_parallel", "5", &eb), ERR_OK);
        assert_int_equal(config_parse_text(&d, "printed", out, n, &eb), ERR_OK);
        /* Where the values came from differs by design: d's are all from the "file". */
        assert_int_equal(d.origin[0], CONFIG_FROM_FILE);
        assert_int_equal(c.origin[0], CONFIG_FROM_DEFAULT);
        memcpy(d.origin, c.origin, sizeof d.origin);
        assert_memory_equal(&c, &d, sizeof c);
    }
}

static void
check_redact(const char *in, const char *want)
{
    char out[CONFIG_VALUE_MAX];

    config_redact_db(in, out, sizeof out);
    assert_string_equal(out, want);
}

static void
test_redact_db(void **state)
{
    struct config c;
    struct errbuf eb = {0};
    char out[4096];
    FILE *f;

    (void)state;
    check_redact("./memsync.db", "./memsync.db");
    check_redact("/var/lib/memsync/memsync.db", "/var/lib/memsync/memsync.db");
    check_redact("postgresql://memsync@db.example.com/memsync",
                 "postgresql://memsync@db.example.com/memsync");
    check_redact("postgresql://memsync:s3cr%40t@db.example.com:5432/memsync?sslmode=require",
                 "postgresql://memsync:****@db.example.com:5432/memsync?sslmode=require");
    check_redact("postgres://u:p@h/db", "postgres://u:****@h/db");
    check_redact("postgresql:///memsync?host=/run/postgresql&password=hunter2&sslmode=disable",
                 "postgresql:///memsync?host=/run/postgresql&password=****&sslmode=disable");
    check_redact("host=db user=memsync password=hunter2 dbname=memsync",
                 "host=db user=memsync password=**** dbname=memsync");
    check_redact("password='two words \\' x' host=db", "password=**** host=db");
    check_redact("host=db mypassword=x", "host=db mypassword=x");
    /* config prints the redacted URL. */
    config_defaults(&c);
    assert_int_equal(config_set(&c, "db", "postgresql://u:hunter2@h/db", &eb), ERR_OK);
    f = fmemopen(out, sizeof out, "w");
    assert_non_null(f);
    config_print(&c, f);
    fclose(f);
    assert_non_null(strstr(out, "db = postgresql://u:****@h/db\n"));
    assert_null(strstr(out, "hunter2"));
}

/* Environment-only variables: empty is unset, an integer outside its range is unset, and the
 * manual lists the ones people set but not the ones only tests set. */
static void
test_env(void **state)
{
    char out[32768];
    FILE *f;

    (void)state;
    unsetenv("MEMSYNC_NO_PROGRESS");
    assert_null(config_env("MEMSYNC_NO_PROGRESS"));
    setenv("MEMSYNC_NO_PROGRESS", "", 1);
    assert_null(config_env("MEMSYNC_NO_PROGRESS"));
    setenv("MEMSYNC_NO_PROGRESS", "1", 1);
    assert_string_equal(config_env("MEMSYNC_NO_PROGRESS"), "1");
    unsetenv("MEMSYNC_NO_PROGRESS");

    setenv("MEMSYNC_VALIDATE_SAMPLE", "3", 1);
    assert_string_equal(config_env("MEMSYNC_VALIDATE_SAMPLE"), "3");
    setenv("MEMSYNC_VALIDATE_SAMPLE", "101", 1);
    assert_null(config_env("MEMSYNC_VALIDATE_SAMPLE"));
    setenv("MEMSYNC_VALIDATE_SAMPLE", "2x", 1);
    assert_null(config_env("MEMSYNC_VALIDATE_SAMPLE"));
    unsetenv("MEMSYNC_VALIDATE_SAMPLE");

    /* The table's own variables are known too (the simulator reads its log settings so). */
    setenv("MEMSYNC_LOG_FORMAT", "json", 1);
    assert_string_equal(config_env("MEMSYNC_LOG_FORMAT"), "json");
    unsetenv("MEMSYNC_LOG_FORMAT");

    f = fmemopen(out, sizeof out, "w");
    assert_non_null(f);
    config_man(f);
    fclose(f);
    assert_non_null(strstr(out, ".B MEMSYNC_NO_PROGRESS\n"));
    assert_non_null(strstr(out, ".B MEMSYNC_MASTER_KEY\n"));
    assert_null(strstr(out, "MEMSYNC_NOW"));
    assert_null(strstr(out, "MEMSYNC_VALIDATE_SAMPLE"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redact_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
