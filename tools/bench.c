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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "alloc.h"
#include "clock.h"
#include "delayproxy.h"
#include "emulator.h"
#include "httpd.h"
#include "engine.h"
#include "gemini.h"
#include "log.h"
#include "strmap.h"
#include "testimg.h"

#ifndef FIRESTORE_EMULATOR_PATH
#define FIRESTORE_EMULATOR_PATH "/usr/lib/google-cloud-sdk/platform/" \
	"cloud-firestore-emulator/cloud_firestore_emulator"
#endif

struct bench {
	struct fs_client *c;
	char root[64];
	const char *project;
	int doc_kb;			/* padding per session document */
	const char *objects;		/* where captures go: the storage
					   root; NULL: the Storage emulator */
	struct storage_emu *emu;	/* gcs: the bucket's server */
	int metrics_port;		/* --scrape-ms: the daemon's */
	const char *experience;		/* a capture's; NULL: exp_bench */
};

static int doc_kb;			/* --doc-kb */
static int delay_ms;			/* --delay-ms: added per round trip */
static int n_daemons = 1;		/* --daemons */
static bool count_runs;			/* --daemons given: run the
					   passthrough model, count runs */
static const char *concurrency;		/* --concurrency, or NULL */
static int scrape_ms;			/* --scrape-ms: runs with and
					   without a metrics scraper */

#define MAX_DAEMONS	8

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

/* user+system CPU time of the process whose /proc/PID/stat is at path,
 * in ms, and its parent and process group in *ppid and *pgrp; -1 if it
 * cannot be read */
static long
stat_cpu_ms(const char *path, int *ppid, int *pgrp)
{
	char buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;
	int pp, g;

	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %d %d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &pp, &g, &ut, &st) != 4)
		return -1;
	if (ppid != NULL)
		*ppid = pp;
	if (pgrp != NULL)
		*pgrp = g;
	return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/* Number and total VmRSS (kB) of pid's child processes (its workers). */
static long
children_rss_kb(pid_t pid, int *count)
{
	char path[300];
	long total = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;

	*count = 0;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		int ppid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if (stat_cpu_ms(path, &ppid, NULL) >= 0 && ppid == pid) {
			total += rss_kb((pid_t)atoi(de->d_name), "VmRSS:");
			(*count)++;
		}
	}
	closedir(d);
	return total;
}

/* user+system CPU time of pid, in ms */
static long
cpu_ms(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return stat_cpu_ms(path, NULL, NULL);
}

/* user+system CPU time, in ms, of every live process in group pgid (the
 * emulator: a launcher script and its JVM) or, pgid 0, of pid and its
 * children (a daemon and its worker processes) */
static long
procs_cpu_ms(pid_t pgid, pid_t pid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	long total = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char path[300];
		long ms;
		int pp, g;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		ms = stat_cpu_ms(path, &pp, &g);
		if (ms >= 0 && (pgid != 0 ? g == (int)pgid :
		    pp == (int)pid || atoi(de->d_name) == (int)pid))
			total += ms;
	}
	closedir(d);
	return total;
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Listen to each of names' documents, one target each, as each guest's
 * tablet watches its own session; returns once every target is current.
 * (A query for every ready session would make the emulator send the
 * whole, growing result again after each change, and measure that.)  One
 * stream for a whole run: the emulator mishandles streams cancelled while
 * others are open, and can stop delivering changes to other listeners.
 */
static struct fs_listen *
watch_sessions(struct bench *b, char **names, int n)
{
	struct fs_target *targets = xcalloc((size_t)n, sizeof(*targets));
	int64_t end = test_now_ms() + 60000;
	struct fs_listen *l;
	size_t current = 0;

	for (int i = 0; i < n; i++)
		targets[i] = (struct fs_target){ .id = i + 1, .document =
		    names[i] };
	l = fs_listen_open(b->c, targets, (size_t)n);
	free(targets);
	while (current < (size_t)n && test_now_ms() < end) {
		FsListenResponse *resp;
		int rc = fs_listen_next(l, 100, &resp);

		if (rc < 0)
			fatal("bench: the Listen stream ended");
		if (rc == 0)
			continue;
		if (resp->response_type_case == FSLR(TARGET_CHANGE) &&
		    resp->target_change->target_change_type == FSTC(CURRENT))
			current += resp->target_change->n_target_ids;
		google__firestore__v1__listen_response__free_unpacked(resp,
		    NULL);
	}
	if (current < (size_t)n)
		fatal("bench: the session targets never became current");
	return l;
}

/* Pump the stream until every name in names is ready; records the
 * arrival time of each into done_ms, and (start_ms not NULL) when each
 * was first seen "transforming". */
static int
wait_states(struct fs_listen *l, char **names, int n, int64_t *start_ms,
    int64_t *done_ms, int64_t timeout_ms)
{
	int64_t end = test_now_ms() + timeout_ms;
	struct strmap *idx = strmap_new();
	int left = n;

	for (int i = 0; i < n; i++) {
		done_ms[i] = 0;
		if (start_ms != NULL)
			start_ms[i] = 0;
		strmap_put(idx, names[i], (void *)(intptr_t)(i + 1));
	}
	while (left > 0 && test_now_ms() < end) {
		FsListenResponse *resp;
		const FsDocument *doc;
		const char *state;
		intptr_t i;
		int rc = fs_listen_next(l, 100, &resp);

		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		if (resp->response_type_case == FSLR(DOCUMENT_CHANGE) &&
		    (doc = resp->document_change->document) != NULL &&
		    (i = (intptr_t)strmap_get(idx, doc->name)) > 0 &&
		    done_ms[i - 1] == 0 &&
		    (state = doc_string(doc, "state")) != NULL) {
			if (strcmp(state, "ready") == 0 ||
			    strcmp(state, "error") == 0) {
				/* an error ends it too: reported, not waited
				 * for until the timeout */
				if (strcmp(state, "error") == 0)
					fprintf(stderr, "bench: %s ended in "
					    "error: %s\n", doc->name,
					    doc_string(doc, "error"));
				done_ms[i - 1] = test_now_ms();
				left--;
			}
			if (start_ms != NULL && start_ms[i - 1] == 0 &&
			    (strcmp(state, "transforming") == 0 ||
			    strcmp(state, "ready") == 0))
				start_ms[i - 1] = test_now_ms();
		}
		google__firestore__v1__listen_response__free_unpacked(resp,
		    NULL);
	}
	strmap_free(idx, NULL);
	return left == 0 ? 0 : -ETIMEDOUT;
}

