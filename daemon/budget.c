/*
 * budget.c - per-event limits on hosted-model calls (budget.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>

#include "alloc.h"
#include "budget.h"
#include "log.h"

#define BUDGET_TIMEOUT_MS	10000

static char *
budget_doc(struct fs_client *fs, const char *event)
{
	return xasprintf("%s/" BUDGET_COLLECTION "/%s", fs_docs_path(fs),
	    event);
}

/* One increment by `by`, tried twice if Firestore gave no verdict. */
static enum fs_kind
add(struct fs_client *fs, const char *event, int64_t by, int64_t *after,
    struct fs_status *st)
{
	char *name = budget_doc(fs, event);
	enum fs_kind k = FS_TRANSIENT;

	for (int i = 0; i < 2 && k == FS_TRANSIENT; i++)
		k = fs_increment(fs, name, BUDGET_FIELD, by, BUDGET_TIMEOUT_MS,
		    after, st);
	free(name);
	return k;
}

enum budget_verdict
budget_take(struct fs_client *fs, const char *event, int64_t limit,
    int64_t *count, struct fs_status *st)
{
	int64_t after = 0;

	/* a transient failure may have landed anyway: then the count is
	 * one high, which errs on the side of the bill */
	if (add(fs, event, 1, &after, st) != FS_OK)
		return BUDGET_UNKNOWN;
	if (after <= limit) {
		*count = after;
		return BUDGET_OK;
	}
	*count = after - 1;
	budget_give_back(fs, event);
	return BUDGET_SPENT;
}

int
budget_give_back(struct fs_client *fs, const char *event)
{
	struct fs_status st;

	if (add(fs, event, -1, NULL, &st) == FS_OK)
		return 0;
	log_warn("event=%s: could not hand back a unit of its hosted-call "
	    "limit (%s: %s); its count in " BUDGET_COLLECTION "/%s stays one "
	    "high", event, fs_status_name(&st), st.message, event);
	return -1;
}
