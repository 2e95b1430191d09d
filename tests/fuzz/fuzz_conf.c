/*
 * fuzz_conf: configuration files and route conditions. The input is a
 * main file (omnigate.conf) loaded as the daemon loads it, and, split at
 * its first NUL or newline, a "when" condition compiled as the router
 * compiles it (core/config/conf.c, core/pipeline/router.c).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/conf.h"
#include "event/cond.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64], file[96];
    og__errlist_t errs = {NULL, 0};
    og__conf_t *c;
    og__cond_t *conds;
    size_t n, line;
    char why[256], *expr;
    FILE *f;

    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/og-fuzz-conf.XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
        snprintf(file, sizeof(file), "%s/omnigate.conf", dir);
    }
    if ((f = fopen(file, "wb")) == NULL)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    c = og__conf_load(dir, dir, &errs);
    og__conf_free(c);
    og__errlist_free(&errs);

    for (line = 0; line < size && data[line] != '\n' && data[line] != '\0';
         line++)
        ;
    expr = malloc(line + 1);
    if (expr == NULL)
        return 0;
    memcpy(expr, data, line);
    expr[line] = '\0';
    conds = og__conds_parse(expr, &n, why, sizeof(why));
    if (conds != NULL)
        og__conds_free(conds, n);
    free(expr);
    return 0;
}
