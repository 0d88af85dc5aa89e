/*
 * soak.c - firesyncd under faults, for a long time: make soak (30 min),
 * and a short run in the test script.
 *
 * Three daemons serve one project through a loopback TCP proxy to the
 * Firestore emulator.  The proxy cuts connections, stalls them and delays
 * what it forwards; daemons are killed with SIGKILL and restarted; the
 * emulator is restarted once, half-way.  The "soak" model crashes, hangs
 * or is slow now and then, and logs each run.  A writer plays the web app:
 * it captures sessions, retries some that ended in error, and writes a
 * field of its own into some while they are transforming.
 *
 * At the end (and before the emulator restart, which empties it) every
 * session must be ready, or error with a message; none may be run more
 * often than its captures times --max-attempts allow; every document must
 * parse with the web app's schema.  The summary says what was injected
 * and what came out.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "alloc.h"
#include "clock.h"
#include "delayproxy.h"
#include "emulator.h"
#include "log.h"
#include "strmap.h"
#include "testimg.h"
#include "value.h"
#include "watch.h"

#define N_DAEMONS	3
#define MAX_ATTEMPTS	3
#define MAX_CONNS	64
#define SETTLE_MS	180000	/* for every session to end, at the end */

/* ---- the faulty proxy ---- */

struct conn {
	int down, up;			/* daemon side, emulator side */
	int64_t stall_until;		/* monotonic ms; forward nothing */
};

static struct {
	pthread_mutex_t lock;
	struct conn c[MAX_CONNS];
	int listen_fd, upstream_port;
	atomic_int delay_ms;		/* added before each forward */
	atomic_bool stop;
} px = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
conn_close(struct conn *c)
{
	if (c->down >= 0)
		close(c->down);
	if (c->up >= 0)
		close(c->up);
	c->down = c->up = -1;
}

/* Forward what from has to to; false when either side is done. */
static bool
pump(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));
	int delay = atomic_load(&px.delay_ms);

	if (n <= 0)
		return false;
	if (delay > 0)
		sleep_ms(delay);
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));

		if (w <= 0)
			return false;
		off += w;
	}
	return true;
}

static void *
proxy_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&px.stop)) {
		struct pollfd p[1 + 2 * MAX_CONNS];
		int idx[1 + 2 * MAX_CONNS], n = 0;
		int64_t now = now_mono_ms();

		p[n].fd = px.listen_fd;
		p[n].events = POLLIN;
		idx[n++] = -1;
		pthread_mutex_lock(&px.lock);
		for (int i = 0; i < MAX_CONNS; i++) {
			if (px.c[i].down < 0 || px.c[i].stall_until > now)
				continue;
			p[n].fd = px.c[i].down;
			p[n].events = POLLIN;
			idx[n++] = i;
			p[n].fd = px.c[i].up;
			p[n].events = POLLIN;
			idx[n++] = i;
		}
		pthread_mutex_unlock(&px.lock);
		if (poll(p, (nfds_t)n, 100) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			int down = accept4(px.listen_fd, NULL, NULL,
			    SOCK_CLOEXEC), up = -1;

			if (down >= 0)
				up = tcp_connect_loopback(px.upstream_port);
			pthread_mutex_lock(&px.lock);
			for (int i = 0; down >= 0 && i < MAX_CONNS; i++)
				if (px.c[i].down < 0 && up >= 0) {
					px.c[i] = (struct conn){ down, up, 0 };
					down = -1;
				}
			pthread_mutex_unlock(&px.lock);
			if (down >= 0)
				close(down);
			if (down >= 0 && up >= 0)
				close(up);
		}
		for (int k = 1; k < n; k++) {
			struct conn *c = &px.c[idx[k]];
			bool ok = true;

			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			pthread_mutex_lock(&px.lock);
			if (c->down == p[k].fd)
				ok = pump(c->down, c->up);
			else if (c->up == p[k].fd)
				ok = pump(c->up, c->down);
			if (!ok)
				conn_close(c);
			pthread_mutex_unlock(&px.lock);
		}
	}
	return NULL;
}

static int
proxy_start(int upstream_port, pthread_t *t)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int one = 1;

	for (int i = 0; i < MAX_CONNS; i++)
		px.c[i].down = px.c[i].up = -1;
	px.upstream_port = upstream_port;
	px.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(px.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(px.listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(px.listen_fd, 16) < 0 ||
	    getsockname(px.listen_fd, (struct sockaddr *)&a, &len) < 0)
		fatal("proxy: %s", strerror(errno));
	pthread_create(t, NULL, proxy_main, NULL);
	return ntohs(a.sin_port);
}

