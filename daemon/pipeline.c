/*
 * pipeline.c - one session, start to finish: claim, resolve the
 * experience, read the capture, transform, store the result, finish.
 *
 * Every write goes through an update mask naming only our fields (state,
 * updatedAt, resultImagePath, error, transformAttempts) and carries an
 * update_time precondition, so a guest's or another daemon's newer write
 * always wins and is never overwritten.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "backoff.h"
#include "engine.h"
#include "log.h"
#include "paths.h"
#include "value.h"
#include "wire.h"

#define RPC_TIMEOUT_MS	15000
#define FINISH_TRIES	4
#define FINISH_BACKOFF_MS	250	/* then 500, 1000 (jittered) */
#define FINISH_BACKOFF_MAX_MS	2000

struct run {
	struct engine *e;
	struct job *j;
	struct session *s;
	FsTimestamp *version;	/* update_time our next write requires */
	int64_t attempt;
	int64_t claim_ms;	/* the updatedAt our claim wrote */
	int64_t t0;		/* monotonic ms at start */
	char model[64];
	char plugin[64];	/* that made the result, or "-" */
};

/* A Write updating only the fields in mask, preconditioned on version. */
static FsWrite *
make_write(const char *name, const FsTimestamp *version, FsValue *fields,
    const char *const *mask, size_t n_mask)
{
	FsWrite *w = xcalloc(1, sizeof(*w));
	Google__Firestore__V1__DocumentMask *m = xcalloc(1, sizeof(*m));
	Google__Firestore__V1__Precondition *p = xcalloc(1, sizeof(*p));

	google__firestore__v1__write__init(w);
	google__firestore__v1__document_mask__init(m);
	google__firestore__v1__precondition__init(p);
	m->n_field_paths = n_mask;
	m->field_paths = xcalloc(n_mask, sizeof(char *));
	for (size_t i = 0; i < n_mask; i++)
		m->field_paths[i] = xstrdup(mask[i]);
	p->condition_type_case =
	    GOOGLE__FIRESTORE__V1__PRECONDITION__CONDITION_TYPE_UPDATE_TIME;
	p->update_time = ts_dup(version);
	w->operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_UPDATE;
	w->update = value_map_to_doc(fields, name);
	w->update_mask = m;
	w->current_document = p;
	return w;
}

/*
 * Commit one write (consumed) and tell the engine when it landed.
 * Returns the gRPC status code.
 */
static int
commit_one(struct engine *e, FsWrite *w, struct fs_status *st)
{
	FsCommitResponse *resp = NULL;
	int code = fs_commit(e->fs, &w, 1, RPC_TIMEOUT_MS, &resp, st);

	google__firestore__v1__write__free_unpacked(w, NULL);
	if (resp != NULL) {
		engine_wrote(e, resp->commit_time);
		google__firestore__v1__commit_response__free_unpacked(resp,
		    NULL);
	}
	return code;
}

static void
forget_version(struct engine *e, const char *name)
{
	pthread_mutex_lock(&e->lock);
	strmap_put(e->forget, name, (void *)1);
	pthread_mutex_unlock(&e->lock);
}

/* Claim: state -> transforming, precondition on the version we saw.  The
 * commit is only started here; claim_finish collects it. */
static struct fs_call *
claim_start(struct run *r)
{
	static const char *const mask[] = { "state", "updatedAt",
	    "transformAttempts" };
	FsValue *f = value_map();
	FsWrite *w;
	struct fs_call *k;

	r->claim_ms = now_wall_ms();
	value_map_put(f, "state", value_string("transforming"));
	value_map_put(f, "updatedAt", value_int(r->claim_ms));
	value_map_put(f, "transformAttempts", value_int(r->attempt));
	w = make_write(r->s->name, r->version, f, mask, 3);
	k = fs_commit_start(r->e->fs, &w, 1, RPC_TIMEOUT_MS);
	google__firestore__v1__write__free_unpacked(w, NULL);
	return k;
}

/*
 * Read the session again and decode it into *now (session_clear() it).
 * For a commit that failed without a verdict (a timeout, a dropped
 * connection, the emulator's CANCELLED) after the server may have applied
 * it: the document tells whether it landed.  Returns false if it cannot
 * be read or decoded.
 */
