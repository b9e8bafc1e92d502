/*
 * failsync.c: a preload library for the fail-stop test.  While the file
 * named by SPRO_FAILSYNC_FLAG exists, fsync() and fdatasync() fail with EIO,
 * as a dying disk makes them; otherwise they pass through to libc.  Loaded
 * into spro-server with LD_PRELOAD by tests/e2e/test_sync.c only.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);

static int failing(void)
{
    const char *flag = getenv("SPRO_FAILSYNC_FLAG");
    return flag != NULL && access(flag, F_OK) == 0;
}

int fsync(int fd)
{
    if (failing()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd)
{
    if (failing()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