static int
wait_ready(struct fs_listen *l, char **names, int n, int64_t *done_ms,
    int64_t timeout_ms)
{
	return wait_states(l, names, n, NULL, done_ms, timeout_ms);
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
	name = xasprintf("%s/events/%s/sessions/%s", fs_docs_path(b->c), ev,
	    ss);
	google__firestore__v1__write__init(w);
	w->operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_UPDATE;
	fields = session_fields(ev, ss, b->experience ? b->experience :
	    "exp_bench", path, now_wall_ms());
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

	if (b->objects == NULL) {
		snprintf(path, sizeof(path), "captures/%s/%s/input.jpg", ev,
		    ss);
		if (storage_emu_put(b->emu, "b", path, jpg, len,
		    "image/jpeg") != 0)
			fatal("bench: cannot upload %s", path);
		return;
	}
	snprintf(path, sizeof(path), "mkdir -p %s/captures/%s/%s", b->objects,
	    ev, ss);
	if (system(path) != 0)
		fatal("bench: %s", path);
	snprintf(path, sizeof(path), "%s/captures/%s/%s/input.jpg",
	    b->objects, ev, ss);
	testimg_write(path, jpg, len);
}

/* A session's document name. */
static char *
session_name(const struct bench *b, const char *ev, const char *ss)
{
	return xasprintf("%s/events/%s/sessions/%s", fs_docs_path(b->c), ev,
	    ss);
}

/* Commit one session's capture and wait on l for it to be ready; its
 * latency in *lat_ms.  Fatal if it never is. */
static void
one_session(struct bench *b, struct fs_listen *l, const char *ev,
    const char *ss, const uint8_t *jpg, size_t jlen, int64_t *lat_ms,
    int64_t *done_ms, int64_t *commit_ms, const char *log)
{
	struct fs_status st;
	FsWrite *wr;
	char *name;
	int64_t t0;

	put_input(b, ev, ss, jpg, jlen);
	wr = capture_write(b, ev, ss);
	name = xstrdup(wr->update->name);
	t0 = test_now_ms();
	if (fs_commit(b->c, &wr, 1, 15000, NULL, &st) != 0)
		fatal("commit: %s", st.message);
	*commit_ms = test_now_ms() - t0;
	google__firestore__v1__write__free_unpacked(wr, NULL);
	if (wait_ready(l, &name, 1, done_ms, 30000) < 0)
		fatal("session %s/%s never became ready; see %s", ev, ss, log);
	*lat_ms = *done_ms - t0;
	free(name);
}

struct subject {
	const char *label;
	const char *project;		/* its own, so runs never mix */
	const char *exe;		/* firesyncd, or /usr/bin/env */
	const char *script;		/* node reference script, or NULL */
	const char *workers;
	bool gcs;			/* Cloud Storage through nginx */
	bool new_flags;			/* takes --firestore-concurrency */
	bool scrape;			/* its metrics scraped every
					   scrape_ms during the runs */
	const char *hosted_workers;	/* --hosted, --outage: its --workers;
					   NULL: its default */
};

/* What the daemons' logs say about claims and transform runs. */
struct tally {
	unsigned long claims, lost, taken;
	bool have_claims;		/* the daemons report them */
	int runs, sessions_run, run_twice;
};

/* Add up the daemons' shutdown lines and the passthrough plugin's
 * "transform-run" lines (one per run of the model). */
static void
tally_logs(char logs[][128], int n, struct tally *t)
{
	struct strmap *runs = strmap_new();

	memset(t, 0, sizeof(*t));
	for (int i = 0; i < n; i++) {
		FILE *f = fopen(logs[i], "r");
		char line[1024];

		while (f && fgets(line, sizeof(line), f)) {
			unsigned long c, l, k;
			char *p, id[64], ev[64], key[160];

			if ((p = strstr(line, " claims=")) && sscanf(p,
			    " claims=%lu claims_lost=%lu taken_by_others=%lu",
			    &c, &l, &k) == 3) {
				t->claims += c;
				t->lost += l;
				t->taken += k;
				t->have_claims = true;
			}
			if ((p = strstr(line, "transform-run session=")) &&
			    sscanf(p, "transform-run session=%63s event=%63s",
			    id, ev) == 2) {
				snprintf(key, sizeof(key), "%s/%s", ev, id);
				strmap_put(runs, key, (void *)((intptr_t)
				    strmap_get(runs, key) + 1));
				t->runs++;
			}
		}
		if (f)
			fclose(f);
	}
	{
		size_t pos = 0;
		const char *k;
		void *v;

		while (strmap_next(runs, &pos, &k, &v)) {
			t->sessions_run++;
			if ((intptr_t)v > 1)
				t->run_twice++;
		}
	}
	strmap_free(runs, NULL);
}

/* Start the subject's daemons (n_daemons of firesyncd, one reference)
 * against target (the emulator, or the delaying proxy). */
static int
spawn_all(const struct subject *sub, struct bench *b, const char *target,
    const char *plugins, struct nginx *nx, struct tokend *td, pid_t *d,
    char logs[][128])
{
	const char *level = getenv("BENCH_LOG_LEVEL");
	int n = sub->script ? 1 : n_daemons;

	if (level == NULL)
		level = plugins ? "info" : "warning";
	for (int i = 0; i < n; i++) {
		const char *args[32];
		int k = 0;

		snprintf(logs[i], sizeof(logs[i]), "%s/daemon%d.log", b->root,
		    i);
		if (sub->script != NULL) {
			args[k++] = "node";
			args[k++] = sub->script;
		}
		args[k++] = "--emulator";
		args[k++] = target;
		args[k++] = "--project";
		args[k++] = b->project;
		if (sub->script != NULL) {
			args[k++] = "--storage-root";
			args[k++] = b->root;
			args[k] = NULL;
			d[i] = daemon_spawn(sub->exe, args, logs[i]);
			continue;
		}
		if (sub->gcs) {
			args[k++] = "--storage-backend";
			args[k++] = "gcs";
			args[k++] = "--bucket";
			args[k++] = "b";
			args[k++] = "--storage-endpoint";
			args[k++] = nx->endpoint;
			args[k++] = "--storage-ca-file";
			args[k++] = nx->ca;
			args[k++] = "--credentials";
			args[k++] = test_key_file(nx->dir, td->url);
		} else {
			args[k++] = "--storage-root";
			args[k++] = b->root;
		}
		if (plugins != NULL) {
			args[k++] = "--plugin-dir";
			args[k++] = plugins;
		}
		if (concurrency != NULL && sub->new_flags) {
			args[k++] = "--firestore-concurrency";
			args[k++] = concurrency;
		}
		if (scrape_ms > 0 && i == 0) {
			/* the endpoint on in both runs; only the scraping
			 * differs */
			static char listen[32];

			b->metrics_port = free_port();
			snprintf(listen, sizeof(listen), "127.0.0.1:%d",
			    b->metrics_port);
			args[k++] = "--metrics-listen";
			args[k++] = listen;
		}
		args[k++] = "--workers";
		args[k++] = sub->workers;
		args[k++] = "--log-level";
		args[k++] = level;
		args[k] = NULL;
		d[i] = daemon_spawn(sub->exe, args, logs[i]);
	}
	return n;
}

