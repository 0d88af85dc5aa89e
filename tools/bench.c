/*
 * bench.c - firesync-bench: capture -> ready latency and throughput of
 * firesyncd on the Firestore emulator.
 *
 * It starts its own emulator and daemon, then plays the web app: writes
 * the capture file, commits the session as "captured", and watches a
 * Listen stream (as the web app does) until the session is "ready".
 * Latency runs from just before the capture commit is sent to the arrival
 * of the snapshot showing it ready.  Two runs: N sessions one at a time,
 * and N committed in one burst.  Reports p50/p99, sessions per second and
 * the daemon's idle and peak RSS.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "alloc.h"
#include "emulator.h"
#include "httpd.h"
#include "engine.h"
#include "log.h"
#include "testimg.h"
#include "watch.h"

#ifndef FIRESTORE_EMULATOR_PATH
#define FIRESTORE_EMULATOR_PATH "/usr/lib/google-cloud-sdk/platform/" \
	"cloud-firestore-emulator/cloud_firestore_emulator"
#endif

struct bench {
	struct fs_client *c;
	struct fs_listen *l;
	struct watch w;
	char root[64];
	const char *project;
	int doc_kb;			/* padding per session document */
	const char *objects;		/* where captures go: the storage
					   root, or nginx's bucket directory */
};

static int doc_kb;			/* --doc-kb */

static long
rss_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			kb = strtol(line + strlen(field) + 1, NULL, 10);
	fclose(f);
	return kb;
}

/* Number and total VmRSS (kB) of pid's child processes (its workers). */
static long
children_rss_kb(pid_t pid, int *count)
{
	char path[300], buf[512];
	long total = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;

	*count = 0;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		FILE *f;
		char *p;
		int ppid = 0;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == pid) {
			total += rss_kb((pid_t)atoi(de->d_name), "VmRSS:");
			(*count)++;
		}
		fclose(f);
	}
	closedir(d);
	return total;
}

/* user+system CPU time of pid, in ms */
static long
cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Listen on ready sessions, as the app does for its own session. */
static void
open_ready_listen(struct bench *b)
{
	watch_init(&b->w);
	watch_add_target(&b->w, 1);
	b->l = admin_listen_state(b->c, "ready");
}

/* Pump the Listen stream until every name in names is ready; records
 * the arrival time of each into done_ms. */
static int
wait_ready(struct bench *b, char **names, int n, int64_t *done_ms,
    int64_t timeout_ms)
{
	int64_t end = test_now_ms() + timeout_ms;
	int left = n;

	for (int i = 0; i < n; i++)
		done_ms[i] = 0;
	while (left > 0 && test_now_ms() < end) {
		FsListenResponse *resp;
		char err[256];
		int rc = fs_listen_next(b->l, 100, &resp);

		if (rc < 0)
			return -1;
		if (rc == 0)
			continue;
		if (watch_feed(&b->w, resp, err, sizeof(err)) ==
		    WATCH_SNAPSHOT) {
			const struct strmap *k = watch_known(&b->w, 1);
			int64_t now = test_now_ms();

			for (int i = 0; i < n; i++)
				if (done_ms[i] == 0 &&
				    strmap_get(k, names[i]) != NULL) {
					done_ms[i] = now;
					left--;
				}
		}
		google__firestore__v1__listen_response__free_unpacked(resp,
		    NULL);
	}
	return left == 0 ? 0 : -ETIMEDOUT;
}

static void
report(const char *mode, int64_t *lat, int n, int64_t span_ms)
{
	qsort(lat, (size_t)n, sizeof(*lat), cmp64);
	printf("%-8s n=%-4d p50=%" PRId64 " ms  p99=%" PRId64 " ms  "
	    "max=%" PRId64 " ms  throughput=%.1f sessions/s\n", mode, n,
	    lat[n / 2], lat[(n * 99 + 99) / 100 - 1], lat[n - 1],
	    span_ms > 0 ? n * 1000.0 / (double)span_ms : 0.0);
}

