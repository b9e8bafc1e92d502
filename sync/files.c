/*
 * files.c: the file-system helpers of files.h, shared by datadir.c,
 * backup.c and local.c.
 */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto/errors.h"

void spro_files__say(char *why, size_t whylen, const char *file, const char *problem)
{
    if (why != NULL)
        snprintf(why, whylen, "%s: %s", file, problem);
}

int spro_files__path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int spro_files__fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int spro_files__fsync_parent(const char *path)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    return spro_files__fsync_path(dirname(parent), O_RDONLY | O_DIRECTORY);
}

int spro_files__publish_dir(const char *tmp, const char *dir, char *why, size_t whylen)
{
    int rc = spro_files__fsync_path(tmp, O_RDONLY | O_DIRECTORY);
    if (rc != 0) {
        spro_files__say(why, whylen, tmp, spro_strerror(rc));
        return rc;
    }
    if (rename(tmp, dir) != 0) {
        rc = errno == ENOTEMPTY || errno == EEXIST ? SPRO_EEXISTS : -errno;
        spro_files__say(why, whylen, dir, spro_strerror(rc));
        return rc;
    }
    spro_files__fsync_parent(dir);
    return 0;
}

int spro_files__dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -errno;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}
