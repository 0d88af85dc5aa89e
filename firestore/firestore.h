/*
 * firestore.h - a Firestore v1 client over gRPC C core: unary Commit,
 * BatchGetDocuments for single documents, RunQuery, and the Listen
 * stream.
 *
 * One client (one channel) is shared by all threads; each call owns its
 * own completion queue.  Every call carries the routing header
 * google-cloud-resource-prefix: projects/P/databases/D, and on the
 * emulator "authorization: Bearer owner".
 */
#ifndef FIRESYNC_FIRESTORE_H
#define FIRESYNC_FIRESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb.h"

struct fs_options {
	const char *target;		/* host:port */
	const char *project;
	const char *database;		/* "(default)" if NULL */
	bool emulator;			/* insecure channel, owner token */
	int64_t keepalive_ms;		/* 0: no keepalive pings */
	int64_t max_reconnect_backoff_ms; /* 0: FS_RECONNECT_BACKOFF_MS */
	/* TLS (not the emulator): the CA certificates (PEM file) the
	 * endpoint's certificate must chain to; NULL: the system's */
	const char *ca_file;
	/*
	 * The access token for every call (not the emulator): token()
	 * writes one into buf (0), or says why not in err (-1); refused()
	 * hears of a token the server answered UNAUTHENTICATED to, so the
	 * next call gets a fresh one.  token NULL: gRPC's own Google
	 * default credentials.
	 */
	int (*token)(void *arg, char *buf, size_t len, char *err,
	    size_t errlen);
	void (*refused)(void *arg, const char *token);
	void *token_arg;
};

/* gRPC's channel reconnect back-off is capped at this by default. */
#define FS_RECONNECT_BACKOFF_MS	10000

/* The outcome of a call: a gRPC status code and its message. */
struct fs_status {
	int code;			/* grpc_status_code; 0 is OK */
	char message[512];
};

struct fs_client {
	void *channel;			/* grpc_channel * */
	void (*refused)(void *arg, const char *token);
	void *token_arg;
	char last_token[2048];		/* the last one sent, for refused */
	void *token_lock;		/* pthread_mutex_t *, guards it */
	char *project;
	char *database;
	char *db_path;			/* projects/P/databases/D */
	char *docs_path;		/* db_path + "/documents" */
	bool emulator;
};

/* gRPC must be initialised (grpc_init) before and shut down after. */
struct fs_client *fs_client_new(const struct fs_options *o, char *err,
    size_t errlen);
void fs_client_free(struct fs_client *c);

/*
 * Commit writes (borrowed) atomically.  On OK, *resp (if resp is not NULL)
 * gets the response; caller frees with
 * google__firestore__v1__commit_response__free_unpacked(r, NULL).
 * Returns the gRPC status code (0 = OK) and fills st.
 */
int fs_commit(struct fs_client *c, FsWrite **writes, size_t n,
    int64_t timeout_ms, FsCommitResponse **resp, struct fs_status *st);

/*
 * The same as two halves, so the caller can work while the commit is in
 * flight: fs_commit_start packs writes (borrowed; free them any time after
 * it returns) and sends; fs_commit_finish waits, fills resp/st like
 * fs_commit and frees the call.  Every started call must be finished.
 */
struct fs_call;
struct fs_call *fs_commit_start(struct fs_client *c, FsWrite **writes,
    size_t n, int64_t timeout_ms);
int fs_commit_finish(struct fs_call *k, FsCommitResponse **resp,
    struct fs_status *st);

/*
 * Read one document by full name.  Returns 0 and *doc (caller frees with
 * doc_free), -ENOENT if it does not exist, or -EIO with st filled.
 */
int fs_get_document(struct fs_client *c, const char *name,
    int64_t timeout_ms, FsDocument **doc, struct fs_status *st);

/* A query to listen to or run: documents of collection under parent,
 * optionally only those whose field holds one of values. */
struct fs_query {
	const char *parent;		/* relative to .../documents; NULL or
					   "" for the root */
	const char *collection;		/* collection id */
	bool all_descendants;		/* a collection group query */
	const char *field;		/* NULL: no filter */
	const char *const *values;	/* where field in values */
	size_t n_values;
	/* RunQuery paging: at most limit documents (0: no limit), ordered
	 * by name, after the document start_after (full name) if not NULL */
	int32_t limit;
	const char *start_after;
};

/*
 * The request adding query as Listen target id, resuming from
 * resume_token when there is one.  Caller frees with
 * google__firestore__v1__listen_request__free_unpacked(r, NULL).
 */
FsListenRequest *fs_listen_target(const struct fs_client *c, int32_t id,
    const struct fs_query *query, const uint8_t *resume_token,
    size_t resume_len);

/* The request adding one document (full name) as Listen target id: the
 * way an app watches its own session.  Freed like fs_listen_target's. */
FsListenRequest *fs_listen_document(const struct fs_client *c, int32_t id,
    const char *name);

/*
 * Run query once (RunQuery).  Each document found is handed to on_doc
 * with the query's read time (server clock); on_doc takes it (frees it
 * with doc_free).  Returns the gRPC status code (0 = OK) and fills st.
 */
int fs_run_query(struct fs_client *c, const struct fs_query *query,
    int64_t timeout_ms, void (*on_doc)(FsDocument *doc,
    const FsTimestamp *read_time, void *arg), void *arg,
    struct fs_status *st);

/* The RunQuery request for query; caller frees with
 * google__firestore__v1__run_query_request__free_unpacked(r, NULL). */
Google__Firestore__V1__RunQueryRequest *fs_query_request(
    const struct fs_client *c, const struct fs_query *query);

/* The bidirectional Listen stream. */
struct fs_listen;

/* Open a stream and send reqs[0..n) (borrowed) as its first messages. */
struct fs_listen *fs_listen_open(struct fs_client *c,
    const FsListenRequest *const *reqs, size_t n);
/*
 * Wait up to timeout_ms for the next response.  Returns 1 with *resp
 * (caller frees with ..._listen_response__free_unpacked), 0 on timeout,
 * -1 when the stream has ended (see fs_listen_close for its status).
 */
int fs_listen_next(struct fs_listen *l, int64_t timeout_ms,
    FsListenResponse **resp);
/* End the stream from any thread; fs_listen_next then returns -1. */
void fs_listen_cancel(struct fs_listen *l);
/* Cancel if needed, collect the final status into st, free everything. */
void fs_listen_close(struct fs_listen *l, struct fs_status *st);

/* Is a Listen stream ending with this code worth reconnecting quickly? */
bool fs_status_retryable(int code);
const char *fs_status_name(int code);

#endif
