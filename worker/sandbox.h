/*
 * sandbox.h - confining a worker process before it loads any plugin.
 *
 * A plugin is third-party code running as the service user.  Before the
 * first dlopen the worker:
 *   - restricts its filesystem view with Landlock: read-only access to
 *     the plugin directory, the system's libraries and the few files
 *     libc and TLS read (/usr, /lib*, parts of /etc, /proc/self), and no
 *     write, create, remove or execute anywhere: the service account key,
 *     the storage root and other guests' results are out of reach.
 *     The files named by keys ending in -file in the [plugin.NAME]
 *     sections (an API key, a private CA) are readable too, each file
 *     alone, not its directory;
 *   - installs a seccomp filter (libseccomp) that allows the system calls
 *     a transform needs and answers every other one with EPERM: no
 *     execve, no ptrace, no signals to other processes, and no network
 *     sockets unless a plugin's section says network = yes.
 * On a kernel without Landlock or seccomp it carries on unconfined and
 * says so in the log.
 */
#ifndef FIRESYNC_SANDBOX_H
#define FIRESYNC_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

struct sandbox_options {
	const char *plugin_dir;		/* readable */
	const char *const *files;	/* also readable: the files plugin
					   sections name (keys *-file) */
	size_t n_files;
	bool network;			/* TCP/UDP sockets allowed */
	bool announce;			/* log what is and is not enforced */
};

/*
 * Confine the calling process (all its threads to come).  Returns 0 when
 * both layers are in force, 1 when one could not be applied (logged), or
 * -1 when applying one failed half-way (the worker must not go on).
 */
int sandbox_enter(const struct sandbox_options *o);

#endif
