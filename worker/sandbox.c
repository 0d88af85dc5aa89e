/*
 * sandbox.c - Landlock and seccomp for worker processes (sandbox.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"

/* ---- Landlock ---- */

/* Read-only, beside the plugin directory: what the dynamic loader, libc
 * (time zones, name service, random numbers) and TLS libraries read. */
static const char *const readable[] = {
	"/usr", "/lib", "/lib64", "/lib32",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
	"/etc/localtime", "/etc/nsswitch.conf", "/etc/host.conf",
	"/etc/hosts", "/etc/resolv.conf", "/etc/gai.conf",
	"/etc/ssl", "/etc/ca-certificates", "/etc/pki",
	"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random",
	"/sys/devices/system/cpu", "/proc/self",
};

static uint64_t
fs_rights_for(int abi)
{
	uint64_t all = LANDLOCK_ACCESS_FS_EXECUTE |
	    LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
	    LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
	    LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
	    LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
	    LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
	    LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;

#ifdef LANDLOCK_ACCESS_FS_REFER
	if (abi >= 2)
		all |= LANDLOCK_ACCESS_FS_REFER;
#endif
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
	if (abi >= 3)
		all |= LANDLOCK_ACCESS_FS_TRUNCATE;
#endif
	(void)abi;
	return all;
}