/* With several daemons, sessions go through the passthrough test model,
 * which logs each run: a directory holding only it. */
static char *
passthrough_dir(const struct bench *b)
{
	char *dir = xasprintf("%s/plugins", b->root), cmd[600];

	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s && cp %s/passthrough.so "
	    "%s/ && chmod 755 %s/passthrough.so", dir, TEST_PLUGINS, dir, dir);
	if (system(cmd) != 0)
		fatal("bench: %s", cmd);
	return dir;
}

/* A Prometheus server's part: GET /metrics every scrape_ms. */
struct scraper {
	pthread_t thread;
	int port;
	atomic_bool stop;
	int n, failed;
	int64_t total_us;
};

static size_t
discard(char *data, size_t size, size_t n, void *arg)
{
	(void)data, (void)arg;
	return size * n;
}

static void *
scraper_main(void *arg)
{
	struct scraper *sc = arg;
	CURL *c = curl_easy_init();
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", sc->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	while (!atomic_load(&sc->stop)) {
		struct timespec a, z;
		long status = 0;

		clock_gettime(CLOCK_MONOTONIC, &a);
		if (curl_easy_perform(c) != CURLE_OK ||
		    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) !=
		    CURLE_OK || status != 200) {
			if (sc->n == 0) {	/* not listening yet */
				sleep_ms(10);
				continue;
			}
			sc->failed++;
		}
		clock_gettime(CLOCK_MONOTONIC, &z);
		sc->total_us += (z.tv_sec - a.tv_sec) * 1000000 +
		    (z.tv_nsec - a.tv_nsec) / 1000;
		sc->n++;
		for (int i = 0; i < scrape_ms / 10 && !atomic_load(&sc->stop);
		    i++)
			sleep_ms(10);
	}
	curl_easy_cleanup(c);
	return NULL;
}

