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
	 * The access token for every call (not the emulator).  peek()
	 * writes a cached one into buf (0) without ever waiting, or says
	 * there is none (-1); token() gets one, fetching it if need be
	 * (0), or says why not in err (-1).  gRPC asks for tokens on its
	 * own threads, which must not wait on the network: it gets peek()'s
	 * answer, or waits for the client's token thread, which calls
	 * token() (and calls it every 30 s anyway, so a token is refreshed
	 * before it expires).  refused() hears of a token the server
	 * answered UNAUTHENTICATED to, so the next call gets a fresh one.
	 * token NULL: gRPC's own Google default credentials.
	 */
	int (*token)(void *arg, char *buf, size_t len, char *err,
	    size_t errlen);
	int (*peek)(void *arg, char *buf, size_t len);
	void (*refused)(void *arg, const char *token);
	void *token_arg;
};

/* gRPC's channel reconnect back-off is capped at this by default. */
#define FS_RECONNECT_BACKOFF_MS	10000

/*
 * What became of a call, in the terms its caller acts on.  The server's
 * own status (a gRPC code) is kept only to be named in the log.
 */
enum fs_kind {
	FS_OK = 0,
	FS_CHANGED,		/* a precondition failed: the document
				   changed since, or is gone */
	FS_INVALID,		/* refused as invalid (a document that
				   would pass Firestore's 1 MiB limit) */
	FS_TRANSIENT,		/* no verdict: a timeout, a dropped
				   connection, the server busy or
				   restarting, an expired token; worth
				   another try */
	FS_DENIED,		/* the credentials may not do this */
	FS_FAILED,		/* refused for good otherwise (a wrong
				   project or database, say) */
};

/* The outcome of a call: its kind, and for the log the server's status
 * and message. */
struct fs_status {
	enum fs_kind kind;
	int code;			/* the server's; only for fs_status_name */
	char message[512];
};

/* The server's status, by its name ("FAILED_PRECONDITION"). */
const char *fs_status_name(const struct fs_status *st);

/*
 * Has the endpoint's TLS certificate failed verification (a wrong
 * ca-file, a wrong host: a configuration error, not a network blip)?
 * True with what failed, against which CA certificates, into why.
 */
bool fs_tls_rejected(char *why, size_t len);

/*
 * Once per process, before any client and before other threads start:
 * the RPC library's start-up, its own log lines routed into ours.  And
 * at the end, after every client is freed.
 */
void fs_library_init(void);
void fs_library_shutdown(void);

/* A connection to one database; shared by all threads. */
struct fs_client;

struct fs_client *fs_client_new(const struct fs_options *o, char *err,
    size_t errlen);
void fs_client_free(struct fs_client *c);
/* projects/P/databases/D/documents: full document names start with it. */
const char *fs_docs_path(const struct fs_client *c);
const char *fs_project(const struct fs_client *c);
const char *fs_database(const struct fs_client *c);
bool fs_is_emulator(const struct fs_client *c);

/*
 * Commit writes (borrowed) atomically.  On FS_OK, *resp (if resp is not
 * NULL) gets the response; caller frees with doc_free.  Returns the kind
 * of outcome and fills st.  (Tools and tests build their own writes; the
 * daemon uses fs_update.)
 */
enum fs_kind fs_commit(struct fs_client *c, FsWrite **writes, size_t n,
    int64_t timeout_ms, FsCommitResponse **resp, struct fs_status *st);

/*
 * Add by to the integer field of the document name (created if missing),
 * atomically on the server; on FS_OK, *after (if not NULL) is its value
 * after this increment: two callers never see the same one.
 */
enum fs_kind fs_increment(struct fs_client *c, const char *name,
    const char *field, int64_t by, int64_t timeout_ms, int64_t *after,
    struct fs_status *st);

/*
 * One update of the document name: the fields of map (consumed) named in
 * mask are set, and those named but absent from map deleted, only if the
 * document's update_time is still version.  On FS_OK, w (if not NULL)
 * gets when it landed; fs_written_clear frees it.  A precondition that
 * fails is FS_CHANGED.
 */
struct fs_written {
	FsTimestamp *commit_time;	/* the commit's, server clock */
	FsTimestamp *update_time;	/* the document's new version */
};
void fs_written_clear(struct fs_written *w);
enum fs_kind fs_update(struct fs_client *c, const char *name,
    const FsTimestamp *version, FsValue *map, const char *const *mask,
    size_t n_mask, int64_t timeout_ms, struct fs_written *w,
    struct fs_status *st);

/*
 * The same as two halves, so the caller can work while the commit is in
 * flight: fs_update_start sends; fs_update_finish waits, fills w and st
 * like fs_update and frees the call.  Every started call must be
 * finished.
 */
struct fs_call;
struct fs_call *fs_update_start(struct fs_client *c, const char *name,
    const FsTimestamp *version, FsValue *map, const char *const *mask,
    size_t n_mask, int64_t timeout_ms);
enum fs_kind fs_update_finish(struct fs_call *k, struct fs_written *w,
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
 * Run query once (RunQuery).  Each document found is handed to on_doc
 * with the query's read time (server clock); on_doc takes it (frees it
 * with doc_free).  Returns the kind of outcome and fills st.
 */
enum fs_kind fs_run_query(struct fs_client *c, const struct fs_query *query,
    int64_t timeout_ms, void (*on_doc)(FsDocument *doc,
    const FsTimestamp *read_time, void *arg), void *arg,
    struct fs_status *st);

/* The RunQuery request for query; caller frees with
 * google__firestore__v1__run_query_request__free_unpacked(r, NULL). */
Google__Firestore__V1__RunQueryRequest *fs_query_request(
    const struct fs_client *c, const struct fs_query *query);

/* A Listen target: a query's results, or one document. */
struct fs_target {
	int32_t id;
	const struct fs_query *query;	/* or NULL, and: */
	const char *document;		/* a full document name: the way an
					   app watches its own session */
	const uint8_t *resume_token;	/* resume from here (NULL: from
					   the start) */
	size_t resume_len;
};

/* The bidirectional Listen stream. */
struct fs_listen;

/* Open a stream and add targets[0..n) as its first messages. */
struct fs_listen *fs_listen_open(struct fs_client *c,
    const struct fs_target *targets, size_t n);
/*
 * Wait up to timeout_ms for the next response.  Returns 1 with *resp
 * (caller frees with fs_listen_response_free), 0 on timeout, -1 when the
 * stream has ended (see fs_listen_close for its status).
 */
int fs_listen_next(struct fs_listen *l, int64_t timeout_ms,
    FsListenResponse **resp);
void fs_listen_response_free(FsListenResponse *resp);
/* End the stream from any thread; fs_listen_next then returns -1. */
void fs_listen_cancel(struct fs_listen *l);
/*
 * Cancel if needed, collect the final status into st, free everything.
 * A stream that ended without an error, or for want of a verdict, is
 * FS_TRANSIENT: worth reopening soon; anything else is worth reopening
 * only slowly.
 */
void fs_listen_close(struct fs_listen *l, struct fs_status *st);

#endif
