/*
 * pipeline.c - one session, start to finish (pipeline.h).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "budget.h"
#include "frames.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "paths.h"
#include "pipeline.h"
#include "text.h"
#include "value.h"

#define RPC_TIMEOUT_MS	15000
#define FINISH_TRIES	4
#define ERROR_MAX	1000	/* bytes of a guest-facing error */
#define URL_MAX		4096	/* bytes of resultImagePath */
#define REFRESHES	3	/* finishes re-made after unrelated writes */
#define FINISH_BACKOFF_MS	250	/* then 500, 1000 (jittered) */
#define FINISH_BACKOFF_MAX_MS	2000

struct run {
	const struct pipeline *p;
	const struct settings *settings;	/* the task's, for the whole
						   run */
	const struct options *opt;		/* its options */
	struct work *t;		/* the task's work */
	struct session *s;
	FsTimestamp *version;	/* update_time our next write requires */
	int64_t attempt;
	int64_t claim_ms;	/* the updatedAt our claim wrote */
	int64_t claim_sent;	/* monotonic ms the claim went out */
	int64_t t0;		/* monotonic ms at start */
	char model[POOL_NAME_LEN];
	char plugin[POOL_NAME_LEN];	/* that made the result, or "-" */
	enum metrics_reason reason;	/* of an error finish, for metrics */
	int64_t captured_ms;		/* the captured version's update time
					   (Firestore's clock); 0: unknown */
};

/* A shutdown gave up on us: write nothing more. */
static bool
frozen(const struct pipeline *p)
{
	return p->frozen != NULL && atomic_load(p->frozen);
}

static void
claimed(const struct run *r, const FsTimestamp *commit_time)
{
	if (r->p->claimed != NULL && commit_time != NULL)
		r->p->claimed(r->p->arg, commit_time,
		    now_mono_ms() - r->claim_sent);
}

/* The task needs no worker any more (once). */
static void
transformed(const struct run *r)
{
	if (r->p->transformed != NULL)
		r->p->transformed(r->p->arg, r->t);
}

/* Update our fields of the session (f, consumed; the fields named in
 * mask), on the version we hold.  On FS_OK, *commit_ms (if not NULL) gets
 * the commit time, Firestore's clock. */
static enum fs_kind
update(struct run *r, FsValue *f, const char *const *mask, size_t n_mask,
    struct fs_status *st, int64_t *commit_ms)
{
	struct fs_written w;
	int64_t t0 = now_mono_ms();
	enum fs_kind kind = fs_update(r->p->fs, r->s->name, r->version, f,
	    mask, n_mask, RPC_TIMEOUT_MS, &w, st);

	metrics_commit((double)(now_mono_ms() - t0) / 1000.0);
	if (kind == FS_OK && commit_ms != NULL && w.commit_time != NULL)
		*commit_ms = ts_to_ms(w.commit_time);
	if (kind == FS_OK)
		fs_written_clear(&w);
	return kind;
}

/* Claim: state -> transforming, precondition on the version we saw.  The
 * commit is only started here; claim_finish collects it. */
static struct fs_call *
claim_start(struct run *r)
{
	static const char *const mask[] = { "state", "updatedAt",
	    "transformAttempts" };
	FsValue *f = value_map();

	r->claim_ms = now_wall_ms();
	value_map_put(f, "state", value_string("transforming"));
	value_map_put(f, "updatedAt", value_int(r->claim_ms));
	value_map_put(f, "transformAttempts", value_int(r->attempt));
	r->claim_sent = now_mono_ms();
	return fs_update_start(r->p->fs, r->s->name, r->version, f, mask, 3,
	    RPC_TIMEOUT_MS);
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
	if (fs_get_document(r->p->fs, r->s->name, RPC_TIMEOUT_MS, &d, &st) < 0)
		return false;
	rc = session_decode(d, now, err, sizeof(err));
	doc_free(d);
	if (rc < 0)
		session_clear(now);
	return rc == 0;
}

/* The session as read holds exactly our claim: transforming, with the
 * attempt number and updatedAt this run wrote. */
static bool
holds_our_claim(const struct run *r, const struct session *now)
{
	return now->state == SESSION_TRANSFORMING &&
	    now->transform_attempts == r->attempt &&
	    now->updated_at == r->claim_ms && now->update_time != NULL;
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
	if (holds_our_claim(r, &now))
		version = ts_dup(now.update_time);
	session_clear(&now);
	return version;
}

#define TOO_LARGE_ERROR \
	"AI transform failed: the session is too large to update"

/*
 * A write of ours was refused as invalid: the document would pass
 * Firestore's 1 MiB limit.  End the session "error" with the smallest
 * writes that can: a short message first, then the state alone, deleting
 * every other field of ours (the document only shrinks).
 */