static FsWrite *
capture_write(struct bench *b, const char *ev, const char *ss)
{
	char path[512], *name;
	FsWrite *w = xcalloc(1, sizeof(*w));
	FsValue *fields;

	snprintf(path, sizeof(path), "captures/%s/%s/input.jpg", ev, ss);
	name = xasprintf("%s/events/%s/sessions/%s", b->c->docs_path, ev, ss);
	google__firestore__v1__write__init(w);
	w->operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_UPDATE;
	fields = session_fields(ev, ss, "exp_bench", path, now_wall_ms());
	if (b->doc_kb > 0)	/* a guest's long answers: a big document */
		session_pad(fields, (size_t)b->doc_kb * 1024);
	w->update = value_map_to_doc(fields, name);
	free(name);
	return w;
}

static void
put_input(struct bench *b, const char *ev, const char *ss,
    const uint8_t *jpg, size_t len)
{
	char path[512];

	snprintf(path, sizeof(path), "mkdir -p %s/captures/%s/%s", b->objects,
	    ev, ss);
	if (system(path) != 0)
		fatal("bench: %s", path);
	snprintf(path, sizeof(path), "%s/captures/%s/%s/input.jpg",
	    b->objects, ev, ss);
	testimg_write(path, jpg, len);
}

struct subject {
	const char *label;
	const char *project;		/* its own, so runs never mix */
	const char *exe;		/* firesyncd, or /usr/bin/env */
	const char *script;		/* node reference script, or NULL */
	const char *workers;
	bool gcs;			/* Cloud Storage through nginx */
};