/* A random open connection's slot, or -1; call with px.lock held. */
static int
random_conn(void)
{
	int open[MAX_CONNS], n = 0;

	for (int i = 0; i < MAX_CONNS; i++)
		if (px.c[i].down >= 0)
			open[n++] = i;
	return n ? open[random() % n] : -1;
}

/* ---- the run ---- */

struct session {
	char id[16];
	char event[8];
	int captures;			/* by the writer */
	bool final;
};

struct soak {
	const char *daemon_exe, *plugin_dir, *schema, *empath;
	int seconds, rate;
	struct emulator em;
	struct fs_client *c;
	char project[64], root[64], host[64];
	pid_t daemons[N_DAEMONS];
	char logs[N_DAEMONS][128];
	struct session *s;
	size_t n, cap, epoch_start;	/* sessions of this emulator life */
	struct fs_listen *l_error, *l_transforming;
	struct watch w_error, w_transforming;
	struct strmap *touched;		/* sessions already written to */
	uint8_t *jpg;
	size_t jpglen;
	/* what was injected */
	int cuts, stalls, delays, kills, emulator_restarts, unrelated,
	    retries;
	/* what came out */
	int ready, err_crash, err_timeout, err_interrupted, err_other,
	    failures, max_runs;
};

static void
daemon_start(struct soak *k, int i)
{
	const char *args[] = { "--emulator", k->host, "--project",
	    k->project, "--storage-root", k->root, "--plugin-dir",
	    k->plugin_dir, "--workers", "3", "--transform-timeout", "3",
	    "--recovery-margin", "2", "--idle-timeout", "20",
	    "--drain-timeout", "5", "--max-attempts", "3", NULL };

	k->daemons[i] = daemon_spawn(k->daemon_exe, args, k->logs[i]);
}

static void
experiences(struct soak *k)
{
	static const struct { const char *id; bool ai; } x[] = {
		{ "exp_soak", true }, { "exp_plain", false },
	};

	for (size_t i = 0; i < 2; i++) {
		FsValue *f = value_map(), *cfg = value_map();
		char path[64];

		value_map_put(cfg, "enabled", value_bool(x[i].ai));
		value_map_put(cfg, "model", value_string("soak"));
		value_map_put(cfg, "prompt", value_string(""));
		value_map_put(cfg, "aspectRatio", value_string(""));
		value_map_put(cfg, "referenceImageUrls", value_array());
		value_map_put(f, "aiPhotoConfig", cfg);
		snprintf(path, sizeof(path), "experiences/%s", x[i].id);
		if (admin_set(k->c, path, f) != 0)
			fatal("soak: cannot write experience %s", x[i].id);
	}
}

static void
open_listens(struct soak *k)
{
	watch_init(&k->w_error);
	watch_add_target(&k->w_error, 1);
	watch_init(&k->w_transforming);
	watch_add_target(&k->w_transforming, 1);
	k->l_error = admin_listen_state(k->c, "error");
	k->l_transforming = admin_listen_state(k->c, "transforming");
}

static void
close_listens(struct soak *k)
{
	struct fs_status st;

	fs_listen_close(k->l_error, &st);
	fs_listen_close(k->l_transforming, &st);
	watch_clear(&k->w_error);
	watch_clear(&k->w_transforming);
}

static void
capture_new(struct soak *k)
{
	struct session *s;
	char path[256];
	FsValue *f;

	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 1024;
		k->s = xrealloc(k->s, k->cap * sizeof(*k->s));
	}
	s = &k->s[k->n];
	memset(s, 0, sizeof(*s));
	snprintf(s->id, sizeof(s->id), "s%06zu", k->n);
	snprintf(s->event, sizeof(s->event), "E%zu", k->n % 3);
	snprintf(path, sizeof(path), "%s/captures/%s/%s", k->root, s->event,
	    s->id);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "mkdir -p %s", path);
		if (system(cmd) != 0)
			fatal("soak: %s", cmd);
	}
	strcat(path, "/input.jpg");
	testimg_write(path, k->jpg, k->jpglen);
	snprintf(path, sizeof(path), "captures/%s/%s/input.jpg", s->event,
	    s->id);
	f = session_fields(s->event, s->id, k->n % 5 ? "exp_soak" :
	    "exp_plain", path, now_wall_ms());
	snprintf(path, sizeof(path), "events/%s/sessions/%s", s->event, s->id);
	if (admin_set(k->c, path, f) == 0) {
		s->captures = 1;
		k->n++;
	}
}