static enum outcome
finish_minimal(struct run *r)
{
	static const char *const mask[] = { "state", "updatedAt", "error",
	    "resultImagePath", "transformAttempts" };
	struct session *s = r->s;
	struct fs_status st = { 0 };
	enum fs_kind kind = FS_INVALID;

	for (int step = 0; step < 2 && kind == FS_INVALID; step++) {
		FsValue *f = value_map();

		value_map_put(f, "state", value_string("error"));
		value_map_put(f, "updatedAt", value_int(now_wall_ms()));
		if (step == 0)
			value_map_put(f, "error", value_string(TOO_LARGE_ERROR));
		/* step 0 leaves transformAttempts as it is */
		kind = update(r, f, mask, step == 0 ? 4 : 5, &st, NULL);
	}
	if (kind != FS_OK) {
		log_err("session=%s event=%s cannot be updated at all: %s: %s; "
		    "it is left as it is (the web app must shrink it)",
		    s->session_id, s->event_id, fs_status_name(&st),
		    st.message);
		return OUTCOME_REFUSED;
	}
	log_warn("session=%s event=%s model=%s state=error error=\"%s\" (the "
	    "document is at Firestore's size limit; only the smallest update "
	    "fitted)", s->session_id, s->event_id, r->model, TOO_LARGE_ERROR);
	metrics_session_error(r->model, r->reason);
	return OUTCOME_ERROR;
}

/* Collect the claim commit: true if the session is ours now; else *why
 * says what became of the task. */
static bool
claim_finish(struct run *r, struct fs_call *k, enum outcome *why)
{
	struct session *s = r->s;
	struct fs_written w;
	FsTimestamp *landed;
	struct fs_status st;
	enum fs_kind kind = fs_update_finish(k, &w, &st);

	metrics_commit((double)(now_mono_ms() - r->claim_sent) / 1000.0);

	if (kind == FS_CHANGED) {
		log_debug("session=%s event=%s claim lost: the session changed "
		    "since we saw it", s->session_id, s->event_id);
		*why = OUTCOME_CLAIM_LOST;
		return false;
	}
	if (kind != FS_OK && (landed = claim_landed(r)) != NULL) {
		log_info("session=%s event=%s claim commit: %s: %s, but it "
		    "landed", s->session_id, s->event_id,
		    fs_status_name(&st), st.message);
		claimed(r, landed);
		ts_free(r->version);
		r->version = landed;
	} else if (kind == FS_TRANSIENT) {
		log_warn("session=%s event=%s claim failed: %s: %s; will retry",
		    s->session_id, s->event_id, fs_status_name(&st),
		    st.message);
		*why = OUTCOME_RETRY;
		return false;
	} else if (kind == FS_INVALID) {
		/* the claim itself cannot be written (a document at
		 * Firestore's 1 MiB limit): end it with the least we can */
		log_err("session=%s event=%s claim refused: %s: %s",
		    s->session_id, s->event_id, fs_status_name(&st),
		    st.message);
		*why = finish_minimal(r);
		return false;
	} else if (kind != FS_OK) {
		log_err("session=%s event=%s claim refused: %s: %s; not retried "
		    "until the session changes (check the service account's "
		    "role: Cloud Datastore User)", s->session_id, s->event_id,
		    fs_status_name(&st), st.message);
		*why = OUTCOME_REFUSED;
		return false;
	} else {
		claimed(r, w.commit_time);
		ts_free(r->version);
		r->version = w.update_time;
		w.update_time = NULL;
		fs_written_clear(&w);
	}
	log_info("session=%s event=%s state=transforming attempt=%" PRId64
	    " settings=%u", s->session_id, s->event_id, r->attempt,
	    r->settings->generation);
	log_debug("session=%s event=%s queued %" PRId64 " ms, claimed in %"
	    PRId64 " ms", s->session_id, s->event_id,
	    r->t0 - r->t->enqueued_ms, now_mono_ms() - r->t0);
	return true;
}

/*
 * A finish was refused by its precondition: the document changed since our
 * claim.  Read it.  If an earlier try of ours landed after all (retried is
 * set), that is success: *kind becomes FS_OK.  If the claim is still ours
 * (transforming, our attempt and updatedAt) and someone else only wrote a
 * field of their own, r->version moves to the new version and true says to
 * finish again.  Otherwise the session really changed hands: false.
 */
static bool
still_ours(struct run *r, bool retried, const char *url, const char *message,
    enum fs_kind *kind)
{
	struct session now;
	bool again = false;

