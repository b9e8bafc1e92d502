/*
 * files.h: small file-system helpers shared by the files of sync/ that
 * work on paths (datadir.c, backup.c, local.c).  Internal to sync/.
 */
#ifndef SPRO_SYNC_FILES_H
#define SPRO_SYNC_FILES_H

#include <stddef.h>

/* Puts "file: problem" into the caller's explanation buffer why (whylen
 * bytes, cut to fit); does nothing when why is NULL. */
void spro_files__say(char *why, size_t whylen, const char *file, const char *problem);

/* Writes "dir/name" into out (cap bytes).  Returns 0, or -ENAMETOOLONG
 * when it does not fit (out then holds a cut string). */
int spro_files__path_join(char *out, size_t cap, const char *dir, const char *name);

/* Opens path with flags (O_CLOEXEC added), fsyncs it and closes it.
 * Returns 0 or -errno of the open or the fsync. */
int spro_files__fsync_path(const char *path, int flags);

/* 1 if the directory path has no entry but "." and "..", 0 if it has one;
 * -errno if it cannot be opened or read. */
int spro_files__dir_empty(const char *path);

/* fsyncs the directory that holds path (its dirname).  0 or -errno. */
int spro_files__fsync_parent(const char *path);

/* Publishes the directory tmp, complete, as dir: fsyncs tmp, renames it to
 * dir, then fsyncs dir's parent.  Returns 0, or SPRO_EEXISTS (dir exists
 * and is not empty) or -errno with why set ("path: problem"); tmp is then
 * left for the caller to remove. */
int spro_files__publish_dir(const char *tmp, const char *dir, char *why, size_t whylen);

#endif