static bool
reread(struct run *r, struct session *now)
{
	FsDocument *d = NULL;
	struct fs_status st;
	char err[256];
	int rc;

	memset(now, 0, sizeof(*now));
	if (fs_get_document(r->e->fs, r->s->name, RPC_TIMEOUT_MS, &d, &st) < 0)
		return false;
	rc = session_decode(d, now, err, sizeof(err));
	doc_free(d);
	if (rc < 0)
		session_clear(now);
	return rc == 0;
}

/*
 * Did our claim land after all?  Then the session would otherwise sit in
 * "transforming" until recovery.  If the document holds exactly our claim,
 * returns its update_time (the version our finish needs), else NULL.
 */
static FsTimestamp *
claim_landed(struct run *r)
{
	struct session now;
	FsTimestamp *version = NULL;

	if (!reread(r, &now))
		return NULL;
	if (now.state == SESSION_TRANSFORMING &&
	    now.updated_at == r->claim_ms &&
	    now.transform_attempts == r->attempt)
		version = ts_dup(now.update_time);
	session_clear(&now);
	return version;
}

static bool
claim_finish(struct run *r, struct fs_call *k)
{
	struct session *s = r->s;
	FsCommitResponse *resp = NULL;
	FsTimestamp *landed;
	struct fs_status st;
	int code = fs_commit_finish(k, &resp, &st);

	if (code == GRPC_STATUS_FAILED_PRECONDITION ||
	    code == GRPC_STATUS_NOT_FOUND) {
		log_debug("session=%s event=%s claim lost: the session changed "
		    "since we saw it", s->session_id, s->event_id);
		return false;
	}
	if (code != 0 && (landed = claim_landed(r)) != NULL) {
		log_info("session=%s event=%s claim commit: %s: %s, but it "
		    "landed", s->session_id, s->event_id,
		    fs_status_name(code), st.message);
		engine_wrote(r->e, landed);
		doc_free(r->version);
		r->version = landed;
	} else if (code != 0) {
		log_warn("session=%s event=%s claim failed: %s: %s; will retry",
		    s->session_id, s->event_id, fs_status_name(code),
		    st.message);
		forget_version(r->e, s->name);
		return false;
	} else {
		engine_wrote(r->e, resp->commit_time);
		doc_free(r->version);
		r->version = ts_dup(resp->n_write_results > 0 ?
		    resp->write_results[0]->update_time : resp->commit_time);
		google__firestore__v1__commit_response__free_unpacked(resp,
		    NULL);
	}
	log_info("session=%s event=%s state=transforming attempt=%" PRId64,
	    s->session_id, s->event_id, r->attempt);
	log_debug("session=%s event=%s queued %" PRId64 " ms, claimed in %"
	    PRId64 " ms", s->session_id, s->event_id,
	    r->t0 - r->j->enqueued_ms, now_mono_ms() - r->t0);
	return true;
}

/*
 * A retried finish was refused by its precondition: did an earlier try
 * land after all?  True if the document holds exactly our outcome.
 */
static bool
finish_landed(struct run *r, const char *url, const char *message)
{
	struct session now;
	bool ours;

	if (!reread(r, &now))
		return false;
	ours = url ? now.state == SESSION_READY && now.result_image_path &&
	    strcmp(now.result_image_path, url) == 0 :
	    now.state == SESSION_ERROR && now.error &&
	    strcmp(now.error, message) == 0;
	session_clear(&now);
	return ours;
}

/*
 * The final write: ready with url, or error with message.  Retried on
 * transient failures; if it never lands the session stays "transforming"
 * and interrupted-work recovery runs it again later.
 */