	if (!reread(r, &now))
		return false;
	if (retried && (url ? now.state == SESSION_READY &&
	    now.result_image_path && strcmp(now.result_image_path, url) == 0 :
	    now.state == SESSION_ERROR && now.error &&
	    strcmp(now.error, message) == 0)) {
		log_info("session=%s event=%s an earlier finish commit had "
		    "landed after all", r->s->session_id, r->s->event_id);
		*kind = FS_OK;
	} else if (holds_our_claim(r, &now)) {
		log_info("session=%s event=%s changed by someone else while "
		    "transforming, but the claim is still ours; finishing "
		    "against the new version", r->s->session_id,
		    r->s->event_id);
		ts_free(r->version);
		r->version = ts_dup(now.update_time);
		again = true;
	}
	session_clear(&now);
	return again;
}

/*
 * Commit the final write, retrying transient failures with back-off; a
 * retry refused by its precondition may mean an earlier try landed after
 * all, which the document tells.  Returns the kind of outcome.
 */
static enum fs_kind
finish_commit(struct run *r, const char *url, const char *message,
    struct fs_status *st, int64_t *commit_ms)
{
	static const char *const mask[] = { "state", "updatedAt",
	    "resultImagePath", "error" };
	struct backoff bo;
	enum fs_kind kind;
	int i, refreshes = 0;

	backoff_init(&bo, FINISH_BACKOFF_MS, FINISH_BACKOFF_MAX_MS, 2.0, 0.25);
	for (i = 0;; i++) {
		FsValue *f;

		if (frozen(r->p)) {
			snprintf(st->message, sizeof(st->message), "the "
			    "daemon is shutting down");
			st->kind = FS_TRANSIENT;
			return FS_TRANSIENT;
		}
		f = value_map();

		value_map_put(f, "state", value_string(url ? "ready" : "error"));
		value_map_put(f, "updatedAt", value_int(now_wall_ms()));
		/* the other of resultImagePath/error is absent from the
		 * fields but named in the mask: Firestore deletes it, so a
		 * ready session carries no stale error and vice versa */
		if (url)
			value_map_put(f, "resultImagePath", value_string(url));
		else
			value_map_put(f, "error", value_string(message));
		/* both are valid UTF-8 without control characters (finish
		 * cleaned them): Firestore refuses anything else */
		kind = update(r, f, mask, 4, st, commit_ms);
		if (kind == FS_CHANGED && refreshes < REFRESHES &&
		    still_ours(r, i > 0, url, message, &kind)) {
			refreshes++;
			i--;		/* not a failure: go again */
			continue;
		}
		if (kind != FS_TRANSIENT || i + 1 == FINISH_TRIES)
			break;
		log_info("session=%s event=%s finish commit: %s: %s; retrying",
		    r->s->session_id, r->s->event_id, fs_status_name(st),
		    st->message);
		backoff_sleep(&bo);
	}
	return kind;
}

/*
 * The final write: ready with url, or error with message.  If it never
 * lands the session stays "transforming" and interrupted-work recovery
 * runs it again later.
 */
static enum outcome
finish(struct run *r, const char *url_raw, const char *message_raw)
{
	const struct options *o = r->opt;
	struct session *s = r->s;
	struct fs_status st = { 0 };
	int64_t ms = now_mono_ms() - r->t0;
	char message[ERROR_MAX + 1], url[URL_MAX + 1];
	int64_t commit_ms = 0;
	enum fs_kind kind;

	/* every string we write, cleaned once, here: cut at a character
	 * boundary, invalid bytes replaced, control characters dropped */
	if (message_raw)
		text_clean(message_raw, ERROR_MAX, message, sizeof(message));
	if (url_raw)
		text_clean(url_raw, URL_MAX, url, sizeof(url));
	kind = finish_commit(r, url_raw ? url : NULL,
	    message_raw ? message : NULL, &st, &commit_ms);

	log_debug("session=%s event=%s finish commit took %" PRId64 " ms",
	    s->session_id, s->event_id, now_mono_ms() - r->t0 - ms);
	if (kind == FS_INVALID) {
		log_err("session=%s event=%s model=%s finish refused: %s: %s; "
		    "ending it with the smallest update", s->session_id,
		    s->event_id, r->model, fs_status_name(&st), st.message);
		return finish_minimal(r);
	}
	if (kind == FS_CHANGED) {
		log_warn("session=%s event=%s model=%s result dropped: the "
		    "session was changed by someone else while it was "
		    "transforming", s->session_id, s->event_id, r->model);
		return OUTCOME_DROPPED;
	}
	if (kind != FS_OK && frozen(r->p)) {
		log_notice("session=%s event=%s model=%s left 'transforming' "
		    "at shutdown; the next daemon re-runs it after %d s",
		    s->session_id, s->event_id, r->model,
		    o->transform_timeout_s + o->recovery_margin_s);
		return OUTCOME_UNRECORDED;
	}
	if (kind != FS_OK) {
		log_err("session=%s event=%s model=%s could not record the "
		    "outcome: %s: %s; it stays 'transforming' and will be "
		    "re-run after %d s", s->session_id, s->event_id, r->model,
		    fs_status_name(&st), st.message,
		    o->transform_timeout_s + o->recovery_margin_s);
		return OUTCOME_UNRECORDED;
	}
	if (url_raw) {
		log_info("session=%s event=%s model=%s plugin=%s state=ready "
		    "ms=%" PRId64 " settings=%u", s->session_id, s->event_id,
		    r->model, r->plugin, ms, r->settings->generation);
		metrics_session_ready(r->model, r->captured_ms > 0 &&
		    commit_ms >= r->captured_ms ? (double)(commit_ms -
		    r->captured_ms) / 1000.0 : -1.0);
		return OUTCOME_READY;
	}
	metrics_session_error(r->model, r->reason);
	log_warn("session=%s event=%s model=%s state=error ms=%" PRId64
	    " error=\"%s\" settings=%u", s->session_id, s->event_id, r->model,
	    ms, message, r->settings->generation);
	return OUTCOME_ERROR;
}

