/*
 * dispatch.c - one map of session name -> entry, and the rules of
 * dispatch.h.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dispatch.h"
#include "strmap.h"

#define VERSION_LEN	48	/* "seconds.nanoseconds" of a Timestamp */

struct entry {
	char version[VERSION_LEN];	/* dispatched at; "" none */
	bool in_flight;			/* a task is queued or running */
	bool polled;			/* dispatched from the recovery query,
					   not from the captured view */
	bool claiming;			/* its claim has been sent */
	bool withdrawn;			/* it left the view before that */
	bool noted;			/* seen captured, not yet dispatched */
	/* the "transforming" version first seen, and when */
	char seen_version[VERSION_LEN];
	int64_t seen_ms;		/* monotonic */
	int64_t seen_age_ms;		/* its server-side age then */
};

struct dispatch {
	pthread_mutex_t lock;
	struct strmap *entries;		/* name -> struct entry */
	size_t in_flight;
};

struct dispatch *
dispatch_new(void)
{
	struct dispatch *d = xcalloc(1, sizeof(*d));

	pthread_mutex_init(&d->lock, NULL);
	d->entries = strmap_new();
	return d;
}

void
dispatch_free(struct dispatch *d)
{
	if (d == NULL)
		return;
	strmap_free(d->entries, free);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static struct entry *
entry_for(struct dispatch *d, const char *name)
{
	struct entry *e = strmap_get(d->entries, name);

	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		strmap_put(d->entries, name, e);
	}
	return e;
}

static void
take(struct dispatch *d, struct entry *e, const char *version, bool polled)
{
	snprintf(e->version, sizeof(e->version), "%s", version);
	e->in_flight = true;
	e->polled = polled;
	e->claiming = e->withdrawn = e->noted = false;
	d->in_flight++;
}

enum dispatch_verdict
dispatch_consider(struct dispatch *d, const char *name, const char *version,
    enum session_state state, int64_t age_ms, int64_t attempts,
    const struct dispatch_rules *r, int64_t now_ms, int64_t *attempt)
{
	enum dispatch_verdict v = DISPATCH_WAIT;
	struct entry *e;

	pthread_mutex_lock(&d->lock);
	e = entry_for(d, name);
	if (e->in_flight || strcmp(e->version, version) == 0)
		goto out;
	if (state != SESSION_TRANSFORMING) {
		/* captured (or a malformed state the pipeline reports) */
		take(d, e, version, false);
		*attempt = 1;
		v = DISPATCH_CLAIM;
		goto out;
	}
	/* "transforming": someone's lease, until it has been so too long */
	if (strcmp(e->seen_version, version) != 0) {
		snprintf(e->seen_version, sizeof(e->seen_version), "%s",
		    version);
		e->seen_ms = now_ms;
		e->seen_age_ms = age_ms > 0 ? age_ms : 0;
	}
	if (e->seen_age_ms + (now_ms - e->seen_ms) <= r->lease_ms)
		goto out;
	take(d, e, version, true);
	if (attempts < 0)
		attempts = 0;
	if (attempts >= r->max_attempts) {
		*attempt = attempts;
		v = DISPATCH_GIVE_UP;
	} else {
		*attempt = attempts + 1;
		v = DISPATCH_RECLAIM;
	}
out:
	pthread_mutex_unlock(&d->lock);
	return v;
}

void
dispatch_done(struct dispatch *d, const char *name, bool again)
{
	struct entry *e;

	pthread_mutex_lock(&d->lock);
	e = strmap_get(d->entries, name);
	if (e != NULL && e->in_flight) {
		e->in_flight = false;
		d->in_flight--;
		if (again)
			e->version[0] = '\0';
	}
	pthread_mutex_unlock(&d->lock);
}

void
dispatch_note(struct dispatch *d, const char *name)
{
	struct entry *e;

	pthread_mutex_lock(&d->lock);
	e = entry_for(d, name);
	if (!e->in_flight && e->version[0] == '\0')
		e->noted = true;
	pthread_mutex_unlock(&d->lock);
}

bool
dispatch_start_claim(struct dispatch *d, const char *name)
{
	struct entry *e;
	bool ok = true;

	pthread_mutex_lock(&d->lock);
	e = strmap_get(d->entries, name);
	if (e != NULL && e->in_flight) {
		ok = !e->withdrawn;
		e->claiming = ok;
	}
	pthread_mutex_unlock(&d->lock);
	return ok;
}

size_t
dispatch_prune(struct dispatch *d, bool (*in_view)(void *, const char *),
    void *arg)
{
	size_t pos = 0, n = 0, cap, taken = 0;
	const char *name;
	char **gone;
	void *v;

	pthread_mutex_lock(&d->lock);
	cap = strmap_count(d->entries);
	gone = xcalloc(cap ? cap : 1, sizeof(*gone));
	while (strmap_next(d->entries, &pos, &name, &v)) {
		struct entry *e = v;

		if (e->in_flight) {
			/* queued here, and gone from the captured view
			 * before we sent a claim: someone else took it */
			if (!e->polled && !e->claiming && !e->withdrawn &&
			    !in_view(arg, name)) {
				e->withdrawn = true;
				taken++;
			}
			continue;
		}
		if (in_view(arg, name))
			continue;
		if (e->noted)	/* seen, left before we got to it */
			taken++;
		gone[n++] = xstrdup(name);
	}
	for (size_t i = 0; i < n; i++) {
		free(strmap_del(d->entries, gone[i]));
		free(gone[i]);
	}
	pthread_mutex_unlock(&d->lock);
	free(gone);
	return taken;
}

size_t
dispatch_in_flight(struct dispatch *d)
{
	size_t n;

	pthread_mutex_lock(&d->lock);
	n = d->in_flight;
	pthread_mutex_unlock(&d->lock);
	return n;
}

size_t
dispatch_count(struct dispatch *d)
{
	size_t n;

	pthread_mutex_lock(&d->lock);
	n = strmap_count(d->entries);
	pthread_mutex_unlock(&d->lock);
	return n;
}

struct dispatch_turns
dispatch_turns(int64_t now_ms, int64_t peer_ms, double claim_rtt_ms, int busy,
    int limit)
{
	struct dispatch_turns t = { 0, 0 };

	if (peer_ms == 0 || now_ms - peer_ms > DISPATCH_PEER_MEMORY_MS)
		return t;
	t.spread_ms = DISPATCH_SPREAD_RTTS * claim_rtt_ms;
	if (t.spread_ms < DISPATCH_SPREAD_MIN_MS)
		t.spread_ms = DISPATCH_SPREAD_MIN_MS;
	if (t.spread_ms > DISPATCH_SPREAD_MAX_MS)
		t.spread_ms = DISPATCH_SPREAD_MAX_MS;
	t.load = limit > 0 ? (double)busy / limit : 1;
	if (t.load > 1)
		t.load = 1;
	if (t.load < 0)
		t.load = 0;
	return t;
}

int64_t
dispatch_turn_delay(const struct dispatch_turns *t, const char *name)
{
	if (t->spread_ms == 0)
		return 0;
	return (int64_t)(t->spread_ms * ((double)strmap_hash(name) /
	    4294967296.0 + t->load));
}
