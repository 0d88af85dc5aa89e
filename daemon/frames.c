/*
 * frames.c - events' frames, checked and kept (frames.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "frames.h"
#include "log.h"

#define FRAMES_KEPT	64	/* frames kept at once; the oldest goes */

struct frames {
	pthread_mutex_t lock;
	struct frame *kept[FRAMES_KEPT];
	uint64_t used[FRAMES_KEPT];	/* when each was last handed out */
	uint64_t clock;
};

struct frames *
frames_new(void)
{
	struct frames *f = xcalloc(1, sizeof(*f));

	pthread_mutex_init(&f->lock, NULL);
	return f;
}

void
frame_drop(struct frame *fr)
{
	if (fr != NULL && atomic_fetch_sub(&fr->refs, 1) == 1) {
		free(fr->data);
		free(fr);
	}
}

void
frames_free(struct frames *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < FRAMES_KEPT; i++)
		frame_drop(f->kept[i]);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

char *
frames_path(const char *tmpl, const char *event, const char *aspect)
{
	const char *at = strstr(tmpl, "{event}");
	size_t n = strlen(tmpl);
	unsigned w, h;
	char *path, *dot, sized[32] = "";

	if (at == NULL || n < 4 || strcmp(tmpl + n - 4, ".png") != 0 ||
	    strchr(event, '/') != NULL || *event == '\0' ||
	    strcmp(event, ".") == 0 || strcmp(event, "..") == 0)
		return NULL;
	if (aspect && *aspect) {
		char end;

		if (sscanf(aspect, "%u:%u%c", &w, &h, &end) != 2 || w == 0 ||
		    h == 0 || w > 10000 || h > 10000)
			return NULL;
		snprintf(sized, sizeof(sized), "-%ux%u", w, h);
	}
	path = xasprintf("%.*s%s%s", (int)(at - tmpl), tmpl, event,
	    at + strlen("{event}"));
	if (*sized) {
		char *with;

		dot = path + strlen(path) - 4;
		*dot = '\0';
		with = xasprintf("%s%s.png", path, sized);
		free(path);
		path = with;
	}
	if (strlen(path) >= sizeof(((struct frame *)0)->path)) {
		free(path);
		return NULL;
	}
	return path;
}

/* The kept frame at path if its version is ver (held), else NULL. */
static struct frame *
kept(struct frames *f, const char *path, const char *ver)
{
	struct frame *fr = NULL;

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < FRAMES_KEPT; i++)
		if (f->kept[i] && strcmp(f->kept[i]->path, path) == 0 &&
		    strcmp(f->kept[i]->version, ver) == 0) {
			fr = f->kept[i];
			atomic_fetch_add(&fr->refs, 1);
			f->used[i] = ++f->clock;
			break;
		}
	pthread_mutex_unlock(&f->lock);
	return fr;
}

/* Keep fr (one reference is the cache's), in place of what was kept at
 * its path, or of the least recently used. */
static void
keep(struct frames *f, struct frame *fr)
{
	size_t slot = 0;
	struct frame *old;

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < FRAMES_KEPT; i++) {
		if (f->kept[i] && strcmp(f->kept[i]->path, fr->path) == 0) {
			slot = i;
			break;
		}
		if (f->kept[i] == NULL || f->used[i] < f->used[slot])
			slot = i;
	}
	old = f->kept[slot];
	atomic_fetch_add(&fr->refs, 1);
	f->kept[slot] = fr;
	f->used[slot] = ++f->clock;
	pthread_mutex_unlock(&f->lock);
	frame_drop(old);
}

/* The frame at path: -ENOENT if there is none, 0 with *out, or another
 * -errno with why. */
static int
frame_at(struct frames *f, struct store *st, const char *path,
    struct frame **out, char *why, size_t whylen)
{
	char ver[96], err[512];
	struct frame *fr;
	int rc;

	rc = store_stat(st, path, ver, sizeof(ver), err, sizeof(err));
	if (rc == -ENOENT)
		return rc;
	if (rc < 0) {
		snprintf(why, whylen, "the frame %s could not be checked: %s",
		    path, err);
		return rc;
	}
	if ((*out = kept(f, path, ver)) != NULL)
		return 0;
	fr = xcalloc(1, sizeof(*fr));
	atomic_init(&fr->refs, 1);
	snprintf(fr->path, sizeof(fr->path), "%s", path);
	snprintf(fr->version, sizeof(fr->version), "%s", ver);
	rc = store_get(st, path, FRAMES_MAX_BYTES, &fr->data, &fr->len, err,
	    sizeof(err));
	if (rc < 0) {
		free(fr);
		if (rc == -ENOENT)	/* gone since: as if never there */
			return rc;
		if (rc == -EFBIG)
			snprintf(why, whylen, "the frame %s is over %u MB",
			    path, FRAMES_MAX_BYTES >> 20);
		else
			snprintf(why, whylen, "the frame %s could not be "
			    "read: %s", path, err);
		return rc;
	}
	log_info("frame %s (version %s, %zu bytes) read for its event's "
	    "results", path, ver, fr->len);
	keep(f, fr);
	*out = fr;
	return 0;
}

struct frame *
frames_get(struct frames *f, struct store *st, const char *tmpl,
    const char *event, const char *aspect, char *why, size_t whylen)
{
	struct frame *fr = NULL;

	*why = '\0';
	for (int i = aspect && *aspect ? 0 : 1; i < 2; i++) {
		char *path = frames_path(tmpl, event, i == 0 ? aspect : "");
		int rc;

		if (path == NULL)
			continue;
		rc = frame_at(f, st, path, &fr, why, whylen);
		free(path);
		if (rc != -ENOENT)
			return rc == 0 ? fr : NULL;
	}
	return NULL;
}