static enum outcome
fail(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static enum outcome
fail(struct run *r, const char *fmt, ...)
{
	char reason[400], msg[512];
	va_list ap;

	va_start(ap, fmt);
	text_vformat(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	text_format(msg, sizeof(msg), "AI transform failed: %s", reason);
	return finish(r, NULL, msg);
}

/*
 * The session's experience, decoded, into *ref (a reference to drop): the
 * one the engine took from the Listen cache, else a direct read.  Returns
 * 0 (the experience may still be malformed: experience_ref_get says),
 * -ENOENT, or -EIO (Firestore unreachable; err says why).
 */
static int
resolve_experience(struct run *r, const char *name,
    struct experience_ref **ref, char *err, size_t errlen)
{
	FsDocument *doc = NULL;
	struct fs_status st;
	int rc;

	if (r->t->experience != NULL) {
		*ref = experience_ref_hold(r->t->experience);
		return 0;
	}
	rc = fs_get_document(r->p->fs, name, RPC_TIMEOUT_MS, &doc, &st);
	if (rc == -EIO) {
		text_format(err, errlen, "%s: %s", fs_status_name(&st),
		    st.message);
		return rc;
	}
	if (rc < 0)
		return rc;
	*ref = experience_ref_decode(doc);
	doc_free(doc);
	return 0;
}

/*
 * A reference image as the app stored it, as a path of our storage that
 * may be read as a reference (malloc'd), or NULL with why.
 */
static char *
reference_path(const struct run *r, const char *ref, char *why,
    size_t whylen)
{
	char *path;

	if (store_reference(r->p->store, ref, &path, why, whylen) < 0)
		return NULL;
	if (path_check_reference(path, r->opt->reference_prefixes,
	    r->opt->n_reference_prefixes, why, whylen) < 0) {
		free(path);
		return NULL;
	}
	return path;
}

/*
 * What preparing a session produced: the experience, the capture and the
 * reference images, or the reason it failed (for the guest) plus an
 * optional line for the admin, logged only once the claim has landed.
 */
struct prepared {
	struct experience_ref *xref;	/* the resolved experience (held) */
	const struct experience *x;	/* decoded, in xref */
	uint8_t *in;		/* the capture's bytes */
	size_t inlen;
	uint8_t *refs[POOL_MAX_REFS];	/* the reference images' bytes */
	size_t ref_lens[POOL_MAX_REFS];
	size_t n_refs;
	struct frame *frame;	/* the event's, held; NULL: none */
	struct pool_rendition rend[POOL_MAX_RENDITIONS];	/* to make */
	size_t n_rend;
	bool failed;
	enum metrics_reason why;
	char reason[400];
	int log_prio;
	char log[512];
};

/* Read the experience's reference images that are in our storage into
 * refs (at most POOL_MAX_REFS); returns how many. */
static size_t
read_references(struct run *r, const struct experience *x, uint8_t **refs,
    size_t *ref_lens)
{
	const struct pipeline *p = r->p;
	size_t n = 0;
	char err[256];

	for (size_t i = 0; x->ai_enabled && i < x->n_reference_urls &&
	    n < POOL_MAX_REFS; i++) {
		char *path = reference_path(r, x->reference_urls[i], err,
		    sizeof(err));

		if (path == NULL) {
			log_info("session=%s reference %.200s %s; not passed "
			    "to the model", r->s->session_id,
			    x->reference_urls[i], err);
			continue;
		}
		if (store_get(p->store, path, r->opt->max_input_bytes,
		    &refs[n], &ref_lens[n], err, sizeof(err)) == 0)
			n++;
		else
			log_warn("session=%s reference %s could not be read: "
			    "%s; not passed to the model", r->s->session_id,
			    path, err);
		free(path);
	}
	return n;
}

/* The metrics' reason for a transform that failed with st. */
static enum metrics_reason
reason_of(enum pool_status st)
{
	switch (st) {
	case POOL_NO_PLUGIN: return REASON_NO_PLUGIN;
	case POOL_BAD_INPUT: return REASON_BAD_IMAGE;
	case POOL_TOO_LARGE: return REASON_IMAGE_TOO_LARGE;
	case POOL_PLUGIN_ERROR: return REASON_PLUGIN_ERROR;
	case POOL_BAD_RESULT: return REASON_BAD_RESULT;
	case POOL_TIMEOUT: return REASON_TIMEOUT;
	case POOL_CRASH: return REASON_CRASH;
	case POOL_UNAVAILABLE: return REASON_UNAVAILABLE;
	default: return REASON_WORKER;
	}
}

/*
 * A hosted call's unit of the event's limit ([hosted] event-limit): NULL
 * if the call may go (*taken: a unit was taken for it), or why not, for
 * the guest.
 */
static const char *
take_budget(struct run *r, const char *model, bool *taken)
{
	int64_t limit = options_event_limit(r->opt, r->s->event_id), count = 0;
	struct fs_status st;

	*taken = false;
	if (limit <= 0)
		return NULL;
	switch (budget_take(r->p->fs, r->s->event_id, limit, &count, &st)) {
	case BUDGET_OK:
		*taken = true;
		metrics_budget(r->s->event_id, count, limit);
		log_debug("session=%s event=%s model=%s: hosted call %" PRId64
		    " of the event's %" PRId64, r->s->session_id,
		    r->s->event_id, model, count, limit);
		return NULL;
	case BUDGET_SPENT:
		metrics_budget(r->s->event_id, count, limit);
		log_notice("session=%s event=%s model=%s: the event's limit of "
		    "%" PRId64 " hosted calls is reached ([hosted] "
		    "event-limit(s)); no call made", r->s->session_id,
		    r->s->event_id, model, limit);
		return BUDGET_SPENT_MESSAGE;
	default:
		log_warn("session=%s event=%s model=%s: the event's hosted-call "
		    "count could not be read (%s: %s); no call made",
		    r->s->session_id, r->s->event_id, model,
		    fs_status_name(&st), st.message);
		return "this event's AI limit could not be checked; please "
		    "try again";
	}
}

/* Produce the result PNG from what was prepared, in a worker process,
 * into out (pool.h); its status. */
static enum pool_status
transform(struct run *r, const struct prepared *o, struct pool_result *out)
{
	const struct experience *x = o->x;
	struct pool_job job = {
		.ai = x->ai_enabled,
		.model = x->model,
		.prompt = x->prompt,
		.aspect_ratio = x->aspect_ratio,
		.session_id = r->s->session_id,
		.event_id = r->s->event_id,
		.input = o->in,
		.input_len = o->inlen,
		.refs = (const uint8_t *const *)o->refs,
		.ref_lens = o->ref_lens,
		.n_refs = o->n_refs,
		/* the task's settings, not whatever a reload made current */
		.timeout_ms = (int64_t)r->opt->transform_timeout_s * 1000,
		.max_pixels = r->opt->max_pixels,
		.frame = o->frame ? o->frame->data : NULL,
		.frame_len = o->frame ? o->frame->len : 0,
		.max_result_pixels = r->opt->max_result_pixels,
	};
	const char *plugin, *spent = NULL;
	char fb[POOL_NAME_LEN];
	bool hosted = x->ai_enabled &&
	    pool_model_lane(r->p->pool, x->model) > 0, taken = false;
	int64_t t0;

	job.n_renditions = o->n_rend;
	job.renditions = o->rend;
	if (hosted)
		spent = take_budget(r, x->model, &taken);
	t0 = now_mono_ms();
	if (spent == NULL) {
		pool_transform(r->p->pool, &job, out);
	} else if (pool_fallback_for(r->p->pool, x->model, fb, sizeof(fb))) {
		/* no call: the fallback look straight away */
		job.model = fb;
		job.no_fallback = true;
		pool_transform(r->p->pool, &job, out);
		if (out->status == POOL_OK) {
			out->fallback = true;
			snprintf(out->fallback_why, sizeof(out->fallback_why),
			    "%s", spent);
		}
	} else {
		memset(out, 0, sizeof(*out));
		out->status = POOL_UNAVAILABLE;
		snprintf(out->message, sizeof(out->message), "%s", spent);
	}
	if (taken && out->requests == 0)
		budget_give_back(r->p->fs, r->s->event_id);	/* never sent */
	if (hosted)
		metrics_hosted(x->model, r->s->event_id, out->requests,
		    out->input_tokens, out->output_tokens, out->status ==
		    POOL_OK && !out->fallback, out->fallback,
		    options_price(r->opt, x->model));
	if (out->fallback)
		log_notice("session=%s event=%s model=%s: %s; the guest gets "
		    "the fallback look %s instead", r->s->session_id,
		    r->s->event_id, x->model, out->fallback_why, out->model);
	metrics_transform(r->model, (double)(now_mono_ms() - t0) / 1000.0);
	plugin = *out->plugin ? out->plugin : x->ai_enabled ? "-" : "none";
	if (*out->plugin)
		snprintf(r->plugin, sizeof(r->plugin), "%s", out->plugin);
	r->reason = spent != NULL && !out->fallback &&
	    out->status == POOL_UNAVAILABLE ? (strcmp(spent,
	    BUDGET_SPENT_MESSAGE) == 0 ? REASON_BUDGET : REASON_UNAVAILABLE) :
	    reason_of(out->status);
	if (out->status == POOL_CRASH)
		metrics_worker_crash(plugin);
	else if (out->status == POOL_TIMEOUT)
		metrics_worker_timeout(plugin);
	return out->status;
}

/* Record why preparing failed, for the guest; returns false, so a step
 * ends with "return prepare_failed(...)". */
static bool
prepare_failed(struct prepared *o, enum metrics_reason why, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static bool
prepare_failed(struct prepared *o, enum metrics_reason why, const char *fmt,
    ...)
{
	va_list ap;

	o->why = why;

	va_start(ap, fmt);
	text_vformat(o->reason, sizeof(o->reason), fmt, ap);
	va_end(ap);
	o->failed = true;
	return false;
}

/* The experience of the session into o->x; false with the reason in o. */
static bool
prepare_experience(struct run *r, struct prepared *o)
{
	const char *id = r->s->selected_experience_id;
	char why[512], shown[104], *name;
	const char *bad;
	int rc;

	if (id == NULL || *id == '\0')
		return prepare_failed(o, REASON_NO_EXPERIENCE, "no experience "
		    "selected (data.selected_experience_id is missing)");
	/* the id as the guest's message shows it: cut between characters */
	text_name(id, 100, shown, sizeof(shown));
	name = experience_doc_name(fs_docs_path(r->p->fs), id);
	if (name == NULL)
		return prepare_failed(o, REASON_NO_EXPERIENCE, "experience id "
		    "'%s' is not a valid document id", shown);
	rc = resolve_experience(r, name, &o->xref, why, sizeof(why));
	free(name);
	if (rc == -ENOENT)
		return prepare_failed(o, REASON_NO_EXPERIENCE, "experience '%s' "
		    "not found", shown);
	if (rc == -EIO)
		return prepare_failed(o, REASON_EXPERIENCE_READ, "could not "
		    "read the experience (%s); please retry", why);
	if (experience_ref_get(o->xref, &o->x, &bad) < 0)
		return prepare_failed(o, REASON_NO_EXPERIENCE, "%s", bad);
	snprintf(r->model, sizeof(r->model), "%s",
	    o->x->ai_enabled ? o->x->model : "none");
	return true;
}

/* The capture into o->in; false with the reason in o. */
static bool
prepare_input(struct run *r, struct prepared *o)
{
	const struct pipeline *p = r->p;
	struct session *s = r->s;
	char why[512];
	int rc;

	if (s->input_image_path == NULL || *s->input_image_path == '\0')
		return prepare_failed(o, REASON_NO_INPUT, "input image not "
		    "found (inputImagePath is missing)");
	if (path_check_input(s->input_image_path, s->event_id, s->session_id,
	    why, sizeof(why)) < 0) {
		o->log_prio = LOG_WARNING;
		snprintf(o->log, sizeof(o->log), "refused inputImagePath "
		    "'%.200s'", s->input_image_path);
		return prepare_failed(o, REASON_INPUT_REFUSED, "%s", why);
	}
	rc = store_get(p->store, s->input_image_path, r->opt->max_input_bytes,
	    &o->in, &o->inlen, why, sizeof(why));
	if (rc == -ENOENT)
		return prepare_failed(o, REASON_NO_INPUT, "input image not "
		    "found");
	if (rc == -EFBIG)
		return prepare_failed(o, REASON_INPUT_TOO_LARGE, "input image "
		    "is too large (over %zu MB)", r->opt->max_input_bytes >> 20);
	if (rc < 0) {
		o->log_prio = LOG_ERR;
		snprintf(o->log, sizeof(o->log), "storage read failed: %.400s",
		    why);
		return prepare_failed(o, REASON_STORAGE_READ, "could not read "
		    "the input image");
	}
	return true;
}

/* The event's frame into o->frame, if it has one; one that cannot be
 * read is a warning, and the result goes out without it. */
static void
read_frame(struct run *r, struct prepared *o)
{
	const char *tmpl = r->opt->frame ? r->opt->frame :
	    "branding/{event}/frame.png";
	char why[512];

	if (*tmpl == '\0' || strcmp(tmpl, "none") == 0)
		return;
	/* a look without a model keeps the photo's shape: no aspect's own
	 * frame for it */
	o->frame = frames_get(r->p->frames, r->p->store, tmpl,
	    r->s->event_id, o->x->ai_enabled ? o->x->aspect_ratio : "", why,
	    sizeof(why));
	if (o->frame == NULL && *why)
		log_warn("session=%s event=%s %s; the result goes out without "
		    "it: check the file (a PNG with alpha, at most %u MB) and "
		    "the storage", r->s->session_id, r->s->event_id, why,
		    FRAMES_MAX_BYTES >> 20);
}

/*
 * Resolve the experience, check the path, read the capture and the
 * reference images: work that writes nothing, done while the claim
 * commit is in flight.  The
 * transform itself waits for the claim, so a daemon that loses the race
 * never runs a plugin for nothing.
 */
static void
prepare(struct run *r, struct prepared *o)
{
	if (r->t->decode_rc < 0) {
		prepare_failed(o, REASON_INVALID_SESSION, "session document is "
		    "invalid: %s", r->t->decode_err);
		return;
	}
	if (!prepare_experience(r, o))
		return;
	if (!prepare_input(r, o))
		return;
	/* the references and the frame with the capture, in the same
	 * step */
	o->n_refs = read_references(r, o->x, o->refs, o->ref_lens);
	read_frame(r, o);
	o->n_rend = options_renditions(r->opt, o->rend);
}

/* The renditions the workers made of the result, beside it, with its
 * download token.  0, or -errno with why. */
static int
store_renditions(struct run *r, const struct prepared *o,
    const struct pool_result *res, const char *tok, char *why,
    size_t whylen)
{
	const struct pool_rendition *rend = o->rend;
	int rc = 0;

	for (size_t i = 0; i < o->n_rend && rc == 0 && res->rendition[i];
	    i++) {
		char *path = path_rendition(r->s->event_id, r->s->session_id,
		    rend[i].name, pool_format_ext(rend[i].format));

		rc = store_put(r->p->store, path, res->rendition[i],
		    res->rendition_len[i], pool_format_type(rend[i].format),
		    tok, why, whylen);
		free(path);
	}
	return rc;
}

/* The claim has landed: transform, store the result and finish. */
static enum outcome
transform_store_finish(struct run *r, struct prepared *o)
{
	struct session *s = r->s;
	struct pool_result res;
	char why[512], *result_path, *url = NULL;
	char token[STORE_TOKEN_LEN + 1];
	const char *tok = NULL;		/* the result's download token */
	enum outcome out;
	int rc;

	if (o->log_prio != 0)
		log_at(o->log_prio, "session=%s event=%s %s", s->session_id,
		    s->event_id, o->log);
	if (o->failed) {
		r->reason = o->why;
		return fail(r, "%s", o->reason);
	}
	transform(r, o, &res);
	transformed(r);
	if (res.status != POOL_OK)
		return fail(r, "%s", res.message);
	if (o->frame && res.framed)
		log_debug("session=%s event=%s framed with %s", s->session_id,
		    s->event_id, o->frame->path);
	else if (o->frame)
		log_warn("session=%s event=%s the frame %s was not applied: "
		    "%s; the result went out without it", s->session_id,
		    s->event_id, o->frame->path, res.frame_note);
	result_path = path_result(s->event_id, s->session_id);
	/* a fresh token with each result: a retried session's URL works,
	 * and the one before no longer opens anything; the renditions get
	 * the same, so the app derives their URLs from the result's */
	if (store_wants_token(r->p->store)) {
		store_new_token(token);
		tok = token;
	}
	rc = store_put(r->p->store, result_path, res.png, res.png_len,
	    "image/png", tok, why, sizeof(why));
	if (rc == 0)
		rc = store_renditions(r, o, &res, tok, why, sizeof(why));
	if (rc == 0)
		url = store_url(r->p->store, result_path, tok);
	free(result_path);
	pool_result_free(&res);
	if (rc < 0) {
		log_err("session=%s event=%s storage write failed: %s; check "
		    "%s", s->session_id, s->event_id, why,
		    r->p->store->bucket ? "the bucket and the service "
		    "account's Storage Object User role" : "the storage "
		    "root's permissions and free space");
		r->reason = REASON_STORAGE_WRITE;
		return fail(r, "could not store the result");
	}
	log_debug("session=%s event=%s result stored at %" PRId64 " ms",
	    s->session_id, s->event_id, now_mono_ms() - r->t0);
	out = finish(r, url, NULL);
	free(url);
	return out;
}

/* Claim the session and, once the claim has landed, finish it. */
static enum outcome
claim_and_run(struct run *r)
{
	struct prepared o = { 0 };
	enum outcome out;
	struct fs_call *k;

	if (r->p->may_claim != NULL && !r->p->may_claim(r->p->arg, r->t)) {
		log_debug("session=%s event=%s taken by someone else before "
		    "our turn; no claim sent", r->s->session_id,
		    r->s->event_id);
		return OUTCOME_WITHDRAWN;
	}
	k = claim_start(r);
	prepare(r, &o);
	if (claim_finish(r, k, &out)) {
		if (r->s->warning)
			log_warn("session=%s event=%s does not match the "
			    "session schema (processing anyway): %s",
			    r->s->session_id, r->s->event_id, r->s->warning);
		out = transform_store_finish(r, &o);
	}
	experience_ref_drop(o.xref);
	frame_drop(o.frame);
	free(o.in);
	for (size_t i = 0; i < o.n_refs; i++)
		free(o.refs[i]);
	return out;
}

/*
 * The task came from a slim cache entry (a big document): read the
 * session whole, at the version dispatch saw.  OUTCOME_IGNORED when it can
 * go on; otherwise what became of the task (a newer version is dispatched
 * on its own when the stream shows it).
 */
static enum outcome
read_whole(const struct pipeline *p, struct work *t)
{
	struct session now;
	FsDocument *doc = NULL;
	struct fs_status st;
	char err[256];
	int rc = fs_get_document(p->fs, t->s.name, RPC_TIMEOUT_MS, &doc, &st);

	if (rc == -ENOENT)
		return OUTCOME_WITHDRAWN;
	if (rc < 0) {
		log_warn("session=%s event=%s could not be read: %s: %s; will "
		    "retry", t->s.session_id, t->s.event_id,
		    fs_status_name(&st), st.message);
		return OUTCOME_RETRY;
	}
	if (ts_compare(doc->update_time, t->s.update_time) != 0) {
		doc_free(doc);
		return OUTCOME_WITHDRAWN;
	}
	rc = session_decode(doc, &now, err, sizeof(err));
	doc_free(doc);
	session_clear(&t->s);
	t->s = now;
	t->decode_rc = rc;
	snprintf(t->decode_err, sizeof(t->decode_err), "%s", rc < 0 ? err : "");
	return OUTCOME_IGNORED;
}

enum outcome
pipeline_run(const struct pipeline *p, const struct settings *settings,
    struct work *t)
{
	const struct options *o = &settings->o;
	struct run r = { .p = p, .settings = settings, .opt = o, .t = t,
	    .s = &t->s, .t0 = now_mono_ms(), .attempt = t->attempt };
	enum outcome out;

	snprintf(r.model, sizeof(r.model), "-");
	snprintf(r.plugin, sizeof(r.plugin), "-");
	if (t->s.event_id == NULL) {
		/* a "sessions" collection outside events/: not ours */
		log_debug("ignoring %s: %s", t->s.name, t->decode_err);
		return OUTCOME_IGNORED;
	}
	if (t->reread && (out = read_whole(p, t)) != OUTCOME_IGNORED)
		return out;
	r.version = ts_dup(t->s.update_time);
	if (t->kind != TASK_CLAIM)
		log_warn("session=%s event=%s has been 'transforming' for over "
		    "%d s: its daemon was interrupted; %s",
		    t->s.session_id, t->s.event_id,
		    o->transform_timeout_s + o->recovery_margin_s,
		    t->kind == TASK_GIVE_UP ? "giving up" :
		    "running it again");
	if (t->kind == TASK_CLAIM)
		r.captured_ms = ts_to_ms(t->s.update_time);
	if (t->kind == TASK_GIVE_UP) {	/* finish straight from transforming */
		r.reason = REASON_INTERRUPTED;
		out = fail(&r, "transform interrupted");
	} else {
		out = claim_and_run(&r);
	}
	ts_free(r.version);
	return out;
}

void
work_clear(struct work *w)
{
	session_clear(&w->s);
	experience_ref_drop(w->experience);
	w->experience = NULL;
}
