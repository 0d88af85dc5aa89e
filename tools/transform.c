/*
 * transform.c - firesync-transform: run a transform plugin on a file,
 * through exactly the host and worker code firesyncd uses, without
 * Firestore.  For plugin vendors trying their work, and for benchmarks.
 *
 *   firesync-transform [--plugin-dir DIR] [--model NAME] [--prompt TEXT]
 *       [--aspect-ratio W:H] [--reference FILE]... [--timeout SECS]
 *       [--max-megapixels N] [--config FILE] [--repeat N] [--in-process]
 *       [--frame FILE] [--rendition SPEC]... [--max-result-megapixels N]
 *       IN OUT
 *
 * --frame composites an event's frame over the result, and each
 * --rendition (as [results] renditions) is written beside OUT, as
 * firesyncd would, so an operator can preview them before the event.
 * Without --model the photo is only turned upright and re-encoded as PNG
 * (what firesyncd does when an experience has AI off).  --repeat runs the
 * job N times and prints the median time per job; --in-process loads the
 * plugins into this process instead of a worker, to measure what
 * isolation costs (never do this with a plugin you do not trust).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "job.h"
#include "log.h"
#include "plugins.h"
#include "pool.h"
#include "wire.h"

#ifndef PLUGINDIR
#define PLUGINDIR "/usr/local/lib/firesync/plugins"
#endif

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t *p;
	FILE *f = fopen(path, "rb");

	if (f == NULL || fstat(fileno(f), &sb) < 0) {
		fprintf(stderr, "firesync-transform: %s: %s\n", path,
		    strerror(errno));
		exit(1);
	}
	p = xmalloc((size_t)sb.st_size);
	if (fread(p, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
		fprintf(stderr, "firesync-transform: %s: short read\n", path);
		exit(1);
	}
	fclose(f);
	*len = (size_t)sb.st_size;
	return p;
}

static int
spill(const char *path, const uint8_t *p, size_t len)
{
	char *tmp = xasprintf("%s.tmp%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");

	if (f == NULL || fwrite(p, 1, len, f) != len || fclose(f) != 0 ||
	    rename(tmp, path) < 0) {
		fprintf(stderr, "firesync-transform: %s: %s\n", path,
		    strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: firesync-transform [--plugin-dir DIR] [--model NAME] "
	    "[--prompt TEXT]\n"
	    "           [--aspect-ratio W:H] [--reference FILE]... "
	    "[--timeout SECS]\n"
	    "           [--max-megapixels N] [--config FILE] [--repeat N] "
	    "[--in-process] [--version]\n"
	    "           [--frame FILE] [--rendition NAME:SIZE[:jpeg|png|webp]"
	    "[@DPI]]...\n"
	    "           [--max-result-megapixels N] IN OUT\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "plugin-dir", required_argument, NULL, 'p' },
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'P' },
		{ "aspect-ratio", required_argument, NULL, 'a' },
		{ "reference", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "max-megapixels", required_argument, NULL, 'x' },
		{ "config", required_argument, NULL, 'c' },
		{ "repeat", required_argument, NULL, 'n' },
		{ "in-process", no_argument, NULL, 'i' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "frame", required_argument, NULL, 'f' },
		{ "rendition", required_argument, NULL, 'R' },
		{ "max-result-megapixels", required_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = PLUGINDIR, *config = NULL, *frame_path = NULL;
	struct pool_rendition rend[POOL_MAX_RENDITIONS];
	uint8_t *frame = NULL, *rend_out[POOL_MAX_RENDITIONS] = { NULL };
	size_t frame_len = 0, n_rend = 0, rend_len[POOL_MAX_RENDITIONS];
	const char *refs_path[WIRE_MAX_REFS];
	uint8_t *refs[WIRE_MAX_REFS], *in, *png = NULL;
	size_t ref_lens[WIRE_MAX_REFS], n_refs = 0, inlen, pnglen = 0;
	struct pool_job job = { 0 };
	long timeout_s = 45, max_mp = 50, repeat = 1;
	bool in_process = false;
	const char *prefix = "AI transform failed: ";
	char plugin[WIRE_NAME_LEN] = "", err[512];
	int64_t *times;
	int c, rc = 0;

	log_init();
	log_level = LOG_WARNING;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'V':
			printf("firesync-transform %s\n", PACKAGE_VERSION);
			return 0;
		case 'p': dir = optarg; break;
		case 'm': job.model = optarg; job.ai = true; break;
		case 'P': job.prompt = optarg; break;
		case 'a': job.aspect_ratio = optarg; break;
		case 'r':
			if (n_refs == WIRE_MAX_REFS) {
				fprintf(stderr, "firesync-transform: at most "
				    "%d references\n", WIRE_MAX_REFS);
				return 2;
			}
			refs_path[n_refs++] = optarg;
			break;
		case 't': timeout_s = atol(optarg); break;
		case 'x': max_mp = atol(optarg); break;
		case 'c': config = optarg; break;
		case 'n': repeat = atol(optarg); break;
		case 'i': in_process = true; break;
		case 'l':
			if (log_level_parse(optarg) >= 0)
				log_level = log_level_parse(optarg);
			break;
		case 'f': frame_path = optarg; break;
		case 'X': job.max_result_pixels = (uint64_t)atol(optarg) *
		    1000000; break;
		case 'R': {
			const char *why;

			if (n_rend == POOL_MAX_RENDITIONS) {
				fprintf(stderr, "firesync-transform: at most "
				    "%d renditions\n", POOL_MAX_RENDITIONS);
				return 2;
			}
			why = pool_rendition_parse(optarg, &rend[n_rend], err,
			    sizeof(err));
			if (why != NULL) {
				fprintf(stderr, "firesync-transform: "
				    "--rendition %s\n", why);
				return 2;
			}
			n_rend++;
			break;
		}
		default:
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	if (argc - optind != 2 || timeout_s < 1 || max_mp < 1 || repeat < 1) {
		usage();
		return 2;
	}
	in = slurp(argv[optind], &inlen);
	for (size_t i = 0; i < n_refs; i++)
		refs[i] = slurp(refs_path[i], &ref_lens[i]);
	job.input = in;
	job.input_len = inlen;
	job.refs = (const uint8_t *const *)refs;
	job.ref_lens = ref_lens;
	job.n_refs = n_refs;
	job.session_id = "cli";
	job.event_id = "cli";
	if (frame_path != NULL) {
		frame = slurp(frame_path, &frame_len);
		job.frame = frame;
		job.frame_len = frame_len;
	}
	job.renditions = rend;
	job.n_renditions = n_rend;
	times = xcalloc((size_t)repeat, sizeof(*times));

	if (in_process) {
		struct plugin_configs cfgs;
		struct plugin_set set;
		struct wire_job *wj = xcalloc(1, sizeof(*wj));
		size_t total = inlen, off;
		uint8_t *mem;

		if (plugin_configs_load(&cfgs, config, err, sizeof(err)) < 0) {
			free(wj);
			prefix = "";
			rc = -EINVAL;
			goto out;
		}
		plugins_load(&set, dir, &cfgs, false, NULL, false);
		/* the same layout a worker sees: capture, then references */
		for (size_t i = 0; i < n_refs; i++)
			total += ref_lens[i];
		mem = xmalloc(total + frame_len);
		memcpy(mem, in, inlen);
		off = inlen;
		for (size_t i = 0; i < n_refs; i++) {
			memcpy(mem + off, refs[i], ref_lens[i]);
			off += ref_lens[i];
		}
		if (frame_len)
			memcpy(mem + off, frame, frame_len);
		wj->frame_len = frame_len;
		wj->max_result_pixels = job.max_result_pixels;
		wj->n_renditions = (uint32_t)n_rend;
		for (size_t i = 0; i < n_rend; i++) {
			struct wire_rendition *w = &wj->renditions[i];

			memcpy(w->name, rend[i].name, sizeof(w->name));
			w->width = rend[i].width;
			w->height = rend[i].height;
			w->format = rend[i].format == POOL_FORMAT_PNG ?
			    WIRE_FORMAT_PNG : rend[i].format ==
			    POOL_FORMAT_WEBP ? WIRE_FORMAT_WEBP :
			    WIRE_FORMAT_JPEG;
			w->quality = (uint32_t)rend[i].quality;
			w->dpi = rend[i].dpi;
		}
		wj->flags = job.ai ? WIRE_JOB_AI : 0;
		wj->input_len = inlen;
		wj->n_refs = (uint32_t)n_refs;
		for (size_t i = 0; i < n_refs; i++)
			wj->ref_len[i] = ref_lens[i];
		wj->timeout_ms = timeout_s * 1000;
		wj->max_pixels = (uint64_t)max_mp * 1000000;
		snprintf(wj->model, sizeof(wj->model), "%s",
		    job.model ? job.model : "");
		snprintf(wj->aspect_ratio, sizeof(wj->aspect_ratio), "%s",
		    job.aspect_ratio ? job.aspect_ratio : "");
		snprintf(wj->prompt, sizeof(wj->prompt), "%s",
		    job.prompt ? job.prompt : "");
		for (long i = 0; i < repeat && rc == 0; i++) {
			struct wire_result r;
			struct job_out made;
			int64_t t = mono_us();

			free(png);
			png = NULL;
			memset(&r, 0, sizeof(r));
			job_run(&set, 256u << 20, wj, mem, &made, &r);
			times[i] = mono_us() - t;
			png = made.png;
			pnglen = made.png_len;
			made.png = NULL;
			for (size_t k = 0; k < n_rend; k++) {
				free(rend_out[k]);
				rend_out[k] = made.rend[k];
				rend_len[k] = made.rend_len[k];
				made.rend[k] = NULL;
			}
			job_out_free(&made);
			if (r.framed == WIRE_FRAME_FAILED)
				fprintf(stderr, "firesync-transform: the frame "
				    "was not applied: %.256s\n", r.frame_note);
			if (r.status != WIRE_OK) {
				snprintf(err, sizeof(err), "%s", r.message);
				rc = -EIO;
			}
			snprintf(plugin, sizeof(plugin), "%s", r.plugin);
		}
		plugins_unload(&set);
		plugin_configs_free(&cfgs);
		free(mem);
		free(wj);
	} else {
		struct pool_options po = {
			.plugin_dir = dir,
			.config_path = config,
			.workers = 1,
			.timeout_ms = timeout_s * 1000,
			.memory_mb = 4096,
			.max_jobs = 1000000,
			.max_pixels = (uint64_t)max_mp * 1000000,
			.log_level = log_level,
		};
		char *worker = pool_find_worker();
		struct pool *pool;

		po.worker_path = worker;
		pool = pool_new(&po, err, sizeof(err));
		free(worker);
		if (pool == NULL) {
			prefix = "";		/* a setup problem, not the model */
			rc = -EIO;
			goto out;
		}
		for (long i = 0; i < repeat && rc == 0; i++) {
			int64_t t = mono_us();
			struct pool_result res;

			free(png);
			png = NULL;
			if (pool_transform(pool, &job, &res) == POOL_OK) {
				png = res.png;
				pnglen = res.png_len;
				for (size_t k = 0; k < n_rend; k++) {
					free(rend_out[k]);
					rend_out[k] = res.rendition[k];
					rend_len[k] = res.rendition_len[k];
				}
				if (frame && !res.framed)
					fprintf(stderr, "firesync-transform: "
					    "the frame was not applied: %s\n",
					    res.frame_note);
			} else {
				snprintf(err, sizeof(err), "%s", res.message);
				rc = -EIO;
			}
			snprintf(plugin, sizeof(plugin), "%s", res.plugin);
			times[i] = mono_us() - t;
		}
		pool_free(pool);
	}
