/*
 * emulator.c - start/stop the Firestore emulator, admin writes and reads,
 * spawning firesyncd.  Shared by the integration tests and the bench tool.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "emulator.h"
#include "log.h"

extern char **environ;

/*
 * A free TCP port on loopback below the kernel's ephemeral range.  A port
 * inside that range can be taken, while the emulator is down for a
 * restart test, by the source port of any outgoing connection (even the
 * daemon's own reconnect, which then connects to itself), and the
 * emulator could not come back on it.
 */
int
free_port(void)
{
	int lo = 32768, hi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);

	if (f != NULL) {
		if (fscanf(f, "%d %d", &lo, &hi) != 2)
			lo = 32768;
		fclose(f);
	}
	if (lo <= 10000)
		lo = 32768;	/* an odd range: stay below the usual one */
	for (int tries = 0; tries < 200; tries++) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		int fd = socket(AF_INET, SOCK_STREAM, 0), port, ok;

		if (fd < 0)
			fatal("free_port: %s", strerror(errno));
		port = 10000 + (int)(rand_r(&seed) % (unsigned)(lo - 10000));
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons((uint16_t)port);
		ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	fatal("free_port: no free port between 10000 and %d", lo - 1);
	return -1;
}

static bool
log_has(const char *path, const char *needle)
{
	char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

int
emulator_start(struct emulator *em, const char *path, int port)
{
	char portarg[32];
	pid_t pid;

	if (access(path, X_OK) != 0)
		return -ENOENT;
	em->port = port ? port : free_port();
	snprintf(em->host, sizeof(em->host), "127.0.0.1:%d", em->port);
	snprintf(em->log, sizeof(em->log), "/tmp/firesync-emulator-%d.log",
	    em->port);
	snprintf(portarg, sizeof(portarg), "--port=%d", em->port);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(em->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		setpgid(0, 0);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(path, path, "start", "--host=127.0.0.1", portarg,
		    (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	em->pid = pid;
	for (int i = 0; i < 1200; i++) {	/* up to 120 s */
		int status;

		if (log_has(em->log, "Dev App Server is now running"))
			return 0;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			em->pid = 0;
			return -ECHILD;
		}
		usleep(100000);
	}
	emulator_stop(em);
	return -ETIMEDOUT;
}

void
emulator_stop(struct emulator *em)
{
	int status;

	if (em->pid <= 0)
		return;
	kill(-em->pid, SIGKILL);
	waitpid(em->pid, &status, 0);
	em->pid = 0;
	/* the JVM's children die with the group; give the port a moment */
	usleep(200000);
}

struct fs_client *
admin_client(const char *host, const char *project)
{
	struct fs_options o = { .target = host, .project = project,
	    .emulator = true };
	char err[256];
	struct fs_client *c = fs_client_new(&o, err, sizeof(err));

	if (c == NULL)
		fatal("admin_client: %s", err);
	return c;
}

static int
admin_write(struct fs_client *c, const char *path, FsValue *fields,
    const char *const *mask, size_t n_mask)
{
	FsWrite w = GOOGLE__FIRESTORE__V1__WRITE__INIT;
	Google__Firestore__V1__DocumentMask m =
	    GOOGLE__FIRESTORE__V1__DOCUMENT_MASK__INIT;
	FsWrite *ws[1] = { &w };
	struct fs_status st;
	char *name = xasprintf("%s/%s", fs_docs_path(c), path);
	FsDocument *d = value_map_to_doc(fields, name);
	enum fs_kind kind = FS_OK;

	w.operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_UPDATE;
	w.update = d;
	if (mask != NULL) {
		m.n_field_paths = n_mask;
		m.field_paths = (char **)mask;
		w.update_mask = &m;
	}
	/* a freshly restarted emulator can break the first call's
	 * connection, and a busy one answers INTERNAL, ABORTED or even
	 * CANCELLED (after applying the write) now and then: retry as any
	 * client would (a set or masked update is idempotent) */
	for (int i = 0; i < 10; i++) {
		kind = fs_commit(c, ws, 1, 15000, NULL, &st);
		if (kind != FS_TRANSIENT)
			break;
		log_warn("admin write %s: %s: %s; retrying", path,
		    fs_status_name(&st), st.message);
		usleep(200000);
	}
	if (kind != FS_OK)
		log_warn("admin write %s: %s: %s", path, fs_status_name(&st),
		    st.message);
	protobuf_c_message_free_unpacked(&d->base, NULL);
	free(name);
	return kind;
}

int
admin_set(struct fs_client *c, const char *path, FsValue *fields)
{
	return admin_write(c, path, fields, NULL, 0);
}

int
admin_update(struct fs_client *c, const char *path, FsValue *fields,
    const char *const *mask, size_t n_mask)
{
	return admin_write(c, path, fields, mask, n_mask);
}

FsDocument *
admin_get(struct fs_client *c, const char *path)
{
	char *name = xasprintf("%s/%s", fs_docs_path(c), path);
	FsDocument *d = NULL;
	struct fs_status st;
	int rc = -EIO;

	/* a read is safe to repeat; a busy emulator fails one now and then */
	for (int i = 0; i < 10 && rc == -EIO; i++) {
		if (i > 0)
			usleep(200000);
		rc = fs_get_document(c, name, 15000, &d, &st);
		if (rc == -EIO)
			log_warn("admin get %s: %s", path, st.message);
	}
	free(name);
	return rc == 0 ? d : NULL;
}

struct fs_listen *
admin_listen_state(struct fs_client *c, const char *state)
{
	const struct fs_query q = {
		.collection = "sessions", .all_descendants = true,
		.field = "state", .values = &state, .n_values = 1,
	};
	const struct fs_target t = { .id = 1, .query = &q };

	return fs_listen_open(c, &t, 1);
}

const char *
doc_string(const FsDocument *doc, const char *field)
{
	const FsValue *v = doc_get(doc, field);

	return v && v->value_type_case == FSV(STRING_VALUE) ?
	    v->string_value : NULL;
}

FsValue *
session_fields(const char *event, const char *session,
    const char *experience, const char *input_path, int64_t now_ms)
{
	FsValue *f = value_map(), *data = value_map(), *name = value_map();

	value_map_put(f, "id", value_string(session));
	value_map_put(f, "eventId", value_string(event));
	value_map_put(f, "state", value_string("captured"));
	value_map_put(f, "journeyId", value_string("journey_001"));
	value_map_put(f, "currentStepIndex", value_int(4));
	if (input_path)
		value_map_put(f, "inputImagePath", value_string(input_path));
	if (experience)
		value_map_put(data, "selected_experience_id",
		    value_string(experience));
	value_map_put(name, "type", value_string("text"));
	value_map_put(name, "value", value_string("Jane Doe"));
	value_map_put(data, "step_name", name);
	value_map_put(f, "data", data);
	value_map_put(f, "createdAt", value_int(now_ms - 60000));
	value_map_put(f, "updatedAt", value_int(now_ms));
	return f;
}

void
session_pad(FsValue *fields, size_t n)
{
	FsValue *data = (FsValue *)value_map_get(fields, "data");
	FsValue *step = value_map();
	char *pad = xmalloc(n + 1);

	memset(pad, 'x', n);
	pad[n] = '\0';
	value_map_put(step, "type", value_string("text"));
	value_map_put(step, "value", value_string(pad));
	free(pad);
	value_map_put(data, "step_long", step);
}

pid_t
daemon_spawn(const char *exe, const char *const *args, const char *logpath)
{
	posix_spawn_file_actions_t fa;
	const char *argv[64];
	int n = 0;
	pid_t pid;

	argv[n++] = exe;
	for (; args && *args && n < 62; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, logpath,
	    O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (posix_spawn(&pid, exe, &fa, NULL, (char *const *)argv,
	    environ) != 0)
		fatal("posix_spawn %s: %s", exe, strerror(errno));
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

int
daemon_stop(pid_t pid, int ms)
{
	int status;

	kill(pid, SIGTERM);
	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) :
			    128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

int
log_count_reaches(const char *path, const char *needle, int want, int ms)
{
	int64_t end = test_now_ms() + ms;
	int n;

	while ((n = log_count(path, needle)) < want && test_now_ms() < end)
		usleep(20000);
	return n;
}

int
log_count(const char *path, const char *needle)
{
	char line[8192];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}