/* The app's side of sessions it sees in a state: retry some errors, write
 * its own field into some transforming ones. */
static void
react(struct soak *k, struct fs_listen *l, struct watch *w, bool error)
{
	FsListenResponse *resp;
	char err[256];

	while (fs_listen_next(l, 0, &resp) > 0) {
		enum watch_event ev = watch_feed(w, resp, err, sizeof(err));
		const struct strmap *known;
		size_t pos = 0;
		const char *name;
		void *v;

		google__firestore__v1__listen_response__free_unpacked(resp,
		    NULL);
		if (ev != WATCH_SNAPSHOT)
			continue;
		known = watch_known(w, 1);
		while (strmap_next(known, &pos, &name, &v)) {
			const char *ss = strstr(name, "/sessions/");
			char key[300], path[128];
				const char *ev_id = strstr(name, "/events/");
			size_t idx;

			if (ss == NULL || ev_id == NULL ||
			    sscanf(ss, "/sessions/s%zu", &idx) != 1 ||
			    idx < k->epoch_start || idx >= k->n)
				continue;
			snprintf(key, sizeof(key), "%s#%d#%d", name,
			    k->s[idx].captures, error);
			if (strmap_get(k->touched, key))
				continue;
			strmap_put(k->touched, key, (void *)1);
			snprintf(path, sizeof(path), "events/%s/sessions/%s",
			    k->s[idx].event, k->s[idx].id);
			if (!error && random() % 5 == 0) {
				static const char *const m[] = {
				    "currentStepIndex" };
				FsValue *f = value_map();

				value_map_put(f, "currentStepIndex",
				    value_int(5 + random() % 3));
				if (admin_update(k->c, path, f, m, 1) == 0)
					k->unrelated++;
			} else if (error && k->s[idx].captures < 3 &&
			    random() % 3 == 0) {
				static const char *const m[] = { "state",
				    "updatedAt" };
				FsValue *f = value_map();

				value_map_put(f, "state", value_string(
				    "created"));
				value_map_put(f, "updatedAt", value_int(
				    now_wall_ms()));
				if (admin_update(k->c, path, f, m, 2) != 0)
					continue;
				f = value_map();
				value_map_put(f, "state", value_string(
				    "captured"));
				value_map_put(f, "updatedAt", value_int(
				    now_wall_ms()));
				if (admin_update(k->c, path, f, m, 2) == 0) {
					k->s[idx].captures++;
					k->retries++;
				}
			}
		}
	}
}

static void
inject(struct soak *k, int64_t now, int64_t *next_fault,
    int64_t *next_kill, int64_t *delay_until)
{
	if (*delay_until && now > *delay_until) {
		atomic_store(&px.delay_ms, 0);
		*delay_until = 0;
	}
	if (now >= *next_fault) {
		int kind = (int)(random() % 10), i;

		pthread_mutex_lock(&px.lock);
		i = random_conn();
		if (kind < 4 && i >= 0) {
			conn_close(&px.c[i]);
			k->cuts++;
		} else if (kind < 7 && i >= 0) {
			px.c[i].stall_until = now + 3000 + random() % 22000;
			k->stalls++;
		} else if (*delay_until == 0) {
			atomic_store(&px.delay_ms, 20 + (int)(random() % 130));
			*delay_until = now + 5000 + random() % 10000;
			k->delays++;
		}
		pthread_mutex_unlock(&px.lock);
		*next_fault = now + 2000 + random() % 4000;
	}
	if (now >= *next_kill) {
		int i = (int)(random() % N_DAEMONS);

		kill(k->daemons[i], SIGKILL);
		waitpid(k->daemons[i], NULL, 0);
		sleep_ms(500 + random() % 2500);
		daemon_start(k, i);
		k->kills++;
		*next_kill = now + (k->seconds > 300 ? 40000 + random() %
		    50000 : 15000 + random() % 15000);
	}
}

