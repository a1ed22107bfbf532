/* report_zip_fuzzer.c - report_zip_csv and report_csv_parse on arbitrary bytes: never crash,
 * never hand out more than REPORT_MAX_COLS cells. */
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
row(void *arg, size_t r, const char *const *cells, size_t ncells)
{
    (void)arg;
    (void)r;
    ASSERT(ncells >= 1 && ncells <= REPORT_MAX_COLS);
    for (size_t i = 0; i < ncells; i++)
        ASSERT(cells[i] != NULL);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct errbuf eb;

    if (size > (1u << 20))
        return 0;
    (void)report_zip_csv(data, size, 1u << 22, row, NULL, &eb);
    (void)report_csv_parse((const char *)data, size, row, NULL, &eb);
    return 0;
}
