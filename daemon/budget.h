/*
 * budget.h - per-event limits on hosted-model calls, counted across every
 * daemon of the project, exactly: each event's count is the integer field
 * hostedCalls of firesync's own document firesyncBudgets/{eventId} (never
 * a field of the app's documents), moved only by atomic increments.  A
 * call takes its unit before it is made; the value the increment returns
 * is the call's place in line, so of any number of daemons asking at once
 * exactly `limit` get through.  One over the limit hands its unit straight
 * back, as does a call that never reached the service.
 */
#ifndef FIRESYNC_BUDGET_H
#define FIRESYNC_BUDGET_H

#include <stdint.h>

#include "firestore.h"

#define BUDGET_COLLECTION	"firesyncBudgets"
#define BUDGET_FIELD		"hostedCalls"
/* What a guest is told when the limit is reached and there is no
 * fallback look. */
#define BUDGET_SPENT_MESSAGE	"this event's AI limit has been reached"

enum budget_verdict {
	BUDGET_OK,		/* a unit taken: make the call */
	BUDGET_SPENT,		/* the event's limit is reached: no call */
	BUDGET_UNKNOWN,		/* Firestore did not say (st): no call */
};

/* Take a unit of event's limit (> 0); *count gets the event's count
 * with it (OK) or as it stood (SPENT). */
enum budget_verdict budget_take(struct fs_client *fs, const char *event,
    int64_t limit, int64_t *count, struct fs_status *st);

/* Hand back a unit taken for a call that never reached the service.  0, or
 * -1 (logged: the count stays one too high). */
int budget_give_back(struct fs_client *fs, const char *event);

#endif