/* Warm-up, serial and burst runs against one daemon; prints a report. */
static void
run_subject(struct emulator *em, const struct subject *sub, int n, int w,
    int h)
{
	struct bench b = { 0 };
	struct fs_status st;
	uint8_t *jpg;
	size_t jlen;
	int64_t *t0, *t1, *lat, *commit;
	char **names, logs[MAX_DAEMONS][128], target[64];
	char *plugins = NULL;
	struct nginx nx = { 0 };
	struct storage_emu sem = { 0 };
	struct tokend td = { 0 };
	struct delay_proxy *px = NULL;
	struct fs_listen *l;
	struct tally tl;
	long idle_kb, cpu0, workers_kb;
	int n_workers, nd;
	pid_t d[MAX_DAEMONS];
	struct scraper sc = { 0 };

	b.project = sub->project;
	b.doc_kb = doc_kb;
	b.objects = b.root;
	snprintf(b.root, sizeof(b.root), "/tmp/fsbench-XXXXXX");
	if (mkdtemp(b.root) == NULL)
		fatal("mkdtemp: %s", strerror(errno));
	b.c = admin_client(em->host, b.project);
	if (count_runs && sub->script == NULL)
		plugins = passthrough_dir(&b);
	{
		FsValue *f = value_map(), *cfg = value_map();

		value_map_put(cfg, "enabled", value_bool(plugins != NULL));
		if (plugins != NULL)
			value_map_put(cfg, "model",
			    value_string("test-passthrough"));
		value_map_put(f, "aiPhotoConfig", cfg);
		if (admin_set(b.c, "experiences/exp_bench", f) != 0)
			fatal("cannot write the experience");
	}
	snprintf(target, sizeof(target), "%s", em->host);
	if (delay_ms > 0) {
		int port = delay_proxy_start(&px, em->port, delay_ms);

		if (port < 0)
			fatal("bench: cannot start the delaying proxy");
		snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	}
	if (sub->gcs) {
		static const char *const tokens[] = { "bench-token" };

		if (storage_emu_start(&sem) != 0)
			fatal("bench: cannot start the Storage emulator "
			    "(make check installs it)");
		if (nginx_start(&nx, "bench-token", sem.port) != 0)
			fatal("bench: cannot start nginx");
		tokend_start(&td, tokens, 1);
		b.objects = NULL;
		b.emu = &sem;
	}
	nd = spawn_all(sub, &b, target, plugins, &nx, &td, d, logs);
	if (sub->scrape) {
		sc.port = b.metrics_port;
		atomic_store(&sc.stop, false);
		if (pthread_create(&sc.thread, NULL, scraper_main, &sc) != 0)
			fatal("bench: cannot start the scraper");
	}
	{
		/* every session of the run: warm-up, serial, burst */
		char **all = xcalloc((size_t)(5 + 2 * n), sizeof(*all));
		int k = 0;

		for (int i = 0; i < 5; i++) {
			char ss[32];

			snprintf(ss, sizeof(ss), "s%d", i);
			all[k++] = session_name(&b, "warm", ss);
		}
		for (int i = 0; i < n; i++) {
			char ev[16], ss[32];

			snprintf(ss, sizeof(ss), "s%d", i);
			all[k++] = session_name(&b, "serial", ss);
			snprintf(ev, sizeof(ev), "burst%d", i % 3);
			all[k++] = session_name(&b, ev, ss);
		}
		l = watch_sessions(&b, all, k);
		for (int i = 0; i < k; i++)
			free(all[i]);
		free(all);
	}
	testimg_jpeg((uint32_t)w, (uint32_t)h, 1, &jpg, &jlen);
	t0 = xcalloc((size_t)n, sizeof(*t0));
	t1 = xcalloc((size_t)n, sizeof(*t1));
	lat = xcalloc((size_t)n, sizeof(*lat));
	commit = xcalloc((size_t)n, sizeof(*commit));
	names = xcalloc((size_t)n, sizeof(*names));

	/* warm-up: a few sessions, then idle for two seconds */
	for (int i = 0; i < 5; i++) {
		char ss[32];

		snprintf(ss, sizeof(ss), "s%d", i);
		one_session(&b, l, "warm", ss, jpg, jlen, &lat[0], &t1[0],
		    &commit[0], logs[0]);
	}
	sleep(2);
	idle_kb = rss_kb(d[0], "VmRSS:");
	workers_kb = children_rss_kb(d[0], &n_workers);
	cpu0 = cpu_ms(d[0]);
	if (count_runs || delay_ms > 0)
		printf("== %s (%d daemon(s), %d ms per round trip)\n",
		    sub->label, nd, delay_ms);
	else
		printf("== %s\n", sub->label);

	/* one at a time */
	for (int i = 0; i < n; i++) {
		char ss[32];

		snprintf(ss, sizeof(ss), "s%d", i);
		one_session(&b, l, "serial", ss, jpg, jlen, &lat[i], &t1[i],
		    &commit[i], logs[0]);
		t0[i] = t1[i] - lat[i];
	}
	report("serial", lat, n, t1[n - 1] - t0[0]);
	/* the unit of the floor under serial latency: a session is three
	 * commits in a row (the app's capture, the claim, the finish) and
	 * two Listen deliveries (to the daemon, back to the app) */
	qsort(commit, (size_t)n, sizeof(*commit), cmp64);
	printf("floor    the app's own capture commit: p50=%" PRId64 " ms; "
	    "a session is 3 commits in a row\n", commit[n / 2]);

	/* one burst */
	{
		FsWrite **ws = xcalloc((size_t)n, sizeof(*ws));
		int64_t start, last = 0;
		long em0, self0, d0 = 0, d1 = 0;

		for (int i = 0; i < n; i++) {
			char ev[16], ss[32];

			snprintf(ev, sizeof(ev), "burst%d", i % 3);
			snprintf(ss, sizeof(ss), "s%d", i);
			put_input(&b, ev, ss, jpg, jlen);
			ws[i] = capture_write(&b, ev, ss);
			names[i] = xstrdup(ws[i]->update->name);
		}
		em0 = procs_cpu_ms(em->pid, 0);
		self0 = cpu_ms(getpid());	/* the app's side */
		for (int i = 0; i < nd; i++)
			d0 += procs_cpu_ms(0, d[i]);
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
		if (wait_ready(l, names, n, t1, 300000) < 0)
			fatal("burst did not finish; see %s", logs[0]);
		for (int i = 0; i < n; i++) {
			lat[i] = t1[i] - start;
			if (t1[i] > last)
				last = t1[i];
			free(names[i]);
		}
		report("burst", lat, n, last - start);
		for (int i = 0; i < nd; i++)
			d1 += procs_cpu_ms(0, d[i]);
		/* where the machine's CPU went while the burst ran: when
		 * the three add up to every core, the burst is CPU-bound
		 * and the emulator's share sets the ceiling */
		{
			long emu = procs_cpu_ms(em->pid, 0) - em0;
			long self = cpu_ms(getpid()) - self0, own = d1 - d0;
			long cores = sysconf(_SC_NPROCESSORS_ONLN);
			int64_t span = test_now_ms() - start;

			printf("CPU      in the burst (%" PRId64 " ms, %ld "
			    "cores): emulator %ld ms (%.1f ms per session), "
			    "daemon and workers %ld ms, app %ld ms; %.0f%% of "
			    "the machine\n", span, cores, emu, (double)emu / n,
			    own, self, span > 0 && cores > 0 ? 100.0 *
			    (double)(emu + own + self) / ((double)span *
			    (double)cores) : 0.0);
		}
	}
	printf("RSS      idle %ld kB, peak %ld kB; CPU %ld ms for %d sessions\n",
	    idle_kb, rss_kb(d[0], "VmHWM:"), cpu_ms(d[0]) - cpu0, 2 * n);
	if (n_workers > 0)
		printf("workers  %d process(es), %ld kB RSS in all when idle\n",
		    n_workers, workers_kb);

	if (sub->scrape) {
		atomic_store(&sc.stop, true);
		pthread_join(sc.thread, NULL);
		printf("scrapes  %d of /metrics, one every %d ms, %d failed; "
		    "%.1f ms each on average\n", sc.n, scrape_ms, sc.failed,
		    sc.n ? (double)sc.total_us / sc.n / 1000.0 : 0.0);
	}
	fs_listen_close(l, NULL);
	for (int i = 0; i < nd; i++)
		if (daemon_stop(d[i], 10000) != 0)
			fprintf(stderr, "%s did not exit cleanly; see %s\n",
			    sub->label, logs[i]);
	tally_logs(logs, nd, &tl);
	if (tl.have_claims)
		printf("claims   %lu sent for %d sessions (%.2f per session), "
		    "%lu lost, %lu seen taken by another daemon first\n",
		    tl.claims, 2 * n + 5, (double)tl.claims / (2 * n + 5),
		    tl.lost, tl.taken);
	if (plugins != NULL)
		printf("runs     %d transform runs for %d sessions; %d "
		    "session(s) run more than once\n", tl.runs,
		    tl.sessions_run, tl.run_twice);
	delay_proxy_stop(px);
	if (sub->gcs) {
		tokend_stop(&td);
		nginx_stop(&nx);
		storage_emu_stop(&sem);
	}
	fs_client_free(b.c);
	free(plugins);
	free(jpg);
	free(t0);
	free(t1);
	free(lat);
	free(commit);
	free(names);
}

/* ---- hosted models at event scale (--hosted MS) ---- */

/* Peak RSS of a daemon and its workers together, sampled every 50 ms. */
struct rss_sampler {
	pthread_t thread;
	pid_t pid;
	atomic_bool stop;
	long peak_kb;
	int peak_workers;
};