/* Read session i; NULL when it cannot be read. */
static FsDocument *
read_session(struct soak *k, size_t i)
{
	char path[128];

	snprintf(path, sizeof(path), "events/%s/sessions/%s", k->s[i].event,
	    k->s[i].id);
	return admin_get(k->c, path);
}

/* Wait until every session of this epoch has ended; then count the
 * outcomes.  Failures are counted and printed. */
static void
settle_and_check(struct soak *k)
{
	int64_t end = now_mono_ms() + SETTLE_MS;
	size_t left;

	do {
		left = 0;
		for (size_t i = k->epoch_start; i < k->n; i++) {
			FsDocument *d;
			const char *st;

			if (k->s[i].final)
				continue;
			d = read_session(k, i);
			st = d ? doc_string(d, "state") : NULL;
			if (st && (strcmp(st, "ready") == 0 ||
			    strcmp(st, "error") == 0))
				k->s[i].final = true;
			else
				left++;
			doc_free(d);
		}
		if (left)
			sleep_ms(1000);
	} while (left && now_mono_ms() < end);
	for (size_t i = k->epoch_start; i < k->n; i++) {
		FsDocument *d = read_session(k, i);
		const char *st = d ? doc_string(d, "state") : NULL;
		const char *e = d ? doc_string(d, "error") : NULL;

		if (st && strcmp(st, "ready") == 0) {
			k->ready++;
		} else if (st && strcmp(st, "error") == 0 && e &&
		    strncmp(e, "AI transform failed: ", 21) == 0) {
			if (strstr(e, "crashed"))
				k->err_crash++;
			else if (strstr(e, "timeout"))
				k->err_timeout++;
			else if (strstr(e, "interrupted"))
				k->err_interrupted++;
			else
				k->err_other++;
		} else {
			printf("soak: FAIL %s/%s is %s%s%s\n", k->s[i].event,
			    k->s[i].id, st ? st : "unreadable",
			    e ? ": " : "", e ? e : "");
			k->failures++;
		}
		doc_free(d);
	}
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "node %s %s %s", k->schema,
		    k->em.host, k->project);
		if (system(cmd) != 0) {
			printf("soak: FAIL documents do not parse with the "
			    "web app's schema\n");
			k->failures++;
		}
	}
}

/* Runs per session from every daemon's log, against captures. */
static void
check_runs(struct soak *k)
{
	struct strmap *runs = strmap_new();

	for (int d = 0; d < N_DAEMONS; d++) {
		FILE *f = fopen(k->logs[d], "r");
		char line[4096];

		while (f && fgets(line, sizeof(line), f)) {
			char *p = strstr(line, "soak-run session=");
			char id[32];

			if (p && sscanf(p, "soak-run session=%31s", id) == 1)
				strmap_put(runs, id, (void *)((intptr_t)
				    strmap_get(runs, id) + 1));
		}
		if (f)
			fclose(f);
	}
	for (size_t i = 0; i < k->n; i++) {
		int n = (int)(intptr_t)strmap_get(runs, k->s[i].id);

		if (n > k->max_runs)
			k->max_runs = n;
		if (n > k->s[i].captures * MAX_ATTEMPTS) {
			printf("soak: FAIL %s ran %d times for %d capture(s)\n",
			    k->s[i].id, n, k->s[i].captures);
			k->failures++;
		}
	}
	strmap_free(runs, NULL);
}

