/*
 * firesyncctl - ask a running firesyncd how it is doing.
 *
 *     firesyncctl [-c FILE] [--endpoint URL | --socket PATH] status
 *
 * Reads the daemon's Prometheus endpoint ([metrics] listen) and prints a
 * summary for the admin on duty: up since, the Listen stream, sessions in
 * flight and queued, the last hour's sessions by outcome with p50/p95
 * capture-to-ready latency, and the models that failed.  Exits 0 when the
 * daemon answers and its stream is up, 1 when the stream is down, 2 when
 * the daemon cannot be reached, 3 on a usage error: fit for a health
 * check.
 */
#include "config.h"

#include <curl/curl.h>
#include <getopt.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define DEFAULT_CONFIG SYSCONFDIR "/firesync/firesyncd.conf"
#define DEFAULT_LISTEN "127.0.0.1:9464"
#define BODY_MAX (4u << 20)

/* [metrics] listen from the configuration file, if it says. */
static int
on_ini(void *arg, const char *section, const char *key, const char *value)
{
	char **listen = arg;

	if (strcmp(section, "metrics") == 0 && strcmp(key, "listen") == 0) {
		free(*listen);
		*listen = strdup(value);
	}
	return 1;
}

/* The value of the sample "name" or "name{labels}" exactly; NAN if the
 * text has none. */
static double
sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'),
	    p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return NAN;
}