static void *
rss_main(void *arg)
{
	struct rss_sampler *r = arg;

	while (!atomic_load(&r->stop)) {
		int n;
		long kb = rss_kb(r->pid, "VmRSS:") + children_rss_kb(r->pid,
		    &n);

		if (kb > r->peak_kb) {
			r->peak_kb = kb;
			r->peak_workers = n;
		}
		sleep_ms(50);
	}
	return NULL;
}

/* Commit captures of ss[0..n) in events ev[i], all in one commit, with
 * experience exp; their names into names. */
static void
capture_all(struct bench *b, char **ev, char **ss, int n, const char *exp,
    const uint8_t *jpg, size_t jlen, char **names)
{
	FsWrite **ws = xcalloc((size_t)n, sizeof(*ws));
	struct fs_status st;

	b->experience = exp;
	for (int i = 0; i < n; i++) {
		put_input(b, ev[i], ss[i], jpg, jlen);
		ws[i] = capture_write(b, ev[i], ss[i]);
		names[i] = xstrdup(ws[i]->update->name);
	}
	if (fs_commit(b->c, ws, (size_t)n, 30000, NULL, &st) != 0)
		fatal("commit: %s", st.message);
	for (int i = 0; i < n; i++)
		google__firestore__v1__write__free_unpacked(ws[i], NULL);
	free(ws);
}

static int64_t
median(int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp64);
	return v[n / 2];
}

/* The directory of the subject's build tree its plugins are in. */
static char *
build_tree(const char *exe)
{
	char *dir = realpath(exe, NULL), *slash;

	if (dir == NULL)
		fatal("bench: %s: %s", exe, strerror(errno));
	for (int i = 0; i < 2 && (slash = strrchr(dir, '/')) != NULL; i++)
		*slash = '\0';
	return dir;
}

/* The end of a hosted run: its stream, daemon and test server. */
static void
hosted_done(const struct subject *sub, struct bench *b, struct gemini *gm,
    struct fs_listen *l, pid_t d, const char *log, uint8_t *jpg)
{
	fs_listen_close(l, NULL);
	if (daemon_stop(d, 30000) != 0)
		fprintf(stderr, "%s did not exit cleanly; see %s\n", sub->label,
		    log);
	gemini_stop(gm);
	fs_client_free(b->c);
	free(jpg);
}

/*
 * A hosted model answering after latency_ms (the project's Gemini test
 * server behind nginx), the genai plugin at the subject's defaults with
 * `calls` as given (an older build ignores it), and cartoon as the
 * local look:
 *   1. a local-look guest alone, three times (its solo latency);
 *   2. 64 guests at once on the hosted model across four events, and a
 *      local-look guest a second later;
 *   3. one event with 100 hosted guests, then a guest in each of three
 *      other events a second later: when each of the three starts.
 */
/* A hosted run's set-up: the subject's genai and cartoon plugins, a
 * configuration against gm (genai's section gets extra), the experiences
 * exp_ai and exp_local; its daemon started, its log in log. */
static pid_t
hosted_subject(struct emulator *em, const struct subject *sub,
    struct bench *b, const struct gemini *gm, const char *extra, char *log,
    size_t loglen)
{
	char conf[128], cmd[1400], *tree, plugins[128];
	const char *args[24];
	FILE *f;
	int k = 0;

	b->project = sub->project;
	snprintf(b->root, sizeof(b->root), "/tmp/fsbench-XXXXXX");
	if (mkdtemp(b->root) == NULL)
		fatal("mkdtemp: %s", strerror(errno));
	b->objects = b->root;
	b->c = admin_client(em->host, b->project);
	tree = build_tree(sub->exe);
	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s/plugins && cp "
	    "%s/plugins/genai/.libs/genai.so %s/plugins/cartoon/.libs/"
	    "cartoon.so %s/plugins/ && chmod 755 %s/plugins/*.so && "
	    "printf 'AIzaBench\\n' > %s/key && chmod 600 %s/key", b->root,
	    tree, tree, b->root, b->root, b->root, b->root);
	if (system(cmd) != 0)
		fatal("bench: %s", cmd);
	free(tree);
	snprintf(conf, sizeof(conf), "%s/firesyncd.conf", b->root);
	if ((f = fopen(conf, "w")) == NULL)
		fatal("bench: %s: %s", conf, strerror(errno));
	fprintf(f, "[plugin.genai]\nnetwork = yes\nendpoint = %s\nca-file = "
	    "%s\napi-key-file = %s/key\nmodels = gemini-2.5-flash-image\n"
	    "timeout = 300\n%s", gm->nx.endpoint, gm->nx.ca, b->root, extra);
	fclose(f);
	{
		FsValue *x = value_map(), *cfg = value_map();

		value_map_put(cfg, "enabled", value_bool(true));
		value_map_put(cfg, "model", value_string(
		    "gemini-2.5-flash-image"));
		value_map_put(cfg, "prompt", value_string("us, as a painting"));
		value_map_put(x, "aiPhotoConfig", cfg);
		if (admin_set(b->c, "experiences/exp_ai", x) != 0)
			fatal("cannot write the experience");
		x = value_map();
		cfg = value_map();
		value_map_put(cfg, "enabled", value_bool(true));
		value_map_put(cfg, "model", value_string("cartoon"));
		value_map_put(x, "aiPhotoConfig", cfg);
		if (admin_set(b->c, "experiences/exp_local", x) != 0)
			fatal("cannot write the experience");
	}
	snprintf(log, loglen, "%s/daemon.log", b->root);
	snprintf(plugins, sizeof(plugins), "%s/plugins", b->root);
	args[k++] = "--emulator";
	args[k++] = em->host;
	args[k++] = "--project";
	args[k++] = b->project;
	args[k++] = "--storage-root";
	args[k++] = b->root;
	args[k++] = "--plugin-dir";
	args[k++] = plugins;
	args[k++] = "-c";
	args[k++] = conf;
	if (sub->hosted_workers != NULL) {
		/* as many runner threads, or they would be the limit */
		args[k++] = "--workers";
		args[k++] = sub->hosted_workers;
		args[k++] = "--firestore-concurrency";
		args[k++] = sub->hosted_workers;
	}
	args[k++] = "--log-level";
	args[k++] = getenv("BENCH_LOG_LEVEL") ? getenv("BENCH_LOG_LEVEL") :
	    "warning";
	args[k] = NULL;
	return daemon_spawn(sub->exe, args, log);
}