static int
allow_read(int ruleset, const char *path, uint64_t handled)
{
	struct landlock_path_beneath_attr pb = { 0 };
	int fd = open(path, O_PATH | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	pb.parent_fd = fd;
	pb.allowed_access = (LANDLOCK_ACCESS_FS_READ_FILE |
	    LANDLOCK_ACCESS_FS_READ_DIR) & handled;
	rc = (int)syscall(SYS_landlock_add_rule, ruleset,
	    LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	if (rc < 0 && errno == EINVAL) {
		/* a file, not a directory: READ_DIR does not apply */
		pb.allowed_access = LANDLOCK_ACCESS_FS_READ_FILE & handled;
		rc = (int)syscall(SYS_landlock_add_rule, ruleset,
		    LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	}
	rc = rc < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* A file a plugin's section names: readable if it is a regular file.
 * One that cannot be opened is left out; the plugin that reads it says
 * why at init, and the other plugins are not held up by it. */
static int
allow_file(int ruleset, const char *path, uint64_t handled)
{
	struct landlock_path_beneath_attr pb = { 0 };
	struct stat sb;
	int fd = open(path, O_PATH | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return 0;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
		pb.parent_fd = fd;
		pb.allowed_access = LANDLOCK_ACCESS_FS_READ_FILE & handled;
		if (syscall(SYS_landlock_add_rule, ruleset,
		    LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
			rc = -errno;
	}
	close(fd);
	return rc;
}

/* 0 in force, 1 not available here, -1 failed half-way. */
static int
landlock(const struct sandbox_options *o)
{
	struct landlock_ruleset_attr attr = { 0 };
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	int ruleset, rc;

	if (abi < 1) {
		if (o->announce)
			log_warn("sandbox: Landlock is not available on this "
			    "kernel (%s): plugins can read and write files as "
			    "the service user; enable CONFIG_SECURITY_LANDLOCK "
			    "and lsm=landlock", strerror(errno));
		return 1;
	}
	attr.handled_access_fs = fs_rights_for((int)abi);
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr,
	    sizeof(attr), 0);
	if (ruleset < 0) {
		log_err("sandbox: landlock_create_ruleset: %s",
		    strerror(errno));
		return -1;
	}
	rc = allow_read(ruleset, o->plugin_dir, attr.handled_access_fs);
	for (size_t i = 0; rc == 0 && i < sizeof(readable) /
	    sizeof(readable[0]); i++)
		rc = allow_read(ruleset, readable[i], attr.handled_access_fs);
	for (size_t i = 0; rc == 0 && i < o->n_files; i++)
		rc = allow_file(ruleset, o->files[i], attr.handled_access_fs);
	if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		rc = -errno;
	close(ruleset);
	if (rc < 0) {
		log_err("sandbox: Landlock: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* ---- seccomp ---- */

/* What decoding, a transform and the worker's own protocol need; the
 * sanitizer runtimes need a few more (see seccomp_filter). */
static const char *const allowed[] = {
	/* memory */
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore",
	"membarrier",
	/* files (Landlock says which) and descriptors */
	"read", "write", "pread64", "pwrite64", "readv", "writev", "preadv",
	"pwritev", "preadv2", "pwritev2", "lseek", "close", "close_range",
	"open", "openat", "openat2", "stat", "fstat", "lstat", "newfstatat",
	"statx", "access", "faccessat", "faccessat2", "readlink",
	"readlinkat", "getdents64", "fcntl", "dup", "dup2", "dup3", "ioctl",
	"ftruncate", "fsync", "fdatasync", "memfd_create", "getcwd",
	"fadvise64",
	/* the socket to the host */
	"sendmsg", "recvmsg", "sendto", "recvfrom", "poll", "ppoll",
	"select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
	"epoll_pwait", "eventfd2", "pipe", "pipe2", "shutdown",
	/* time */
	"clock_gettime", "clock_getres", "gettimeofday", "time",
	"nanosleep", "clock_nanosleep",
	/* threads */
	"clone", "clone3", "futex", "set_robust_list", "get_robust_list",
	"rseq", "set_tid_address", "sched_yield", "sched_getaffinity",
	"sched_setaffinity", "sched_getparam", "sched_getscheduler",
	"getpid", "gettid", "getppid", "getpgrp", "wait4", "waitid",
	/* signals (to itself only, below) */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"rt_sigtimedwait", "restart_syscall", "pause",
	/* process */
	"exit", "exit_group", "prctl", "arch_prctl", "getrlimit",
	"getrusage", "uname", "sysinfo", "getuid", "geteuid", "getgid",
	"getegid", "getgroups", "getrandom", "umask",
};

/* Network, when a plugin's section asks for it. */
static const char *const network[] = {
	"connect", "bind", "getsockname", "getpeername", "setsockopt",
	"getsockopt", "sendmmsg", "recvmmsg", "socketpair",
};

static int
allow(scmp_filter_ctx ctx, const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0;	/* not a system call on this architecture */
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

/* 0 in force, 1 not available here, -1 failed half-way. */
static int
seccomp_filter(const struct sandbox_options *o)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	pid_t self = getpid();
	int rc = 0;

	if (ctx == NULL) {
		log_err("sandbox: seccomp_init failed");
		return -1;
	}
	for (size_t i = 0; rc == 0 && i < sizeof(allowed) /
	    sizeof(allowed[0]); i++)
		rc = allow(ctx, allowed[i]);
	/* signals and resource limits: this process only */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
		    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
		    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW,
		    SCMP_SYS(prlimit64), 1, SCMP_A0(SCMP_CMP_EQ, 0));
	/* sockets: local ones for the protocol; the network on request */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	for (size_t i = 0; rc == 0 && o->network && i < sizeof(network) /
	    sizeof(network[0]); i++)
		rc = allow(ctx, network[i]);
	if (rc == 0 && o->network) {
		static const int families[] = { AF_INET, AF_INET6,
		    AF_NETLINK };

		for (size_t i = 0; rc == 0 && i < 3; i++)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW,
			    SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ,
			    (scmp_datum_t)families[i]));
	}
#if defined(__SANITIZE_ADDRESS__)
	/* LeakSanitizer stops the world with ptrace at exit */
	if (rc == 0)
		rc = allow(ctx, "ptrace");
#endif
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		if (rc == -EINVAL || rc == -ENOSYS) {
			if (o->announce)
				log_warn("sandbox: seccomp is not available "
				    "(%s): plugins may make any system call",
				    strerror(-rc));
			return 1;
		}
		log_err("sandbox: seccomp: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

int
sandbox_enter(const struct sandbox_options *o)
{
	int ll, sc;

	/* no_new_privs is set already (worker.c); Landlock and seccomp
	 * both need it */
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	ll = landlock(o);
	if (ll < 0)
		return -1;
	sc = seccomp_filter(o);
	if (sc < 0)
		return -1;
	if (o->announce)
		log_info("sandbox: %s%s%s; network %s", ll == 0 ?
		    "Landlock (read-only: plugin directory, system files" :
		    "no Landlock", ll != 0 ? "" : o->n_files ? " and the "
		    "files plugin sections name)" : ")",
		    sc == 0 ? ", seccomp allowlist" :
		    ", no seccomp", o->network ? "allowed (a plugin's "
		    "section says network = yes)" : "denied");
	return ll == 0 && sc == 0 ? 0 : 1;
}