static void
restart_emulator(struct soak *k)
{
	int port = k->em.port;

	close_listens(k);
	fs_client_free(k->c);
	emulator_stop(&k->em);
	sleep_ms(2000);
	if (emulator_start(&k->em, k->empath, port) != 0)
		fatal("soak: the emulator did not come back");
	k->c = admin_client(k->em.host, k->project);
	experiences(k);
	open_listens(k);
	k->epoch_start = k->n;
	k->emulator_restarts++;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct soak k = { .seconds = 60, .rate = 3, .daemon_exe = FIRESYNCD,
	    .plugin_dir = NULL, .schema = SCHEMA_CHECK,
	    .empath = FIRESTORE_EMULATOR };
	int64_t t0, now, next_fault, next_kill, delay_until = 0, next_cap;
	pthread_t proxy;
	bool restarted = false;
	char cmd[512];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			k.seconds = atoi(optarg);
		else if (c == 'r')
			k.rate = atoi(optarg);
		else
			return 2;
	}
	if (k.seconds < 10 || k.rate < 1 || k.rate > 50) {
		fprintf(stderr, "usage: soak [--seconds N>=10] [--rate 1..50]\n");
		return 2;
	}
	log_init();
	log_level = LOG_ERR;
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)(now_wall_ms() ^ getpid()));
	snprintf(k.root, sizeof(k.root), "/tmp/fssoak-XXXXXX");
	if (mkdtemp(k.root) == NULL)
		fatal("mkdtemp: %s", strerror(errno));
	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s/plugins && cp %s/soak.so "
	    "%s/plugins/ && chmod 755 %s/plugins/soak.so", k.root,
	    TEST_PLUGINS, k.root, k.root);
	if (system(cmd) != 0)
		fatal("soak: %s", cmd);
	k.plugin_dir = xasprintf("%s/plugins", k.root);
	snprintf(k.project, sizeof(k.project), "soak-%d", (int)getpid());
	if (emulator_start(&k.em, k.empath, 0) != 0)
		fatal("soak: cannot start the emulator at %s", k.empath);
	snprintf(k.host, sizeof(k.host), "127.0.0.1:%d",
	    proxy_start(k.em.port, &proxy));
	grpc_init();
	k.c = admin_client(k.em.host, k.project);
	k.touched = strmap_new();
	testimg_jpeg(64, 48, 6, &k.jpg, &k.jpglen);
	experiences(&k);
	open_listens(&k);
	for (int i = 0; i < N_DAEMONS; i++) {
		snprintf(k.logs[i], sizeof(k.logs[i]), "%s/daemon%d.log",
		    k.root, i);
		daemon_start(&k, i);
	}
	printf("soak: %d s, %d captures/s, %d daemons through a faulty "
	    "proxy; logs in %s\n", k.seconds, k.rate, N_DAEMONS, k.root);
	fflush(stdout);
	t0 = now = next_cap = now_mono_ms();
	next_fault = t0 + 3000;
	next_kill = t0 + (k.seconds > 300 ? 60000 : 20000);
	while ((now = now_mono_ms()) - t0 < (int64_t)k.seconds * 1000) {
		while (next_cap <= now) {
			capture_new(&k);
			next_cap += 1000 / k.rate;
		}
		react(&k, k.l_transforming, &k.w_transforming, false);
		react(&k, k.l_error, &k.w_error, true);
		inject(&k, now, &next_fault, &next_kill, &delay_until);
		if (!restarted && now - t0 > (int64_t)k.seconds * 500) {
			/* half-way: let this epoch end, check it, restart */
			atomic_store(&px.delay_ms, 0);
			delay_until = 0;
			settle_and_check(&k);
			restart_emulator(&k);
			restarted = true;
			next_cap = now_mono_ms();
		}
		sleep_ms(50);
	}
	atomic_store(&px.delay_ms, 0);
	settle_and_check(&k);
	for (int i = 0; i < N_DAEMONS; i++)
		if (daemon_stop(k.daemons[i], 15000) != 0) {
			printf("soak: FAIL daemon %d did not stop cleanly\n", i);
			k.failures++;
		}
	check_runs(&k);
	atomic_store(&px.stop, true);
	pthread_join(proxy, NULL);
	close_listens(&k);
	fs_client_free(k.c);
	grpc_shutdown();
	emulator_stop(&k.em);

	printf("soak: %.1f min, %zu sessions, %d retried captures\n",
	    (double)(now_mono_ms() - t0) / 60000.0, k.n, k.retries);
	printf("soak: injected %d connection cuts, %d stalls, %d delay "
	    "periods, %d daemon kills, %d emulator restart(s), %d writes "
	    "mid-transform\n", k.cuts, k.stalls, k.delays, k.kills,
	    k.emulator_restarts, k.unrelated);
	printf("soak: outcomes %d ready, %d error (%d crashed, %d timeout, "
	    "%d interrupted, %d other); most runs of one session %d\n",
	    k.ready, k.err_crash + k.err_timeout + k.err_interrupted +
	    k.err_other, k.err_crash, k.err_timeout, k.err_interrupted,
	    k.err_other, k.max_runs);
	printf("soak: %d passed, %d failed\n", k.failures ? 0 : 1,
	    k.failures ? 1 : 0);
	if (k.failures == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", k.root);
		(void)!system(cmd);
	}
	strmap_free(k.touched, NULL);
	free(k.s);
	free(k.jpg);
	return k.failures ? 1 : 0;
}