/* Warm-up, serial and burst runs against one daemon; prints a report. */
static void
run_subject(struct emulator *em, const struct subject *sub, int n, int w,
    int h)
{
	struct bench b = { 0 };
	struct fs_status st;
	uint8_t *jpg;
	size_t jlen;
	int64_t *t0, *t1, *lat;
	char **names, logpath[128], bucket[128];
	struct nginx nx = { 0 };
	struct tokend td = { 0 };
	long idle_kb, cpu0, workers_kb;
	int n_workers;
	pid_t d;

	b.project = sub->project;
	b.doc_kb = doc_kb;
	b.objects = b.root;
	snprintf(b.root, sizeof(b.root), "/tmp/fsbench-XXXXXX");
	if (mkdtemp(b.root) == NULL)
		fatal("mkdtemp: %s", strerror(errno));
	snprintf(logpath, sizeof(logpath), "%s/daemon.log", b.root);
	b.c = admin_client(em->host, b.project);
	{
		FsValue *f = value_map(), *cfg = value_map();

		value_map_put(cfg, "enabled", value_bool(false));
		value_map_put(f, "aiPhotoConfig", cfg);
		if (admin_set(b.c, "experiences/exp_bench", f) != 0)
			fatal("cannot write the experience");
	}
	if (sub->script != NULL) {
		const char *args[] = { "node", sub->script, "--emulator",
		    em->host, "--project", b.project, "--storage-root", b.root,
		    NULL };

		d = daemon_spawn(sub->exe, args, logpath);
	} else if (sub->gcs) {
		static const char *const tokens[] = { "bench-token" };
		const char *level = getenv("BENCH_LOG_LEVEL");
		const char *args[] = { "--emulator", em->host, "--project",
		    b.project, "--storage-backend", "gcs", "--bucket", "b",
		    "--storage-endpoint", nx.endpoint, "--storage-ca-file",
		    nx.ca, "--credentials", NULL, "--workers", sub->workers,
		    "--log-level", level ? level : "warning", NULL };

		if (nginx_start(&nx, "bench-token") != 0)
			fatal("bench: cannot start nginx");
		tokend_start(&td, tokens, 1);
		args[13] = test_key_file(nx.dir, td.url);
		snprintf(bucket, sizeof(bucket), "%s/www/b", nx.dir);
		b.objects = bucket;
		d = daemon_spawn(sub->exe, args, logpath);
	} else {
		const char *level = getenv("BENCH_LOG_LEVEL");
		const char *args[] = { "--emulator", em->host, "--project",
		    b.project, "--storage-root", b.root, "--workers",
		    sub->workers, "--log-level", level ? level : "warning",
		    NULL };

		d = daemon_spawn(sub->exe, args, logpath);
	}
	open_ready_listen(&b);
	testimg_jpeg((uint32_t)w, (uint32_t)h, 1, &jpg, &jlen);
	t0 = xcalloc((size_t)n, sizeof(*t0));
	t1 = xcalloc((size_t)n, sizeof(*t1));
	lat = xcalloc((size_t)n, sizeof(*lat));
	names = xcalloc((size_t)n, sizeof(*names));

	/* warm-up: a few sessions, then idle for two seconds */
	for (int i = 0; i < 5; i++) {
		char ss[32];
		FsWrite *wr;

		snprintf(ss, sizeof(ss), "s%d", i);
		put_input(&b, "warm", ss, jpg, jlen);
		wr = capture_write(&b, "warm", ss);
		names[0] = xstrdup(wr->update->name);
		if (fs_commit(b.c, &wr, 1, 15000, NULL, &st) != 0)
			fatal("commit: %s", st.message);
		google__firestore__v1__write__free_unpacked(wr, NULL);
		if (wait_ready(&b, names, 1, t1, 30000) < 0)
			fatal("warm-up session never became ready; see %s",
			    logpath);
		free(names[0]);
	}
	sleep(2);
	idle_kb = rss_kb(d, "VmRSS:");
	workers_kb = children_rss_kb(d, &n_workers);
	cpu0 = cpu_ms(d);
	printf("== %s\n", sub->label);

	/* one at a time */
	for (int i = 0; i < n; i++) {
		char ss[32];
		FsWrite *wr;

		snprintf(ss, sizeof(ss), "s%d", i);
		put_input(&b, "serial", ss, jpg, jlen);
		wr = capture_write(&b, "serial", ss);
		names[0] = xstrdup(wr->update->name);
		t0[i] = test_now_ms();
		if (fs_commit(b.c, &wr, 1, 15000, NULL, &st) != 0)
			fatal("commit: %s", st.message);
		google__firestore__v1__write__free_unpacked(wr, NULL);
		if (wait_ready(&b, names, 1, &t1[i], 30000) < 0)
			fatal("session %s never became ready; see %s", ss,
			    logpath);
		lat[i] = t1[i] - t0[i];
		free(names[0]);
	}
	report("serial", lat, n, t1[n - 1] - t0[0]);

	/* one burst */
	{
		FsWrite **ws = xcalloc((size_t)n, sizeof(*ws));
		int64_t start, last = 0;

		for (int i = 0; i < n; i++) {
			char ev[16], ss[32];

			snprintf(ev, sizeof(ev), "burst%d", i % 3);
			snprintf(ss, sizeof(ss), "s%d", i);
			put_input(&b, ev, ss, jpg, jlen);
			ws[i] = capture_write(&b, ev, ss);
			names[i] = xstrdup(ws[i]->update->name);
		}
		start = test_now_ms();
		/* one commit, or as few as gRPC's 4 MiB message limit
		 * allows for big documents */
		for (int i = 0, per = b.doc_kb > 0 ? 3500 / b.doc_kb : n;
		    i < n; i += per > 0 ? per : 1) {
			int k = per > 0 ? per : 1;

			if (i + k > n)
				k = n - i;
			if (fs_commit(b.c, ws + i, (size_t)k, 30000, NULL,
			    &st) != 0)
				fatal("commit: %s", st.message);
		}
		for (int i = 0; i < n; i++)
			google__firestore__v1__write__free_unpacked(ws[i],
			    NULL);
		free(ws);
		if (wait_ready(&b, names, n, t1, 300000) < 0)
			fatal("burst did not finish; see %s", logpath);
		for (int i = 0; i < n; i++) {
			lat[i] = t1[i] - start;
			if (t1[i] > last)
				last = t1[i];
			free(names[i]);
		}
		report("burst", lat, n, last - start);
	}
	printf("RSS      idle %ld kB, peak %ld kB; CPU %ld ms for %d sessions\n",
	    idle_kb, rss_kb(d, "VmHWM:"), cpu_ms(d) - cpu0, 2 * n);
	if (n_workers > 0)
		printf("workers  %d process(es), %ld kB RSS in all when idle\n",
		    n_workers, workers_kb);

	fs_listen_close(b.l, NULL);
	watch_clear(&b.w);
	if (daemon_stop(d, 10000) != 0)
		fprintf(stderr, "%s did not exit cleanly; see %s\n",
		    sub->label, logpath);
	if (sub->gcs) {
		tokend_stop(&td);
		nginx_stop(&nx);
	}
	fs_client_free(b.c);
	free(jpg);
	free(t0);
	free(t1);
	free(lat);
	free(names);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sessions", required_argument, NULL, 'n' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "workers", required_argument, NULL, 'w' },
		{ "emulator-path", required_argument, NULL, 'e' },
		{ "node-reference", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "doc-kb", required_argument, NULL, 'k' },
		{ "gcs", no_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 },
	};
	struct subject fsd = { "firesyncd", "firesyncd", "daemon/firesyncd",
	    NULL, "4", false };
	struct subject node = { "node-reference", "node-reference",
	    "/usr/bin/env", NULL, NULL, false };
	const char *empath = FIRESTORE_EMULATOR_PATH;
	int n = 100, w = 640, h = 480, warmup = 300, c;
	bool gcs = false;
	struct emulator em = { 0 };

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': n = atoi(optarg); break;
		case 'd': fsd.exe = optarg; break;
		case 's':
			if (sscanf(optarg, "%dx%d", &w, &h) != 2)
				fatal("--size WxH");
			break;
		case 'w': fsd.workers = optarg; break;
		case 'e': empath = optarg; break;
		case 'r': node.script = optarg; break;
		case 'W': warmup = atoi(optarg); break;
		case 'k': doc_kb = atoi(optarg); break;
		case 'g': gcs = true; break;
		default:
			fprintf(stderr, "usage: firesync-bench [--sessions N] "
			    "[--daemon PATH] [--size WxH] [--workers N] "
			    "[--emulator-path PATH] [--warmup N] [--doc-kb N] "
			    "[--gcs] "
			    "[--node-reference tools/node-reference/daemon.mjs]\n");
			return 2;
		}
	}
	if (n < 1 || n > 500 || warmup < 1 || warmup > 500)
		fatal("--sessions and --warmup must be 1..500");
	log_init();
	if (emulator_start(&em, empath, 0) < 0)
		fatal("cannot start the Firestore emulator at %s", empath);
	grpc_init();
	printf("firesync-bench: %d sessions per run, %dx%d JPEG, emulator %s\n",
	    n, w, h, em.host);
	/* The emulator is a JVM: its first few hundred commits are several
	 * times slower than later ones.  Warm it up first (reported, not
	 * to be quoted), then measure; with a reference, measure firesyncd
	 * before and after it so neither side gets only the warmer emulator. */
	{
		struct subject warm = fsd;

		warm.label = "emulator warm-up (not a measurement)";
		warm.project = "warmup";
		run_subject(&em, &warm, warmup, w, h);
	}
	run_subject(&em, &fsd, n, w, h);
	if (gcs) {
		/* the same, with Cloud Storage through nginx, then local
		 * again, in one run */
		struct subject g = fsd;

		g.label = "firesyncd, gcs backend (nginx + TLS)";
		g.project = "firesyncd-gcs";
		g.gcs = true;
		run_subject(&em, &g, n, w, h);
		fsd.label = "firesyncd (again)";
		fsd.project = "firesyncd-again";
		run_subject(&em, &fsd, n, w, h);
	}
	if (node.script != NULL) {
		run_subject(&em, &node, n, w, h);
		fsd.label = "firesyncd (again)";
		fsd.project = "firesyncd-again";
		run_subject(&em, &fsd, n, w, h);
	}
	grpc_shutdown();
	emulator_stop(&em);
	return 0;
}