static void
finish(struct run *r, const char *url, const char *message)
{
	static const char *const mask[] = { "state", "updatedAt",
	    "resultImagePath", "error" };
	struct session *s = r->s;
	struct fs_status st = { 0 };
	int64_t ms = now_mono_ms() - r->t0;
	struct backoff bo;
	int code = 0;
	int i;

	backoff_init(&bo, FINISH_BACKOFF_MS, FINISH_BACKOFF_MAX_MS, 2.0, 0.25);
	for (i = 0;; i++) {
		FsValue *f = value_map();

		value_map_put(f, "state", value_string(url ? "ready" : "error"));
		value_map_put(f, "updatedAt", value_int(now_wall_ms()));
		/* the other of resultImagePath/error is absent from the
		 * fields but named in the mask: Firestore deletes it, so a
		 * ready session carries no stale error and vice versa */
		if (url)
			value_map_put(f, "resultImagePath", value_string(url));
		else
			value_map_put(f, "error", value_string(message));
		code = commit_one(r->e, make_write(s->name, r->version, f, mask,
		    4), &st);
		if (code == 0 || !fs_status_retryable(code) ||
		    i + 1 == FINISH_TRIES)
			break;
		log_info("session=%s event=%s finish commit: %s: %s; retrying",
		    s->session_id, s->event_id, fs_status_name(code),
		    st.message);
		backoff_sleep(&bo);
	}
	if (code == GRPC_STATUS_FAILED_PRECONDITION && i > 0 &&
	    finish_landed(r, url, message)) {
		log_info("session=%s event=%s an earlier finish commit had "
		    "landed after all", s->session_id, s->event_id);
		code = 0;
	}
	atomic_fetch_add(&r->e->processed, 1);
	log_debug("session=%s event=%s finish commit took %" PRId64 " ms",
	    s->session_id, s->event_id, now_mono_ms() - r->t0 - ms);
	if (code == GRPC_STATUS_FAILED_PRECONDITION) {
		log_warn("session=%s event=%s model=%s result dropped: the "
		    "session was changed by someone else while it was "
		    "transforming", s->session_id, s->event_id, r->model);
		return;
	}
	if (code != 0) {
		log_err("session=%s event=%s model=%s could not record the "
		    "outcome: %s: %s; it stays 'transforming' and will be "
		    "re-run after %d s", s->session_id, s->event_id, r->model,
		    fs_status_name(code), st.message,
		    r->e->opt->transform_timeout_s +
		    r->e->opt->recovery_margin_s);
		return;
	}
	if (url) {
		atomic_fetch_add(&r->e->ready, 1);
		log_info("session=%s event=%s model=%s plugin=%s state=ready "
		    "ms=%" PRId64, s->session_id, s->event_id, r->model,
		    r->plugin, ms);
	} else {
		atomic_fetch_add(&r->e->errors, 1);
		log_warn("session=%s event=%s model=%s state=error ms=%" PRId64
		    " error=\"%s\"", s->session_id, s->event_id, r->model, ms,
		    message);
	}
}

static void
fail(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
fail(struct run *r, const char *fmt, ...)
{
	char reason[400], msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "AI transform failed: %s", reason);
	finish(r, NULL, msg);
}

/* An experience id must name one document directly under experiences/. */
static bool
valid_doc_id(const char *id)
{
	return *id != '\0' && strchr(id, '/') == NULL && strcmp(id, ".") != 0 &&
	    strcmp(id, "..") != 0 && strlen(id) <= SESSION_MAX_ID;
}

/*
 * Resolve the session's experience from the Listen cache, falling back to
 * a direct read.  Returns 0, -ENOENT, -EINVAL (malformed; err says why) or
 * -EIO (Firestore unreachable).
 */
static int
resolve_experience(struct run *r, struct experience *x, char *err,
    size_t errlen)
{
	struct engine *e = r->e;
	char *name = xasprintf("%s/experiences/%s", e->fs->docs_path,
	    r->s->selected_experience_id);
	const struct strmap *cache;
	const FsDocument *cached;
	FsDocument *doc = NULL;
	struct fs_status st;
	int rc;

	pthread_mutex_lock(&e->snap_lock);
	cache = watch_known(&e->watch, TARGET_EXPERIENCES);
	cached = cache ? strmap_get(cache, name) : NULL;
	if (cached != NULL) {
		rc = experience_decode(cached, x, err, errlen);
		pthread_mutex_unlock(&e->snap_lock);
		free(name);
		return rc;
	}
	pthread_mutex_unlock(&e->snap_lock);
	rc = fs_get_document(e->fs, name, RPC_TIMEOUT_MS, &doc, &st);
	free(name);
	if (rc == -EIO) {
		snprintf(err, errlen, "%s: %.300s", fs_status_name(st.code),
		    st.message);
		return rc;
	}
	if (rc < 0)
		return rc;
	rc = experience_decode(doc, x, err, errlen);
	doc_free(doc);
	return rc;
}

/*
 * A reference image URL that points into our storage, as the relative
 * storage path (malloc'd), or NULL.  Accepted: a plain storage path, or a
 * URL under our public URL base.
 */