out:
	if (rc < 0)
		fprintf(stderr, "firesync-transform: %s%s\n", prefix, err);
	else if (spill(argv[optind + 1], png, pnglen) < 0)
		rc = -EIO;
	else {
		qsort(times, (size_t)repeat, sizeof(*times), cmp64);
		printf("%s: %zu bytes of PNG by %s in %.1f ms%s\n",
		    argv[optind + 1], pnglen,
		    *plugin ? plugin : "the image worker",
		    (double)times[repeat / 2] / 1000.0,
		    repeat > 1 ? " (median)" : "");
		/* the renditions beside OUT, named as firesyncd names them */
		for (size_t k = 0; k < n_rend && rc == 0; k++) {
			const char *out = argv[optind + 1];
			const char *slash = strrchr(out, '/');
			char *path = xasprintf("%.*s%s.%s", slash ?
			    (int)(slash - out + 1) : 0, out, rend[k].name,
			    pool_format_ext(rend[k].format));

			if (spill(path, rend_out[k], rend_len[k]) < 0)
				rc = -EIO;
			else
				printf("%s: %zu bytes, rendition %s\n", path,
				    rend_len[k], rend[k].name);
			free(path);
		}
	}
	free(png);
	free(frame);
	for (size_t k = 0; k < n_rend; k++)
		free(rend_out[k]);
	free(in);
	for (size_t i = 0; i < n_refs; i++)
		free(refs[i]);
	free(times);
	return rc < 0 ? 1 : 0;
}
