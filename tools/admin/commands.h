/*
 * commands.h: the spro-admin commands, one function each, by the file that
 * implements them; main.c lists them in its table.  Each parses its own
 * arguments (argv after the command's words), returns the exit status
 * (0 done, 1 failed, 2 usage error) and prints its own messages.
 */
#ifndef SPRO_ADMIN_COMMANDS_H
#define SPRO_ADMIN_COMMANDS_H

#include "cli.h"

/* The server address a ticket names when device invite has no --url. */
#define SPRO_ADMIN_DEFAULT_URL "http://127.0.0.1:8080"

#define SPRO_ADMIN_COMMAND(name)                                                                   \
    int spro_admin__cmd_##name(const struct command *c, const char *dir, int argc, char **argv)

/* init.c */
SPRO_ADMIN_COMMAND(init);
SPRO_ADMIN_COMMAND(info);

/* org.c */
SPRO_ADMIN_COMMAND(org_add);
SPRO_ADMIN_COMMAND(user_add);
SPRO_ADMIN_COMMAND(device_invite);
SPRO_ADMIN_COMMAND(device_list);
SPRO_ADMIN_COMMAND(device_revoke);
SPRO_ADMIN_COMMAND(device_wipe);

/* backup.c */
SPRO_ADMIN_COMMAND(backup);
SPRO_ADMIN_COMMAND(restore);
SPRO_ADMIN_COMMAND(check);
SPRO_ADMIN_COMMAND(quarantine_list);

/* audit.c */
SPRO_ADMIN_COMMAND(audit_verify);
SPRO_ADMIN_COMMAND(audit_show);
SPRO_ADMIN_COMMAND(audit_checkpoint);

/* subject.c */
SPRO_ADMIN_COMMAND(subject_export);
SPRO_ADMIN_COMMAND(subject_erase);
SPRO_ADMIN_COMMAND(retention_run);

/* keys.c */
SPRO_ADMIN_COMMAND(key_rotate);
SPRO_ADMIN_COMMAND(key_rewrap);
SPRO_ADMIN_COMMAND(key_status);
SPRO_ADMIN_COMMAND(key_change_master);

#endif