static char *
reference_path(struct engine *e, const char *url)
{
	const char *base = e->store->public_url_base;
	size_t n = strlen(base);
	char why[128];

	if (strncmp(url, base, n) == 0 && url[n] == '/')
		url += n + 1;
	else if (strstr(url, "://") != NULL)
		return NULL;
	if (path_check_relative(url, why, sizeof(why)) < 0)
		return NULL;
	return xstrdup(url);
}

/*
 * Produce the result PNG from the input bytes, in a worker process.
 * 0, or -errno with the reason for the guest in why.
 */
static int
transform(struct run *r, const struct experience *x, const uint8_t *in,
    size_t inlen, uint8_t **png, size_t *pnglen, char *why, size_t whylen)
{
	struct engine *e = r->e;
	uint8_t *refs[WIRE_MAX_REFS];
	size_t ref_lens[WIRE_MAX_REFS], n_refs = 0;
	struct pool_job job = {
		.ai = x->ai_enabled,
		.model = x->model,
		.prompt = x->prompt,
		.aspect_ratio = x->aspect_ratio,
		.session_id = r->s->session_id,
		.event_id = r->s->event_id,
		.input = in,
		.input_len = inlen,
	};
	char plugin[64], rerr[256];
	int rc;

	for (size_t i = 0; x->ai_enabled && i < x->n_reference_urls &&
	    n_refs < WIRE_MAX_REFS; i++) {
		char *path = reference_path(e, x->reference_urls[i]);

		if (path == NULL) {
			log_debug("session=%s reference %.200s is not in our "
			    "storage; not passed to the model", r->s->session_id,
			    x->reference_urls[i]);
			continue;
		}
		if (store_get(e->store, path, e->opt->max_input_bytes,
		    &refs[n_refs], &ref_lens[n_refs], rerr, sizeof(rerr)) == 0)
			n_refs++;
		else
			log_debug("session=%s reference %s: %s",
			    r->s->session_id, path, rerr);
		free(path);
	}
	job.refs = (const uint8_t *const *)refs;
	job.ref_lens = ref_lens;
	job.n_refs = n_refs;
	rc = pool_transform(e->pool, &job, png, pnglen, plugin, sizeof(plugin),
	    why, whylen);
	for (size_t i = 0; i < n_refs; i++)
		free(refs[i]);
	if (*plugin)
		snprintf(r->plugin, sizeof(r->plugin), "%s", plugin);
	return rc;
}

/*
 * What preparing a session produced: the result PNG, or the reason it
 * failed (for the guest) plus an optional line for the admin, logged only
 * once the claim has landed.
 */
struct outcome {
	struct experience x;	/* resolved experience */
	uint8_t *in;		/* the capture's bytes */
	size_t inlen;
	uint8_t *png;
	size_t pnglen;
	bool failed;
	char reason[400];
	int log_prio;
	char log[512];
};