/*
 * A hosted model answering after latency_ms (the project's Gemini test
 * server behind nginx), the genai plugin at the subject's defaults with
 * `calls` as given (an older build ignores it), and cartoon as the
 * local look:
 *   1. a local-look guest alone, three times (its solo latency);
 *   2. 64 guests at once on the hosted model across four events, and a
 *      local-look guest a second later;
 *   3. one event with 100 hosted guests, then a guest in each of three
 *      other events a second later: when each of the three starts.
 */
static void
run_hosted(struct emulator *em, const struct subject *sub, int latency_ms,
    int calls, int w, int h)
{
	enum { BURST = 64, BIG = 100 };
	struct bench b = { 0 };
	struct gemini gm;
	struct rss_sampler rs = { 0 };
	char log[128], extra[64], *ev[BIG + 3], *ss[BIG + 3];
	char *names[BIG + 3];
	int64_t t0, start[BIG + 3], done[BIG + 3], solo[3], last = 0, local;
	uint8_t *jpg;
	size_t jlen;
	struct fs_listen *l;
	long cpu_server, cpu_daemon;
	pid_t d;
	int k = 0;

	if (gemini_start_slow(&gm, "AIzaBench", latency_ms) != 0)
		fatal("bench: cannot start the Gemini test server");
	snprintf(extra, sizeof(extra), "calls = %d\n", calls);
	d = hosted_subject(em, sub, &b, &gm, calls > 0 ? extra : "", log,
	    sizeof(log));

	/* every guest of the run, watched as their tablets do */
	k = 0;
	for (int i = 0; i < 5; i++) {
		ev[k] = xstrdup("warm");
		ss[k++] = xasprintf("w%d", i);
	}
	for (int i = 0; i < 3; i++) {
		ev[k] = xstrdup("solo");
		ss[k++] = xasprintf("s%d", i);
	}
	for (int i = 0; i < k; i++)
		names[i] = session_name(&b, ev[i], ss[i]);
	{
		char **all = xcalloc(BURST + BIG + 16, sizeof(*all));
		int n = 0;

		for (int i = 0; i < k; i++)
			all[n++] = xstrdup(names[i]);
		for (int i = 0; i < BURST; i++) {
			char e[32], s1[32];

			snprintf(e, sizeof(e), "burst%d", i % 4);
			snprintf(s1, sizeof(s1), "g%d", i);
			all[n++] = session_name(&b, e, s1);
		}
		all[n++] = session_name(&b, "burst-local", "l0");
		for (int i = 0; i < BIG; i++) {
			char s1[32];

			snprintf(s1, sizeof(s1), "a%d", i);
			all[n++] = session_name(&b, "activation", s1);
		}
		for (int i = 0; i < 3; i++) {
			char e[32];

			snprintf(e, sizeof(e), "wedding%d", i);
			all[n++] = session_name(&b, e, "guest");
		}
		l = watch_sessions(&b, all, n);
		for (int i = 0; i < n; i++)
			free(all[i]);
		free(all);
	}
	testimg_jpeg((uint32_t)w, (uint32_t)h, 1, &jpg, &jlen);
	printf("== %s: a hosted model answering in %d ms, %dx%d JPEG\n",
	    sub->label, latency_ms, w, h);

	/* warm-up: two hosted calls and three local looks */
	capture_all(&b, ev, ss, 2, "exp_ai", jpg, jlen, names);
	capture_all(&b, ev + 2, ss + 2, 3, "exp_local", jpg, jlen, names + 2);
	if (wait_ready(l, names, 5, done, 120000) < 0)
		fatal("bench: the warm-up did not finish; see %s", log);
	for (int i = 0; i < 5; i++)
		free(names[i]);

	/* 1. the local look alone */
	for (int i = 0; i < 3; i++) {
		capture_all(&b, ev + 5 + i, ss + 5 + i, 1, "exp_local", jpg,
		    jlen, names);
		t0 = test_now_ms();
		if (wait_ready(l, names, 1, done, 60000) < 0)
			fatal("bench: a local look never finished; see %s",
			    log);
		solo[i] = done[0] - t0;
		free(names[0]);
	}
	for (int i = 0; i < k; i++) {
		free(ev[i]);
		free(ss[i]);
	}

	/* 2. the burst, and a local look a second into it */
	for (int i = 0; i < BURST; i++) {
		ev[i] = xasprintf("burst%d", i % 4);
		ss[i] = xasprintf("g%d", i);
	}
	ev[BURST] = xstrdup("burst-local");
	ss[BURST] = xstrdup("l0");
	rs.pid = d;
	atomic_store(&rs.stop, false);
	if (pthread_create(&rs.thread, NULL, rss_main, &rs) != 0)
		fatal("bench: cannot start the RSS sampler");
	cpu_server = procs_cpu_ms(0, gm.pid) + procs_cpu_ms(0, gm.nx.pid);
	cpu_daemon = procs_cpu_ms(0, d);
	t0 = test_now_ms();
	capture_all(&b, ev, ss, BURST, "exp_ai", jpg, jlen, names);
	sleep_ms(1000);
	capture_all(&b, ev + BURST, ss + BURST, 1, "exp_local", jpg, jlen,
	    names + BURST);
	local = test_now_ms();
	if (wait_ready(l, names, BURST + 1, done, 900000) < 0)
		fatal("bench: the burst did not finish; see %s", log);
	atomic_store(&rs.stop, true);
	pthread_join(rs.thread, NULL);
	for (int i = 0; i < BURST; i++)
		if (done[i] > last)
			last = done[i];
	printf("burst    %d hosted guests at once: the last ready after %"
	    PRId64 " ms = %.2f x the model's %d ms; the service saw %d at "
	    "once\n", BURST, last - t0, (double)(last - t0) / latency_ms,
	    latency_ms, gemini_peak(&gm));
	{
		int64_t s = median(solo, 3);

		printf("local    a local look during the burst: ready after %"
		    PRId64 " ms; alone: %" PRId64 " ms (median of 3); "
		    "%+" PRId64 " ms\n", done[BURST] - local, s,
		    done[BURST] - local - s);
	}
	printf("RSS      peak of daemon + workers during the burst: %ld kB "
	    "(%d worker process(es) then)\n", rs.peak_kb, rs.peak_workers);
	printf("CPU      in the burst (%ld cores): the test server and nginx "
	    "%ld ms, daemon and workers %ld ms\n",
	    sysconf(_SC_NPROCESSORS_ONLN), procs_cpu_ms(0, gm.pid) +
	    procs_cpu_ms(0, gm.nx.pid) - cpu_server, procs_cpu_ms(0, d) -
	    cpu_daemon);
	for (int i = 0; i <= BURST; i++) {
		free(ev[i]);
		free(ss[i]);
		free(names[i]);
	}

	/* 3. one event's hundred, then three other events' guests */
	for (int i = 0; i < BIG; i++) {
		ev[i] = xstrdup("activation");
		ss[i] = xasprintf("a%d", i);
	}
	for (int i = 0; i < 3; i++) {
		ev[BIG + i] = xasprintf("wedding%d", i);
		ss[BIG + i] = xstrdup("guest");
	}
	t0 = test_now_ms();
	capture_all(&b, ev, ss, BIG, "exp_ai", jpg, jlen, names);
	sleep_ms(1000);
	local = test_now_ms();
	capture_all(&b, ev + BIG, ss + BIG, 3, "exp_ai", jpg, jlen,
	    names + BIG);
	if (wait_states(l, names, BIG + 3, start, done, 1800000) < 0)
		fatal("bench: the activation did not finish; see %s", log);
	last = 0;
	for (int i = 0; i < BIG; i++)
		if (done[i] > last)
			last = done[i];
	printf("fair     %d guests of one event, then 3 of other events 1 s "
	    "later: the three started after", BIG);
	for (int i = 0; i < 3; i++)
		printf(" %" PRId64, start[BIG + i] - local);
	printf(" ms and were ready after");
	for (int i = 0; i < 3; i++)
		printf(" %" PRId64, done[BIG + i] - local);
	printf(" ms; the hundredth after %" PRId64 " ms\n", last - t0);
	for (int i = 0; i < BIG + 3; i++) {
		free(ev[i]);
		free(ss[i]);
		free(names[i]);
	}
	hosted_done(sub, &b, &gm, l, d, log, jpg);
}