static void
duration(double s, char *out, size_t len)
{
	long t = (long)s;

	if (t >= 86400)
		snprintf(out, len, "%ldd %ldh", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(out, len, "%ldh %ldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(out, len, "%ldm %lds", t / 60, t % 60);
	else
		snprintf(out, len, "%lds", t);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: firesyncctl [-c FILE] [--endpoint URL | --socket "
	    "PATH] status\n"
	    "  -c, --config FILE  read [metrics] listen from FILE (default "
	    DEFAULT_CONFIG ")\n"
	    "  --endpoint URL     the metrics URL (default http://"
	    DEFAULT_LISTEN "/metrics)\n"
	    "  --socket PATH      the daemon's metrics unix socket\n"
	    "exit status: 0 running, 1 Listen stream down, 2 unreachable, "
	    "3 usage\n");
}

/* Print the summary of text; the exit status. */
static int
summarise(const char *text)
{
	const char *v = strstr(text, "firesync_build_info{version=\"");
	char version[64] = "?", since[64] = "?", up[32] = "?";
	double start = sample(text, "process_start_time_seconds");
	double listen_up = sample(text, "firesync_listen_up");
	double down = sample(text, "firesync_listen_targets_down");
	double age = sample(text, "firesync_listen_last_message_age_seconds");
	double p50 = sample(text,
	    "firesync_recent_capture_to_ready_seconds{quantile=\"0.5\"}");
	double p95 = sample(text,
	    "firesync_recent_capture_to_ready_seconds{quantile=\"0.95\"}");
	int failing = 0;

	if (v != NULL)
		sscanf(v + 29, "%63[^\"]", version);
	if (!isnan(start)) {
		time_t t = (time_t)start;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S UTC", &tm);
		duration(difftime(time(NULL), t), up, sizeof(up));
	}
	printf("firesyncd %s, up %s (since %s)\n", version, up, since);
	if (listen_up == 1 && down > 0)
		printf("stream:     up, but %.0f target(s) DOWN: removed by "
		    "Firestore (a missing index or a permission); their "
		    "sessions are not picked up; see journalctl -u firesyncd\n",
		    down);
	else if (listen_up == 1)
		printf("stream:     up, last message %.1f s ago, %.0f "
		    "reconnect(s)\n", age, sample(text,
		    "firesync_listen_reconnects_total"));
	else
		printf("stream:     DOWN (%s; %.0f reconnect(s)): sessions are "
		    "not being picked up; see journalctl -u firesyncd\n",
		    age < 0 ? "no message yet" : "quiet or reconnecting",
		    sample(text, "firesync_listen_reconnects_total"));
	printf("sessions:   %.0f in flight, %.0f queued; workers %.0f busy "
	    "of %.0f; %.0f plugin(s) loaded\n",
	    sample(text, "firesync_sessions_in_flight"),
	    sample(text, "firesync_sessions_queued"),
	    sample(text, "firesync_workers{state=\"busy\"}"),
	    sample(text, "firesync_workers{state=\"busy\"}") +
	    sample(text, "firesync_workers{state=\"idle\"}"),
	    sample(text, "firesync_plugins_loaded"));
	printf("cpu looks:  %.0f running of %.0f worker(s), %.0f queued\n",
	    sample(text, "firesync_work_running{kind=\"cpu\"}"),
	    sample(text, "firesync_work_limit{kind=\"cpu\"}"),
	    sample(text, "firesync_work_queued{kind=\"cpu\"}"));
	for (const char *p = text; (p = strstr(p, "\nfiresync_work_limit{"
	    "kind=\"hosted\",plugin=\"")) != NULL; p++) {
		char plugin[64], key[160];
		double limit;

		if (sscanf(p + 43, "%63[^\"]\"} %lf", plugin, &limit) != 2)
			continue;
		snprintf(key, sizeof(key), "firesync_work_running{kind="
		    "\"hosted\",plugin=\"%s\"}", plugin);
		printf("hosted:     %s: %.0f call(s) running of %.0f, ", plugin,
		    sample(text, key), limit);
		snprintf(key, sizeof(key), "firesync_work_queued{kind="
		    "\"hosted\",plugin=\"%s\"}", plugin);
		printf("%.0f queued", sample(text, key));
		snprintf(key, sizeof(key), "firesync_provider_circuit_open{"
		    "plugin=\"%s\"}", plugin);
		if (sample(text, key) == 1)
			printf("; its service is FAILING: calls turned away "
			    "but for a probe every 5 s");
		snprintf(key, sizeof(key), "firesync_provider_paused_seconds{"
		    "plugin=\"%s\"}", plugin);
		if (sample(text, key) > 0)
			printf("; paused %.1f s (rate limited)", sample(text,
			    key));
		snprintf(key, sizeof(key), "firesync_provider_fallbacks_total{"
		    "plugin=\"%s\"}", plugin);
		if (sample(text, key) > 0)
			printf("; %.0f fallback(s)", sample(text, key));
		printf("\n");
	}
	for (const char *p = text; (p = strstr(p,
	    "\nfiresync_event_hosted_requests_total{event=\"")) != NULL;
	    p++) {
		char event[64], key[160];
		double n, x;

		if (sscanf(p + 45, "%63[^\"]\"} %lf", event, &n) != 2)
			continue;
		printf("event %s: %.0f hosted request(s)", event, n);
		snprintf(key, sizeof(key), "firesync_event_hosted_images_total"
		    "{event=\"%s\"}", event);
		printf(", %.0f image(s)", sample(text, key));
		snprintf(key, sizeof(key), "firesync_event_fallbacks_total"
		    "{event=\"%s\"}", event);
		if ((x = sample(text, key)) > 0)
			printf(", %.0f fallback(s)", x);
		snprintf(key, sizeof(key), "firesync_event_spend_usd"
		    "{event=\"%s\"}", event);
		if (!isnan(x = sample(text, key)))
			printf(", about $%.2f", x);
		snprintf(key, sizeof(key), "firesync_event_budget_used_ratio"
		    "{event=\"%s\"}", event);
		if (!isnan(x = sample(text, key)))
			printf("; %.0f%% of its limit", x * 100);
		printf("\n");
	}
	printf("last hour:  %.0f ready, %.0f error", sample(text,
	    "firesync_recent_sessions{outcome=\"ready\"}"), sample(text,
	    "firesync_recent_sessions{outcome=\"error\"}"));
	if (!isnan(p50))
		printf("; capture to ready p50 %.1f s, p95 %.1f s", p50, p95);
	printf("\n");
	for (const char *p = text; (p = strstr(p,
	    "\nfiresync_recent_errors{model=\"")) != NULL; p++) {
		char model[64];
		double n;

		if (sscanf(p + 31, "%63[^\"]\"} %lf", model, &n) != 2)
			continue;
		printf("%s %s: %.0f error(s)\n", failing++ ? "           " :
		    "failing:   ", model, n);
	}
	if (failing == 0)
		printf("failing:    none\n");
	return listen_up == 1 && !(down > 0) ? 0 : 1;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *endpoint = NULL, *sock = NULL;
	char *listen = NULL, url[512], err[CURL_ERROR_SIZE] = "";
	struct buf b;
	long status = 0;
	CURL *c;
	CURLcode cc;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'e': endpoint = optarg; break;
		case 's': sock = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("firesyncctl %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 3;
		}
	}
	if (optind != argc - 1 || strcmp(argv[optind], "status") != 0) {
		usage(stderr);
		return 3;
	}
	if (endpoint == NULL && sock == NULL) {
		const char *path = config ? config : DEFAULT_CONFIG;

		if ((config || access(path, R_OK) == 0) &&
		    ini_parse(path, on_ini, &listen) < 0) {
			fprintf(stderr, "firesyncctl: cannot read %s\n", path);
			return 3;
		}
		if (listen && listen[0] == '/')
			sock = listen;
		snprintf(url, sizeof(url), "http://%s/metrics", listen &&
		    listen[0] != '/' ? listen : DEFAULT_LISTEN);
		endpoint = sock ? "http://localhost/metrics" : url;
	} else if (endpoint == NULL) {
		endpoint = "http://localhost/metrics";
	}
	buf_init(&b, BODY_MAX);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, endpoint);
	if (sock)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK || status != 200 || b.p == NULL) {
		fprintf(stderr, "firesyncctl: cannot reach firesyncd at %s: "
		    "%s; is it running, with [metrics] listen set?\n",
		    sock ? sock : endpoint, cc != CURLE_OK ? (*err ? err : curl_easy_strerror(cc)) :
		    status != 200 ? "it did not answer 200" : "empty answer");
		rc = 2;
	} else {
		rc = summarise(b.p);
	}
	buf_free(&b);
	free(listen);
	curl_global_cleanup();
	return rc;
}