static bool
failed(struct outcome *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static bool
failed(struct outcome *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
	va_end(ap);
	o->failed = true;
	return false;
}

/*
 * Resolve the experience, check the path and read the capture: cheap local
 * work that writes nothing, done while the claim commit is in flight.  The
 * transform itself waits for the claim, so a daemon that loses the race
 * never runs a plugin for nothing.  Returns true with o->x and o->in set.
 */
static bool
prepare(struct run *r, struct outcome *o)
{
	struct session *s = r->s;
	struct engine *e = r->e;
	struct experience *xp = &o->x;
	char why[512];
	int rc;

	if (r->j->decode_rc < 0)
		return failed(o, "session document is invalid: %s",
		    r->j->decode_err);
	if (s->selected_experience_id == NULL ||
	    *s->selected_experience_id == '\0')
		return failed(o, "no experience selected "
		    "(data.selected_experience_id is missing)");
	if (!valid_doc_id(s->selected_experience_id))
		return failed(o, "experience id '%.100s' is not a valid "
		    "document id", s->selected_experience_id);
	rc = resolve_experience(r, xp, why, sizeof(why));
	if (rc == -ENOENT)
		return failed(o, "experience '%.100s' not found",
		    s->selected_experience_id);
	if (rc == -EIO)
		return failed(o, "could not read the experience (%.300s); "
		    "please retry", why);
	if (rc < 0) {
		experience_clear(xp);
		return failed(o, "%s", why);
	}
	snprintf(r->model, sizeof(r->model), "%s",
	    xp->ai_enabled ? xp->model : "none");

	if (s->input_image_path == NULL || *s->input_image_path == '\0') {
		experience_clear(xp);
		return failed(o, "input image not found (inputImagePath is "
		    "missing)");
	}
	if (path_check_input(s->input_image_path, s->event_id, s->session_id,
	    why, sizeof(why)) < 0) {
		experience_clear(xp);
		o->log_prio = LOG_WARNING;
		snprintf(o->log, sizeof(o->log), "refused inputImagePath "
		    "'%.200s'", s->input_image_path);
		return failed(o, "%s", why);
	}
	rc = store_get(e->store, s->input_image_path, e->opt->max_input_bytes,
	    &o->in, &o->inlen, why, sizeof(why));
	if (rc < 0) {
		experience_clear(xp);
		if (rc == -ENOENT)
			return failed(o, "input image not found");
		if (rc == -EFBIG)
			return failed(o, "input image is too large (over %zu "
			    "MB)", e->opt->max_input_bytes >> 20);
		o->log_prio = LOG_ERR;
		snprintf(o->log, sizeof(o->log), "storage read failed: %.400s",
		    why);
		return failed(o, "could not read the input image");
	}
	return true;
}

/* Store the result and finish; the claim has landed. */
static void
publish(struct run *r, struct outcome *o)
{
	struct session *s = r->s;
	char why[512], *result_path, *url = NULL;
	int rc;

	if (o->log_prio != 0)
		log_at(o->log_prio, "session=%s event=%s %s", s->session_id,
		    s->event_id, o->log);
	if (o->failed) {
		fail(r, "%s", o->reason);
		return;
	}
	rc = transform(r, &o->x, o->in, o->inlen, &o->png, &o->pnglen, why,
	    sizeof(why));
	if (rc < 0) {
		fail(r, "%s", why);
		return;
	}
	result_path = path_result(s->event_id, s->session_id);
	rc = store_put(r->e->store, result_path, o->png, o->pnglen,
	    "image/png", &url, why, sizeof(why));
	free(result_path);
	if (rc < 0) {
		log_err("session=%s event=%s storage write failed: %s; check "
		    "the storage root's permissions and free space",
		    s->session_id, s->event_id, why);
		fail(r, "could not store the result");
		return;
	}
	log_debug("session=%s event=%s result stored at %" PRId64 " ms",
	    s->session_id, s->event_id, now_mono_ms() - r->t0);
	finish(r, url, NULL);
	free(url);
}

void
pipeline_run(struct engine *e, struct job *j)
{
	struct run r = { .e = e, .j = j, .s = &j->s, .t0 = now_mono_ms() };

	snprintf(r.model, sizeof(r.model), "-");
	snprintf(r.plugin, sizeof(r.plugin), "-");
	if (j->s.event_id == NULL) {
		/* a "sessions" collection outside events/: not ours */
		log_debug("ignoring %s: %s", j->s.name, j->decode_err);
		return;
	}
	r.version = ts_dup(j->s.update_time);
	r.attempt = j->recover ? j->s.transform_attempts + 1 : 1;
	if (j->recover) {
		log_warn("session=%s event=%s has been 'transforming' for over "
		    "%d s: its daemon was interrupted; %s",
		    j->s.session_id, j->s.event_id,
		    e->opt->transform_timeout_s + e->opt->recovery_margin_s,
		    r.attempt > e->opt->max_attempts ? "giving up" :
		    "running it again");
		if (r.attempt > e->opt->max_attempts) {
			/* finish straight from "transforming" */
			fail(&r, "transform interrupted");
			doc_free(r.version);
			return;
		}
	}
	{
		struct fs_call *k = claim_start(&r);
		struct outcome o = { 0 };

		prepare(&r, &o);
		if (claim_finish(&r, k)) {
			if (r.s->warning)
				log_warn("session=%s event=%s does not match "
				    "the session schema (processing anyway): "
				    "%s", r.s->session_id, r.s->event_id,
				    r.s->warning);
			publish(&r, &o);
		}
		experience_clear(&o.x);
		free(o.in);
		free(o.png);
	}
	doc_free(r.version);
}