/*
 * A 30 s outage of the hosted model (503 to everything) with 20 guests
 * captured as it begins: the requests the service receives during it,
 * how the guests end (with a fallback look configured), and, once it is
 * over, how long until a guest gets the model's image again (a guest
 * every half second).
 */
static void
run_outage(struct emulator *em, const struct subject *sub, int w, int h)
{
	enum { N = 20, OUTAGE_MS = 30000 };
	struct bench b = { 0 };
	struct gemini gm;
	char log[128], *ev[N], *ss[N], *names[N];
	int64_t t0, done[N], end, back = -1;
	int ready = 0, errors = 0, during, images;
	uint8_t *jpg;
	size_t jlen;
	struct fs_listen *l;
	pid_t d;

	if (gemini_start(&gm, "AIzaBench") != 0)
		fatal("bench: cannot start the Gemini test server");
	setenv("BENCH_LOG_LEVEL", "notice", 0);	/* the fallback lines */
	d = hosted_subject(em, sub, &b, &gm, "fallback = cartoon\n", log,
	    sizeof(log));
	for (int i = 0; i < N; i++) {
		ev[i] = xasprintf("outage%d", i % 2);
		ss[i] = xasprintf("g%d", i);
		names[i] = session_name(&b, ev[i], ss[i]);
	}
	l = watch_sessions(&b, names, N);
	for (int i = 0; i < N; i++)
		free(names[i]);
	testimg_jpeg((uint32_t)w, (uint32_t)h, 1, &jpg, &jlen);
	printf("== %s: a 30 s outage (503 to everything), %d guests "
	    "captured as it begins, fallback = cartoon\n", sub->label, N);
	/* warm: one call answered, so the worker and its connection are up */
	{
		char *wev = "warmup", *wss = "w0", *wn;

		capture_all(&b, &wev, &wss, 1, "exp_ai", jpg, jlen, &wn);
		fs_listen_close(l, NULL);
		l = watch_sessions(&b, &wn, 1);
		if (wait_ready(l, &wn, 1, done, 60000) < 0)
			fatal("bench: the warm-up failed; see %s", log);
		fs_listen_close(l, NULL);
		free(wn);
		for (int i = 0; i < N; i++)
			names[i] = session_name(&b, ev[i], ss[i]);
		l = watch_sessions(&b, names, N);
		for (int i = 0; i < N; i++)
			free(names[i]);
	}
	gemini_mode(&gm, "503");
	t0 = test_now_ms();
	capture_all(&b, ev, ss, N, "exp_ai", jpg, jlen, names);
	if (wait_ready(l, names, N, done, OUTAGE_MS * 3) < 0)
		fatal("bench: the guests never ended; see %s", log);
	for (int i = 0; i < N; i++) {
		char path[256];
		FsDocument *doc;

		snprintf(path, sizeof(path), "events/%s/sessions/%s", ev[i],
		    ss[i]);
		doc = admin_get(b.c, path);
		if (doc && doc_string(doc, "state") &&
		    strcmp(doc_string(doc, "state"), "ready") == 0)
			ready++;
		else
			errors++;
		doc_free(doc);
	}
	end = t0 + OUTAGE_MS;
	while (test_now_ms() < end)
		sleep_ms(50);
	during = gemini_count(&gm, "-> 503 (mode)");
	gemini_mode(&gm, NULL);
	images = gemini_count(&gm, "-> image");
	/* a guest every half second until the model answers one */
	for (int i = 0; i < 240 && back < 0; i++) {
		char e[16] = "after", s1[16], *pe = e, *ps = s1, *name;

		snprintf(s1, sizeof(s1), "a%d", i);
		capture_all(&b, &pe, &ps, 1, "exp_ai", jpg, jlen, &name);
		free(name);
		for (int k = 0; k < 10 && back < 0; k++) {
			if (gemini_count(&gm, "-> image") > images)
				back = test_now_ms() - end;
			sleep_ms(50);
		}
	}
	printf("outage   the service received %d request(s) during the "
	    "outage for %d guests; %d ended ready (%d with the fallback "
	    "look), %d in error\n", during, N, ready, log_count(log,
	    "the guest gets the fallback look"), errors);
	{
		int64_t last = 0;

		for (int i = 0; i < N; i++)
			if (done[i] > last)
				last = done[i];
		printf("ended    the guests' last state %" PRId64 " ms after the "
		    "outage began\n", last - t0);
	}
	printf("recover  the model answered a guest again %" PRId64 " ms after "
	    "the outage ended\n", back);
	for (int i = 0; i < N; i++) {
		free(ev[i]);
		free(ss[i]);
		free(names[i]);
	}
	hosted_done(sub, &b, &gm, l, d, log, jpg);
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
		{ "delay-ms", required_argument, NULL, 'D' },
		{ "daemons", required_argument, NULL, 'N' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "baseline", required_argument, NULL, 'b' },
		{ "scrape-ms", required_argument, NULL, 'S' },
		{ "hosted", required_argument, NULL, 'H' },
		{ "calls", required_argument, NULL, 'C' },
		{ "outage", no_argument, NULL, 'O' },
		{ "baseline-workers", required_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 },
	};
	struct subject fsd = { "firesyncd", "firesyncd", "daemon/firesyncd",
	    NULL, "4", false, true, false, NULL };
	struct subject node = { "node-reference", "node-reference",
	    "/usr/bin/env", NULL, NULL, false, false, false, NULL };
	struct subject base = { "baseline", "baseline", NULL, NULL, "4",
	    false, false, false, NULL };
	const char *empath = FIRESTORE_EMULATOR_PATH;
	int n = 100, w = 640, h = 480, warmup = 300, c, hosted = 0;
	int calls = 64;
	bool outage = false;
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
		case 'D': delay_ms = atoi(optarg); break;
		case 'N':
			n_daemons = atoi(optarg);
			count_runs = true;
			break;
		case 'c': concurrency = optarg; break;
		case 'b': base.exe = optarg; break;
		case 'S': scrape_ms = atoi(optarg); break;
		case 'H': hosted = atoi(optarg); break;
		case 'C': calls = atoi(optarg); break;
		case 'O': outage = true; break;
		case 'B': base.hosted_workers = optarg; break;
		default:
			fprintf(stderr, "usage: firesync-bench [--sessions N] "
			    "[--daemon PATH] [--size WxH] [--workers N] "
			    "[--emulator-path PATH] [--warmup N] [--doc-kb N] "
			    "[--gcs] [--delay-ms MS] [--daemons N] "
			    "[--concurrency N] [--baseline PATH] [--scrape-ms MS] "
			    "[--hosted MS [--calls N] [--baseline-workers N]] "
			    "[--outage] "
			    "[--node-reference tools/node-reference/daemon.mjs]\n");
			return 2;
		}
	}
	if (n_daemons < 1 || n_daemons > MAX_DAEMONS || delay_ms < 0 ||
	    delay_ms > 10000)
		fatal("--daemons must be 1..%d and --delay-ms 0..10000",
		    MAX_DAEMONS);
	base.workers = fsd.workers;
	if (n < 1 || n > 500 || warmup < 1 || warmup > 500)
		fatal("--sessions and --warmup must be 1..500");
	log_init();
	setvbuf(stdout, NULL, _IOLBF, 0);	/* each figure as it comes */
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
		int nd = n_daemons, dl = delay_ms;
		bool cr = count_runs;

		warm.label = "emulator warm-up (not a measurement)";
		warm.project = "warmup";
		n_daemons = 1;
		count_runs = false;
		delay_ms = 0;
		run_subject(&em, &warm, warmup, w, h);
		n_daemons = nd;
		delay_ms = dl;
		count_runs = cr;
	}
	if (outage) {
		if (base.exe != NULL) {
			base.project = "outage-baseline";
			run_outage(&em, &base, w, h);
		}
		fsd.project = "outage-firesyncd";
		run_outage(&em, &fsd, w, h);
		grpc_shutdown();
		emulator_stop(&em);
		return 0;
	}
	if (hosted > 0) {
		/* the previous build and this one, one after the other on
		 * the same emulator and test server settings */
		if (base.exe != NULL) {
			base.project = "hosted-baseline";
			run_hosted(&em, &base, hosted, calls, w, h);
		}
		fsd.project = "hosted-firesyncd";
		run_hosted(&em, &fsd, hosted, calls, w, h);
		grpc_shutdown();
		emulator_stop(&em);
		return 0;
	}
	if (base.exe != NULL)	/* another build, side by side */
		run_subject(&em, &base, n, w, h);
	if (scrape_ms > 0) {
		/* unscraped and scraped, three pairs: the emulator keeps
		 * warming up, so compare within a pair */
		for (int round = 0; round < 3; round++) {
			struct subject plain = fsd, scraped = fsd;

			static const char *const pl[] = { "firesyncd, not "
			    "scraped (round 1)", "firesyncd, not scraped "
			    "(round 2)", "firesyncd, not scraped (round 3)" };
			static const char *const sl[] = { "firesyncd, /metrics "
			    "scraped (round 1)", "firesyncd, /metrics scraped "
			    "(round 2)", "firesyncd, /metrics scraped (round "
			    "3)" };
			static const char *const pp[] = { "plain1", "plain2",
			    "plain3" };
			static const char *const sp[] = { "scraped1",
			    "scraped2", "scraped3" };

			plain.label = pl[round];
			plain.project = pp[round];
			scraped.label = sl[round];
			scraped.project = sp[round];
			scraped.scrape = true;
			/* ABBA: the second run of a pair gets a warmer
			 * emulator, so the order alternates */
			if (round % 2 == 0) {
				run_subject(&em, &plain, n, w, h);
				run_subject(&em, &scraped, n, w, h);
			} else {
				run_subject(&em, &scraped, n, w, h);
				run_subject(&em, &plain, n, w, h);
			}
		}
		grpc_shutdown();
		emulator_stop(&em);
		return 0;
	}
	run_subject(&em, &fsd, n, w, h);
	if (gcs) {
		/* the same, with Cloud Storage through nginx, then local
		 * again, in one run */
		struct subject g = fsd;

		g.label = "firesyncd, gcs backend (JSON API, nginx + TLS in "
		    "front of the Storage emulator)";
		g.project = "firesyncd-gcs";
		g.gcs = true;
		run_subject(&em, &g, n, w, h);
		fsd.label = "firesyncd (again)";
		fsd.project = "firesyncd-again";
		run_subject(&em, &fsd, n, w, h);
	}
	if (base.exe != NULL) {
		base.label = "baseline (again)";
		base.project = "baseline-again";
		run_subject(&em, &base, n, w, h);
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
