/*
 * spro-server: parses the configuration and runs the server.
 * Exit status: 0 after a clean shutdown (or --help), 2 for a bad
 * configuration, 1 if the server could not start.
 */
#include "server.h"
#include "crypto/crypto.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    static struct spro_server_config cfg;
    int rc = spro_server_config_load(&cfg, argc, argv);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return 2;
    /* Keys live in this process's memory: never write them to a core file. */
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    umask(077); /* databases and WAL files hold sealed data: owner only */
    char threads[16];
    snprintf(threads, sizeof threads, "%u", cfg.workers);
    setenv("UV_THREADPOOL_SIZE", threads, 1); /* read by libuv at first use */
    if (spro_crypto_init() != 0) {
        fprintf(stderr, "spro-server: cannot initialise libsodium\n");
        return 1;
    }
    return spro_server_run(&cfg) == 0 ? 0 : 1;
}
