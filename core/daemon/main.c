/*
 * main.c: omnigated's command line.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omnigate/og_version.h>

#include "daemon/admin.h"
#include "daemon/daemon.h"
#include "net/http_client.h"
#include "base/log.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: omnigated [-c PATH] [--check-config] [--plugin-dir DIR]\n"
        "                 [--state-dir DIR] [--log-level LEVEL] "
        "[--test-clock]\n"
        "       omnigated --version\n"
        "\n"
        "  -c, --config PATH     configuration directory or main file\n"
        "                        (default %s)\n"
        "      --check-config    validate the configuration and the plugins\n"
        "                        it names, start nothing; exit 0 when valid,\n"
        "                        78 otherwise\n"
        "      --plugin-dir DIR  load plugins from DIR instead of plugin_dir\n"
        "      --state-dir DIR   keep the store in DIR instead of state_dir\n"
        "      --log-level LEVEL error, warning, notice, info or debug\n"
        "      --test-clock      let POST /v1/test/clock on the admin API\n"
        "                        move the journeys' clock (tests only)\n"
        "  -V, --version         print version and plugin ABI\n"
        "  -h, --help            this text\n",
        OGCONFDIR);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"plugin-dir", required_argument, NULL, 'P'},
        {"state-dir", required_argument, NULL, 'S'},
        {"log-level", required_argument, NULL, 'L'},
        {"test-clock", no_argument, NULL, 'T'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf = OGCONFDIR, *plugin_dir = NULL, *state_dir = NULL;
    int check = 0, c, rc, test_clock = 0;
    og_log_level_t level;

    while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 'C': check = 1; break;
        case 'P': plugin_dir = optarg; break;
        case 'S': state_dir = optarg; break;
        case 'T': test_clock = 1; break;
        case 'L':
            if (og__log_level_parse(optarg, &level) != 0) {
                fprintf(stderr, "omnigated: unknown log level '%s'\n", optarg);
                return 64;
            }
            og__log_set_level(level);
            og__log_lock_level();
            break;
        case 'V':
            printf("omnigated %s\nplugin ABI %d.%d\n", PACKAGE_VERSION,
                   OG_SDK_ABI_MAJOR, OG_SDK_ABI_MINOR);
            return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 64; /* EX_USAGE */
        }
    }
    if (optind < argc) {
        fprintf(stderr, "omnigated: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 64;
    }

    if (check) {
        og__errlist_t errs = {NULL, 0};
        og__conf_t *cf;
        size_t i, enabled = 0;

        /* warnings too: what is valid but likely wrong (a URL attribute
         * without {{url:...}}) is said, and the check still passes */
        og__log_set_level(OG_LOG_WARNING);
        cf = og__check_config(conf, plugin_dir, &errs);
        if (cf == NULL) {
            for (i = 0; i < errs.n; i++)
                fprintf(stderr, "%s\n", errs.v[i]);
            fprintf(stderr,
                    "omnigated: configuration invalid: %zu problem(s)\n",
                    errs.n);
            og__errlist_free(&errs);
            return OG__EXIT_CONFIG;
        }
        for (i = 0; i < cf->nchannels; i++)
            enabled += cf->channels[i].enabled ? 1 : 0;
        printf("configuration OK: %s, %zu channel(s), %zu enabled, %zu "
               "route(s), %zu template(s), %zu journey(s)\n",
               cf->main_file, cf->nchannels, enabled, cf->nroutes,
               cf->ntemplates, cf->njourneys);
        og__conf_free(cf);
        return 0;
    }

    /* libcurl (and the TLS library behind it) is initialised on first
     * use by the HTTP client, so a daemon whose channels never call out
     * does not carry it in memory. */
    rc = og__daemon_run(conf, plugin_dir, state_dir, test_clock,
                        og__admin_mount);
    og__http_global_cleanup();
    return rc;
}
