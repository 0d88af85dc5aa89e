/*
 * firestore.c - unary and streaming Firestore calls on gRPC C core.
 *
 * Message bytes go through protobuf-c: packed into a grpc_slice wrapped as
 * a raw byte buffer on the way out, read back with a byte buffer reader on
 * the way in.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>

#include "alloc.h"
#include "client.h"
#include "log.h"
#include "value.h"

#define MAX_RECV_BYTES (64 * 1024 * 1024)

/* ---- the library: start-up, and its log lines in ours ---- */

/* Where Firestore is, for gRPC's TLS errors (which do not say); set once
 * by the first production client. */
static char tls_endpoint[256], tls_ca_file[1024];
/* The endpoint's certificate failed verification: gRPC's words. */
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static char tls_rejected[1400];

static void
tls_hint(const char *target, const char *ca_file)
{
	if (tls_endpoint[0] != '\0')
		return;
	snprintf(tls_endpoint, sizeof(tls_endpoint), "%s", target);
	snprintf(tls_ca_file, sizeof(tls_ca_file), "%s", ca_file ? ca_file :
	    "the system's CA store");
}

/* gRPC's own log lines, through ours at a matching level; a failed TLS
 * handshake says which endpoint and which CA certificates. */
static void
grpc_log(gpr_log_func_args *a)
{
	int prio = a->severity == GPR_LOG_SEVERITY_ERROR ? LOG_ERR :
	    a->severity == GPR_LOG_SEVERITY_INFO ? LOG_INFO : LOG_DEBUG;

	if (tls_endpoint[0] != '\0' && strstr(a->message,
	    "Handshake failed")) {
		log_at(prio, "firestore: TLS to %s failed (%s); is it the "
		    "right endpoint, and is its certificate signed by a CA "
		    "in %s? ([firestore] endpoint, ca-file)", tls_endpoint,
		    a->message, tls_ca_file);
		if (strcasestr(a->message, "certificate verify failed") ||
		    strstr(a->message, "CERTIFICATE_VERIFY_FAILED")) {
			pthread_mutex_lock(&tls_lock);
			snprintf(tls_rejected, sizeof(tls_rejected), "the "
			    "certificate of %s failed verification against %s",
			    tls_endpoint, tls_ca_file);
			pthread_mutex_unlock(&tls_lock);
		}
	} else
		log_at(prio, "grpc: %s", a->message);
}

bool
fs_tls_rejected(char *why, size_t len)
{
	bool rejected;

	pthread_mutex_lock(&tls_lock);
	rejected = tls_rejected[0] != '\0';
	if (rejected && len > 0)
		snprintf(why, len, "%s", tls_rejected);
	pthread_mutex_unlock(&tls_lock);
	return rejected;
}

void
fs_library_init(void)
{
	gpr_set_log_function(grpc_log);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	grpc_init();
}

void
fs_library_shutdown(void)
{
	grpc_shutdown();
}

/* ---- credentials: a bearer token on every call ----
 *
 * gRPC asks for call metadata on its own threads, which must not wait on
 * the network.  A cached token is answered at once; otherwise the request
 * waits, asynchronously, for the token thread, which fetches one for all
 * the requests waiting (one fetch, however many calls were refused at
 * once) and, every TOKEN_TICK_S, asks for the token anyway so that one
 * about to expire is refreshed before any call needs it.
 */

#define TOKEN_TICK_S	30

struct token_waiter {
	grpc_credentials_plugin_metadata_cb cb;
	void *user_data;
	struct token_waiter *next;
};

struct token_plugin {
	int (*token)(void *arg, char *buf, size_t len, char *err,
	    size_t errlen);
	int (*peek)(void *arg, char *buf, size_t len);
	void *arg;
	struct fs_client *c;
	pthread_t thread;
	pthread_mutex_t lock;		/* waiters, stop, closed */
	pthread_cond_t cond;
	struct token_waiter *waiters;
	bool stop;
	bool closed;			/* the client is going: no token,
					   no touching it */
	bool joined;
	int refs;			/* the client's and gRPC's */
};

/* The authorization header for token; the token is remembered for
 * refused(). */
static void
bearer(struct token_plugin *tp, const char *token, grpc_metadata *md)
{
	char *value = xasprintf("Bearer %s", token);

	pthread_mutex_lock(tp->c->token_lock);
	snprintf(tp->c->last_token, sizeof(tp->c->last_token), "%s", token);
	pthread_mutex_unlock(tp->c->token_lock);
	md->key = grpc_slice_from_static_string("authorization");
	md->value = grpc_slice_from_copied_string(value);
	memset(value, 0, strlen(value));
	free(value);
}

static void *
token_thread(void *arg)
{
	struct token_plugin *tp = arg;

	pthread_mutex_lock(&tp->lock);
	while (!tp->stop) {
		struct token_waiter *w;
		char token[2048], err[512];
		struct timespec until;
		grpc_metadata md;
		int rc;

		if (tp->waiters == NULL) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += TOKEN_TICK_S;
			pthread_cond_timedwait(&tp->cond, &tp->lock, &until);
			if (tp->stop)
				break;
		}
		w = tp->waiters;
		tp->waiters = NULL;
		pthread_mutex_unlock(&tp->lock);
		/* fetched (or refreshed ahead of expiry) here, off gRPC's
		 * threads */
		rc = tp->token(tp->arg, token, sizeof(token), err,
		    sizeof(err));
		if (rc == 0 && w != NULL) {
			/* gRPC takes its own reference to what it is given
			 * asynchronously; ours is dropped after */
			bearer(tp, token, &md);
			for (struct token_waiter *x = w; x; x = x->next)
				x->cb(x->user_data, &md, 1, GRPC_STATUS_OK,
				    NULL);
			grpc_slice_unref(md.value);
		} else {
			for (struct token_waiter *x = w; x; x = x->next)
				x->cb(x->user_data, NULL, 0,
				    GRPC_STATUS_UNAVAILABLE, err);
		}
		while (w != NULL) {
			struct token_waiter *next = w->next;

			free(w);
			w = next;
		}
		memset(token, 0, sizeof(token));
		pthread_mutex_lock(&tp->lock);
	}
	pthread_mutex_unlock(&tp->lock);
	return NULL;
}

static int
plugin_get_metadata(void *state, grpc_auth_metadata_context context,
    grpc_credentials_plugin_metadata_cb cb, void *user_data,
    grpc_metadata creds_md[GRPC_METADATA_CREDENTIALS_PLUGIN_SYNC_MAX],
    size_t *num_creds_md, grpc_status_code *status,
    const char **error_details)
{
	struct token_plugin *tp = state;
	struct token_waiter *w;
	char token[2048];

	(void)context;
	*num_creds_md = 0;
	*error_details = NULL;
	pthread_mutex_lock(&tp->lock);
	if (tp->closed) {
		pthread_mutex_unlock(&tp->lock);
		*status = GRPC_STATUS_UNAVAILABLE;
		*error_details = gpr_strdup("the client is shutting down");
		return 1;
	}
	if (tp->peek(tp->arg, token, sizeof(token)) == 0) {
		bearer(tp, token, &creds_md[0]);
		pthread_mutex_unlock(&tp->lock);
		memset(token, 0, sizeof(token));
		*num_creds_md = 1;
		*status = GRPC_STATUS_OK;
		return 1;		/* synchronous */
	}
	/* none cached: the token thread answers when it has one */
	w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->user_data = user_data;
	w->next = tp->waiters;
	tp->waiters = w;
	pthread_cond_signal(&tp->cond);
	pthread_mutex_unlock(&tp->lock);
	return 0;			/* asynchronous */
}

/*
 * Stop the token thread and answer whoever still waits: before the
 * client (and the token source behind it) goes, whenever gRPC gets round
 * to destroying its credentials.  Idempotent.
 */
static void
token_close(struct token_plugin *tp)
{
	struct token_waiter *w;

	pthread_mutex_lock(&tp->lock);
	tp->closed = true;
	tp->stop = true;
	pthread_cond_signal(&tp->cond);
	pthread_mutex_unlock(&tp->lock);
	if (!tp->joined) {
		pthread_join(tp->thread, NULL);
		tp->joined = true;
	}
	pthread_mutex_lock(&tp->lock);
	w = tp->waiters;
	tp->waiters = NULL;
	pthread_mutex_unlock(&tp->lock);
	while (w != NULL) {
		struct token_waiter *next = w->next;

		w->cb(w->user_data, NULL, 0, GRPC_STATUS_UNAVAILABLE,
		    "the client is shutting down");
		free(w);
		w = next;
	}
}

/* Drop a reference: the client's (fs_client_free) or gRPC's (its
 * credentials destroyed); the last closes and frees. */
static void
token_drop(struct token_plugin *tp)
{
	bool last;

	token_close(tp);
	pthread_mutex_lock(&tp->lock);
	last = --tp->refs == 0;
	pthread_mutex_unlock(&tp->lock);
	if (!last)
		return;
	pthread_cond_destroy(&tp->cond);
	pthread_mutex_destroy(&tp->lock);
	free(tp);
}

static void
plugin_destroy(void *state)
{
	token_drop(state);
}

/* A call came back UNAUTHENTICATED: the token it carried is dropped. */
static void
unauthenticated(struct fs_client *c, int code)
{
	char token[sizeof(c->last_token)];

	if (code != GRPC_STATUS_UNAUTHENTICATED || c->refused == NULL)
		return;
	pthread_mutex_lock(c->token_lock);
	snprintf(token, sizeof(token), "%s", c->last_token);
	pthread_mutex_unlock(c->token_lock);
	c->refused(c->token_arg, token);
	memset(token, 0, sizeof(token));
}

/* TLS, and with a token hook our own call credentials. */
static grpc_channel_credentials *
production_credentials(struct fs_client *c, const struct fs_options *o,
    char *err, size_t errlen)
{
	grpc_channel_credentials *ssl, *composite;
	grpc_metadata_credentials_plugin plugin = { 0 };
	struct token_plugin *tp;
	grpc_call_credentials *call;
	char *pem = NULL;

	if (o->token == NULL)
		return grpc_google_default_credentials_create(NULL);
	if (o->ca_file) {
		FILE *f = fopen(o->ca_file, "re");
		size_t n = 0, cap = 1 << 20;

		if (f == NULL) {
			snprintf(err, errlen, "[firestore] ca-file %s: %s",
			    o->ca_file, strerror(errno));
			return NULL;
		}
		pem = xmalloc(cap + 1);
		n = fread(pem, 1, cap, f);
		pem[n] = '\0';
		fclose(f);
	}
	ssl = grpc_ssl_credentials_create(pem, NULL, NULL, NULL);
	free(pem);
	tp = xcalloc(1, sizeof(*tp));
	tp->token = o->token;
	tp->peek = o->peek;
	tp->arg = o->token_arg;
	tp->c = c;
	tp->refs = 2;
	pthread_mutex_init(&tp->lock, NULL);
	pthread_cond_init(&tp->cond, NULL);
	pthread_create(&tp->thread, NULL, token_thread, tp);
	c->token_plugin = tp;
	plugin.get_metadata = plugin_get_metadata;
	plugin.destroy = plugin_destroy;
	plugin.state = tp;
	plugin.type = "firesync-token";
	call = grpc_metadata_credentials_create_from_plugin(plugin,
	    GRPC_PRIVACY_AND_INTEGRITY, NULL);
	composite = grpc_composite_channel_credentials_create(ssl, call, NULL);
	grpc_channel_credentials_release(ssl);
	grpc_call_credentials_release(call);
	return composite;
}

struct fs_client *
fs_client_new(const struct fs_options *o, char *err, size_t errlen)
{
	grpc_channel_credentials *creds;
	grpc_arg args[5];
	grpc_channel_args cargs = { 0, args };
	struct fs_client *c;

	if (o->project == NULL || *o->project == '\0') {
		snprintf(err, errlen, "no project id: pass --project or set "
		    "GOOGLE_CLOUD_PROJECT");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->project = xstrdup(o->project);
	c->database = xstrdup(o->database && *o->database ? o->database :
	    "(default)");
	c->db_path = xasprintf("projects/%s/databases/%s", c->project,
	    c->database);
	c->docs_path = xasprintf("%s/documents", c->db_path);
	c->emulator = o->emulator;
	if (!o->emulator) {
		/* gRPC's own roots: the system's, unless a CA file is set */
		if (getenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH") == NULL &&
		    access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
			setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
			    "/etc/ssl/certs/ca-certificates.crt", 1);
		tls_hint(o->target, o->ca_file);
	}

	args[cargs.num_args].type = GRPC_ARG_INTEGER;
	args[cargs.num_args].key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[cargs.num_args++].value.integer =
	    (int)(o->max_reconnect_backoff_ms > 0 ?
	    o->max_reconnect_backoff_ms : FS_RECONNECT_BACKOFF_MS);
	args[cargs.num_args].type = GRPC_ARG_INTEGER;
	args[cargs.num_args].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[cargs.num_args++].value.integer = MAX_RECV_BYTES;
	if (o->keepalive_ms > 0) {
		/* a ping every keepalive_ms on a quiet Listen stream, too (a
		 * NAT that dropped the connection is found then, not at the
		 * idle timeout); a server that finds that too often says
		 * too_many_pings and gRPC doubles the interval */
		args[cargs.num_args].type = GRPC_ARG_INTEGER;
		args[cargs.num_args].key = GRPC_ARG_KEEPALIVE_TIME_MS;
		args[cargs.num_args++].value.integer = (int)o->keepalive_ms;
		args[cargs.num_args].type = GRPC_ARG_INTEGER;
		args[cargs.num_args].key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS;
		args[cargs.num_args++].value.integer = 10000;
		args[cargs.num_args].type = GRPC_ARG_INTEGER;
		args[cargs.num_args].key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA;
		args[cargs.num_args++].value.integer = 0;
	}
	c->refused = o->refused;
	c->token_arg = o->token_arg;
	c->token_lock = xmalloc(sizeof(pthread_mutex_t));
	pthread_mutex_init(c->token_lock, NULL);
	if (o->emulator) {
		creds = grpc_insecure_credentials_create();
	} else {
		err[0] = '\0';
		creds = production_credentials(c, o, err, errlen);
		if (creds == NULL && err[0]) {
			fs_client_free(c);
			return NULL;
		}
	}
	if (creds == NULL) {
		snprintf(err, errlen, "no Google credentials found: set "
		    "GOOGLE_APPLICATION_CREDENTIALS to a service account key "
		    "file, or run on a machine with a metadata server");
		fs_client_free(c);
		return NULL;
	}
	c->channel = grpc_channel_create(o->target, creds, &cargs);
	grpc_channel_credentials_release(creds);
	if (c->channel == NULL) {
		snprintf(err, errlen, "cannot create a channel to %s",
		    o->target);
		fs_client_free(c);
		return NULL;
	}
	return c;
}

void
fs_client_free(struct fs_client *c)
{
	if (c == NULL)
		return;
	/* no token asked for, or given, past this point */
	if (c->token_plugin)
		token_drop(c->token_plugin);
	if (c->channel)
		grpc_channel_destroy(c->channel);
	free(c->project);
	free(c->database);
	free(c->db_path);
	free(c->docs_path);
	if (c->token_lock) {
		pthread_mutex_destroy(c->token_lock);
		free(c->token_lock);
	}
	memset(c->last_token, 0, sizeof(c->last_token));
	free(c);
}

const char *
fs_docs_path(const struct fs_client *c)
{
	return c->docs_path;
}

const char *
fs_project(const struct fs_client *c)
{
	return c->project;
}

const char *
fs_database(const struct fs_client *c)
{
	return c->database;
}

bool
fs_is_emulator(const struct fs_client *c)
{
	return c->emulator;
}

/* What a call's status means to its caller (firestore.h). */
static enum fs_kind
kind_of(int code)
{
	switch (code) {
	case GRPC_STATUS_OK:
		return FS_OK;
	case GRPC_STATUS_FAILED_PRECONDITION:
	case GRPC_STATUS_NOT_FOUND:
		return FS_CHANGED;
	case GRPC_STATUS_INVALID_ARGUMENT:
		return FS_INVALID;
	case GRPC_STATUS_PERMISSION_DENIED:
		return FS_DENIED;
	case GRPC_STATUS_ABORTED:
	case GRPC_STATUS_CANCELLED:
	case GRPC_STATUS_UNKNOWN:
	case GRPC_STATUS_DEADLINE_EXCEEDED:
	case GRPC_STATUS_RESOURCE_EXHAUSTED:
	case GRPC_STATUS_INTERNAL:
	case GRPC_STATUS_UNAVAILABLE:
	case GRPC_STATUS_UNAUTHENTICATED:
		return FS_TRANSIENT;
	default:
		return FS_FAILED;
	}
}

static void
status_code(struct fs_status *st, int code)
{
	st->code = code;
	st->kind = kind_of(code);
}

const char *
fs_status_name(const struct fs_status *st)
{
	int code = st->code;

	static const char *const names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
		"DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
		"PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
		"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
		"UNAUTHENTICATED",
	};

	return code >= 0 && code <= 16 ? names[code] : "UNKNOWN_CODE";
}

/* ---- helpers shared by all calls ---- */

struct call_md {
	grpc_metadata md[3];
	size_t n;
};

static void
md_init(struct fs_client *c, struct call_md *m)
{
	char *prefix = xasprintf("%s", c->db_path);

	char *params;

	m->n = 0;
	m->md[m->n].key = grpc_slice_from_static_string(
	    "google-cloud-resource-prefix");
	m->md[m->n++].value = grpc_slice_from_copied_string(prefix);
	free(prefix);
	/* the routing header, as the official SDKs send it: the database,
	 * URL-encoded */
	params = xasprintf("database=projects%%2F%s%%2Fdatabases%%2F%s",
	    c->project, c->database);
	m->md[m->n].key = grpc_slice_from_static_string(
	    "x-goog-request-params");
	m->md[m->n++].value = grpc_slice_from_copied_string(params);
	free(params);
	if (c->emulator) {
		m->md[m->n].key = grpc_slice_from_static_string(
		    "authorization");
		m->md[m->n++].value = grpc_slice_from_static_string(
		    "Bearer owner");
	}
}

/* The first op of every call: our metadata, waiting for a connection
 * rather than failing fast while the channel (re)connects. */
static void
send_md_op(grpc_op *op, struct call_md *m)
{
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op->data.send_initial_metadata.count = m->n;
	op->data.send_initial_metadata.metadata = m->md;
	op->flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY |
	    GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
}

static void
md_release(struct call_md *m)
{
	for (size_t i = 0; i < m->n; i++)
		grpc_slice_unref(m->md[i].value);
}

static grpc_byte_buffer *
pack_message(const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	grpc_slice s = grpc_slice_malloc(n);
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

static ProtobufCMessage *
unpack_message(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;
	ProtobufCMessage *m;

	if (!grpc_byte_buffer_reader_init(&r, bb)) {
		log_err("grpc: cannot read a %s message (compressed with an "
		    "unknown algorithm?)", d->name);
		return NULL;
	}
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s),
	    GRPC_SLICE_START_PTR(s));
	if (m == NULL) {
		const uint8_t *p = GRPC_SLICE_START_PTR(s);
		size_t n = GRPC_SLICE_LENGTH(s);
		char hex[3 * 32 + 1] = "";

		for (size_t i = 0; i < n && i < 32; i++)
			snprintf(hex + 3 * i, 4, "%02x ", p[i]);
		log_err("protobuf: cannot parse a %zu-byte %s (starts %s)", n,
		    d->name, hex);
	}
	grpc_slice_unref(s);
	return m;
}

static gpr_timespec
deadline_in(int64_t ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static void
status_set(struct fs_status *st, int code, grpc_slice details)
{
	size_t n = GRPC_SLICE_LENGTH(details);

	status_code(st, code);
	if (n >= sizeof(st->message))
		n = sizeof(st->message) - 1;
	memcpy(st->message, GRPC_SLICE_START_PTR(details), n);
	st->message[n] = '\0';
}

/*
 * One request, zero or more responses: the shape of Commit,
 * BatchGetDocuments and RunQuery.  Each response is handed to on_msg; a
 * NULL from unpacking is a protocol error.  Returns the status code.
 */
static int
call_server_stream(struct fs_client *c, const char *method,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rdesc,
    int64_t timeout_ms, int (*on_msg)(ProtobufCMessage *, void *),
    void *arg, struct fs_status *st)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(
	    NULL);
	grpc_metadata_array initial_md, trailing_md;
	grpc_byte_buffer *send = pack_message(req), *recv = NULL;
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6];
	struct call_md md;
	grpc_call *call;
	grpc_event ev;
	int cb_rc = 0;

	memset(ops, 0, sizeof(ops));
	grpc_metadata_array_init(&initial_md);
	grpc_metadata_array_init(&trailing_md);
	md_init(c, &md);
	call = grpc_channel_create_call(c->channel, NULL,
	    GRPC_PROPAGATE_DEFAULTS, cq, grpc_slice_from_static_string(method),
	    NULL, deadline_in(timeout_ms), NULL);

	send_md_op(&ops[0], &md);
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
	if (grpc_call_start_batch(call, ops, 4, (void *)1, NULL) != GRPC_CALL_OK)
		fatal("grpc_call_start_batch failed (send)");
	ev = grpc_completion_queue_pluck(cq, (void *)1,
	    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

	/* Read responses until the server ends the stream. */
	while (ev.success) {
		ProtobufCMessage *m;

		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_RECV_MESSAGE;
		ops[0].data.recv_message.recv_message = &recv;
		if (grpc_call_start_batch(call, ops, 1, (void *)2, NULL) !=
		    GRPC_CALL_OK)
			fatal("grpc_call_start_batch failed (recv)");
		ev = grpc_completion_queue_pluck(cq, (void *)2,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (!ev.success || recv == NULL)
			break;
		m = unpack_message(recv, rdesc);
		grpc_byte_buffer_destroy(recv);
		recv = NULL;
		if (m == NULL) {
			cb_rc = GRPC_STATUS_INTERNAL;
			snprintf(st->message, sizeof(st->message),
			    "%s: cannot parse the response", method);
			grpc_call_cancel(call, NULL);
			break;
		}
		if (cb_rc == 0)
			cb_rc = on_msg(m, arg);
		else
			protobuf_c_message_free_unpacked(m, NULL);
	}

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &trailing_md;
	ops[0].data.recv_status_on_client.status = &code;
	ops[0].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, ops, 1, (void *)3, NULL) != GRPC_CALL_OK)
		fatal("grpc_call_start_batch failed (status)");
	grpc_completion_queue_pluck(cq, (void *)3,
	    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

	if (cb_rc == GRPC_STATUS_INTERNAL) {
		status_code(st, cb_rc);
	} else {
		status_set(st, code, details);
		unauthenticated(c, code);
	}
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&initial_md);
	grpc_metadata_array_destroy(&trailing_md);
	grpc_byte_buffer_destroy(send);
	md_release(&md);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return st->code;
}

/*
 * A unary call in flight: every op of the call is started in one batch, so
 * one completion ends it.  Started by unary_start, collected (and freed)
 * by unary_finish; the caller may do other work in between.
 */
struct fs_call {
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_metadata_array initial_md, trailing_md;
	grpc_byte_buffer *send, *recv;
	grpc_status_code code;
	grpc_slice details;
	struct call_md md;
	const ProtobufCMessageDescriptor *rdesc;
	const char *method;
	struct fs_client *c;
};

static struct fs_call *
unary_start(struct fs_client *c, const char *method,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rdesc,
    int64_t timeout_ms)
{
	struct fs_call *k = xcalloc(1, sizeof(*k));
	grpc_op ops[6];

	k->cq = grpc_completion_queue_create_for_pluck(NULL);
	k->send = pack_message(req);
	k->code = GRPC_STATUS_UNKNOWN;
	k->details = grpc_empty_slice();
	k->rdesc = rdesc;
	k->method = method;
	k->c = c;
	grpc_metadata_array_init(&k->initial_md);
	grpc_metadata_array_init(&k->trailing_md);
	md_init(c, &k->md);
	k->call = grpc_channel_create_call(c->channel, NULL,
	    GRPC_PROPAGATE_DEFAULTS, k->cq,
	    grpc_slice_from_static_string(method), NULL,
	    deadline_in(timeout_ms), NULL);
	memset(ops, 0, sizeof(ops));
	send_md_op(&ops[0], &k->md);
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = k->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata =
	    &k->initial_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &k->recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &k->trailing_md;
	ops[5].data.recv_status_on_client.status = &k->code;
	ops[5].data.recv_status_on_client.status_details = &k->details;
	if (grpc_call_start_batch(k->call, ops, 6, (void *)1, NULL) !=
	    GRPC_CALL_OK)
		fatal("grpc_call_start_batch failed (unary)");
	return k;
}

/* Wait for the call; on OK *out gets the response (caller frees). */
static int
unary_finish(struct fs_call *k, ProtobufCMessage **out, struct fs_status *st)
{
	*out = NULL;
	grpc_completion_queue_pluck(k->cq, (void *)1,
	    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	status_set(st, k->code, k->details);
	unauthenticated(k->c, k->code);
	if (k->code == GRPC_STATUS_OK) {
		*out = k->recv ? unpack_message(k->recv, k->rdesc) : NULL;
		if (*out == NULL) {
			status_code(st, GRPC_STATUS_INTERNAL);
			snprintf(st->message, sizeof(st->message),
			    "%s: missing or unparseable response", k->method);
		}
	}
	if (k->recv)
		grpc_byte_buffer_destroy(k->recv);
	grpc_slice_unref(k->details);
	grpc_metadata_array_destroy(&k->initial_md);
	grpc_metadata_array_destroy(&k->trailing_md);
	grpc_byte_buffer_destroy(k->send);
	md_release(&k->md);
	grpc_call_unref(k->call);
	grpc_completion_queue_shutdown(k->cq);
	grpc_completion_queue_destroy(k->cq);
	free(k);
	return st->code;
}

static struct fs_call *
commit_start(struct fs_client *c, FsWrite **writes, size_t n,
    int64_t timeout_ms)
{
	FsCommitRequest req = GOOGLE__FIRESTORE__V1__COMMIT_REQUEST__INIT;

	req.database = c->db_path;
	req.n_writes = n;
	req.writes = writes;
	return unary_start(c, "/google.firestore.v1.Firestore/Commit",
	    &req.base, &google__firestore__v1__commit_response__descriptor,
	    timeout_ms);
}

static enum fs_kind
commit_finish(struct fs_call *k, FsCommitResponse **resp,
    struct fs_status *st)
{
	ProtobufCMessage *r = NULL;

	unary_finish(k, &r, st);
	if (st->kind == FS_OK && resp != NULL) {
		*resp = (FsCommitResponse *)r;
		r = NULL;
	}
	if (r != NULL)
		protobuf_c_message_free_unpacked(r, NULL);
	return st->kind;
}

enum fs_kind
fs_commit(struct fs_client *c, FsWrite **writes, size_t n,
    int64_t timeout_ms, FsCommitResponse **resp, struct fs_status *st)
{
	return commit_finish(commit_start(c, writes, n, timeout_ms), resp, st);
}

/* A Write updating only the fields in mask, preconditioned on version;
 * map is consumed. */
static FsWrite *
update_write(const char *name, const FsTimestamp *version, FsValue *map,
    const char *const *mask, size_t n_mask)
{
	FsWrite *w = xcalloc(1, sizeof(*w));
	Google__Firestore__V1__DocumentMask *m = xcalloc(1, sizeof(*m));
	Google__Firestore__V1__Precondition *p = xcalloc(1, sizeof(*p));

	google__firestore__v1__write__init(w);
	google__firestore__v1__document_mask__init(m);
	google__firestore__v1__precondition__init(p);
	m->n_field_paths = n_mask;
	m->field_paths = xcalloc(n_mask ? n_mask : 1, sizeof(char *));
	for (size_t i = 0; i < n_mask; i++)
		m->field_paths[i] = xstrdup(mask[i]);
	p->condition_type_case =
	    GOOGLE__FIRESTORE__V1__PRECONDITION__CONDITION_TYPE_UPDATE_TIME;
	p->update_time = ts_dup(version);
	w->operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_UPDATE;
	w->update = value_map_to_doc(map, name);
	w->update_mask = m;
	w->current_document = p;
	return w;
}

enum fs_kind
fs_increment(struct fs_client *c, const char *name, const char *field,
    int64_t by, int64_t timeout_ms, int64_t *after, struct fs_status *st)
{
	FsWrite *w = xcalloc(1, sizeof(*w));
	Google__Firestore__V1__DocumentMask *m = xcalloc(1, sizeof(*m));
	Google__Firestore__V1__DocumentTransform__FieldTransform *t =
	    xcalloc(1, sizeof(*t));
	FsCommitResponse *resp = NULL;
	const FsValue *v;

	google__firestore__v1__write__init(w);
	google__firestore__v1__document_mask__init(m);
	google__firestore__v1__document_transform__field_transform__init(t);
	/* an update of no field (an empty mask) that creates the document if
	 * need be, and the increment, applied atomically by the server */
	t->field_path = xstrdup(field);
	t->transform_type_case = GOOGLE__FIRESTORE__V1__DOCUMENT_TRANSFORM__FIELD_TRANSFORM__TRANSFORM_TYPE_INCREMENT;
	t->increment = value_int(by);
	w->operation_case = GOOGLE__FIRESTORE__V1__WRITE__OPERATION_UPDATE;
	w->update = value_map_to_doc(value_map(), name);
	w->update_mask = m;
	w->n_update_transforms = 1;
	w->update_transforms = xcalloc(1, sizeof(*w->update_transforms));
	w->update_transforms[0] = t;
	fs_commit(c, &w, 1, timeout_ms, &resp, st);
	google__firestore__v1__write__free_unpacked(w, NULL);
	if (st->kind != FS_OK)
		return st->kind;
	v = resp->n_write_results > 0 &&
	    resp->write_results[0]->n_transform_results > 0 ?
	    resp->write_results[0]->transform_results[0] : NULL;
	if (v == NULL || v->value_type_case !=
	    GOOGLE__FIRESTORE__V1__VALUE__VALUE_TYPE_INTEGER_VALUE) {
		st->kind = FS_FAILED;
		snprintf(st->message, sizeof(st->message), "the increment of "
		    "%s came back without its value", field);
	} else if (after != NULL) {
		*after = v->integer_value;
	}
	google__firestore__v1__commit_response__free_unpacked(resp, NULL);
	return st->kind;
}

struct fs_call *
fs_update_start(struct fs_client *c, const char *name,
    const FsTimestamp *version, FsValue *map, const char *const *mask,
    size_t n_mask, int64_t timeout_ms)
{
	FsWrite *w = update_write(name, version, map, mask, n_mask);
	struct fs_call *k = commit_start(c, &w, 1, timeout_ms);

	google__firestore__v1__write__free_unpacked(w, NULL);
	return k;
}

enum fs_kind
fs_update_finish(struct fs_call *k, struct fs_written *w,
    struct fs_status *st)
{
	FsCommitResponse *resp = NULL;

	if (w != NULL)
		memset(w, 0, sizeof(*w));
	if (commit_finish(k, &resp, st) != FS_OK)
		return st->kind;
	if (w != NULL) {
		w->commit_time = ts_dup(resp->commit_time);
		w->update_time = ts_dup(resp->n_write_results > 0 &&
		    resp->write_results[0]->update_time ?
		    resp->write_results[0]->update_time : resp->commit_time);
	}
	google__firestore__v1__commit_response__free_unpacked(resp, NULL);
	return FS_OK;
}

enum fs_kind
fs_update(struct fs_client *c, const char *name, const FsTimestamp *version,
    FsValue *map, const char *const *mask, size_t n_mask, int64_t timeout_ms,
    struct fs_written *w, struct fs_status *st)
{
	return fs_update_finish(fs_update_start(c, name, version, map, mask,
	    n_mask, timeout_ms), w, st);
}

void
fs_written_clear(struct fs_written *w)
{
	ts_free(w->commit_time);
	ts_free(w->update_time);
	w->commit_time = w->update_time = NULL;
}

/* Keep the first document found; a "missing" answer leaves doc NULL. */
static int
take_get(ProtobufCMessage *m, void *arg)
{
	Google__Firestore__V1__BatchGetDocumentsResponse *r =
	    (Google__Firestore__V1__BatchGetDocumentsResponse *)m;
	FsDocument **doc = arg;

	if (r->result_case ==
	    GOOGLE__FIRESTORE__V1__BATCH_GET_DOCUMENTS_RESPONSE__RESULT_FOUND &&
	    *doc == NULL) {
		*doc = r->found;
		r->found = NULL;
		r->result_case =
		    GOOGLE__FIRESTORE__V1__BATCH_GET_DOCUMENTS_RESPONSE__RESULT__NOT_SET;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

int
fs_get_document(struct fs_client *c, const char *name, int64_t timeout_ms,
    FsDocument **doc, struct fs_status *st)
{
	Google__Firestore__V1__BatchGetDocumentsRequest req =
	    GOOGLE__FIRESTORE__V1__BATCH_GET_DOCUMENTS_REQUEST__INIT;
	FsDocument *found = NULL;
	char *names[1] = { (char *)name };

	req.database = c->db_path;
	req.n_documents = 1;
	req.documents = names;
	call_server_stream(c,
	    "/google.firestore.v1.Firestore/BatchGetDocuments", &req.base,
	    &google__firestore__v1__batch_get_documents_response__descriptor,
	    timeout_ms, take_get, &found, st);
	if (st->kind != FS_OK) {
		doc_free(found);
		return -EIO;
	}
	if (found == NULL)
		return -ENOENT;
	*doc = found;
	return 0;
}

struct query_run {
	void (*on_doc)(FsDocument *, const FsTimestamp *, void *);
	void *arg;
};

/* Hand each document on; a response without one (progress, or the
 * last, with done) carries nothing to hand. */
static int
take_query(ProtobufCMessage *m, void *arg)
{
	Google__Firestore__V1__RunQueryResponse *r =
	    (Google__Firestore__V1__RunQueryResponse *)m;
	struct query_run *q = arg;

	if (r->document != NULL && r->read_time != NULL) {
		FsDocument *d = r->document;

		r->document = NULL;
		q->on_doc(d, r->read_time, q->arg);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

enum fs_kind
fs_run_query(struct fs_client *c, const struct fs_query *query,
    int64_t timeout_ms, void (*on_doc)(FsDocument *, const FsTimestamp *,
    void *), void *arg, struct fs_status *st)
{
	Google__Firestore__V1__RunQueryRequest *req =
	    fs_query_request(c, query);
	struct query_run q = { on_doc, arg };

	call_server_stream(c, "/google.firestore.v1.Firestore/RunQuery",
	    &req->base, &google__firestore__v1__run_query_response__descriptor,
	    timeout_ms, take_query, &q, st);
	google__firestore__v1__run_query_request__free_unpacked(req, NULL);
	return st->kind;
}

/* ---- Listen ---- */

enum { TAG_SEND = 1, TAG_MD, TAG_STATUS, TAG_RECV };

struct fs_listen {
	struct fs_client *c;
	grpc_completion_queue *cq;
	grpc_call *call;
	struct call_md md;
	grpc_byte_buffer *send;		/* message being sent, or NULL */
	grpc_byte_buffer **queue;	/* further messages to send */
	size_t n_queue, next_queue;
	grpc_byte_buffer *recv;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code code;
	grpc_slice details;
	int outstanding;	/* batches not yet completed */
	bool recv_armed;
	bool ended;		/* no more messages will come */
	bool have_status;
};

static void
arm_recv(struct fs_listen *l)
{
	grpc_op op;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &l->recv;
	if (grpc_call_start_batch(l->call, &op, 1, (void *)TAG_RECV, NULL) !=
	    GRPC_CALL_OK)
		fatal("grpc_call_start_batch failed (listen recv)");
	l->outstanding++;
	l->recv_armed = true;
}

/* Send the next queued message; one send may be in flight at a time. */
static void
send_next(struct fs_listen *l)
{
	grpc_op op;

	if (l->next_queue >= l->n_queue)
		return;
	l->send = l->queue[l->next_queue];
	l->queue[l->next_queue++] = NULL;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = l->send;
	if (grpc_call_start_batch(l->call, &op, 1, (void *)TAG_SEND, NULL) !=
	    GRPC_CALL_OK)
		fatal("grpc_call_start_batch failed (listen send)");
	l->outstanding++;
}

/* The request adding t, packed. */
static grpc_byte_buffer *
pack_target(struct fs_client *c, const struct fs_target *t)
{
	FsListenRequest *r = t->query ? fs_listen_target(c, t->id, t->query,
	    t->resume_token, t->resume_len) : fs_listen_document(c, t->id,
	    t->document);
	grpc_byte_buffer *b = pack_message(&r->base);

	google__firestore__v1__listen_request__free_unpacked(r, NULL);
	return b;
}

struct fs_listen *
fs_listen_open(struct fs_client *c, const struct fs_target *targets,
    size_t n)
{
	struct fs_listen *l = xcalloc(1, sizeof(*l));
	grpc_op ops[2];

	l->c = c;
	l->cq = grpc_completion_queue_create_for_next(NULL);
	l->details = grpc_empty_slice();
	grpc_metadata_array_init(&l->initial_md);
	grpc_metadata_array_init(&l->trailing_md);
	md_init(c, &l->md);
	if (n == 0)
		fatal("fs_listen_open: no request to send");
	l->send = pack_target(c, &targets[0]);
	l->queue = xcalloc(n, sizeof(*l->queue));
	for (size_t i = 1; i < n; i++)
		l->queue[l->n_queue++] = pack_target(c, &targets[i]);
	l->call = grpc_channel_create_call(c->channel, NULL,
	    GRPC_PROPAGATE_DEFAULTS, l->cq,
	    grpc_slice_from_static_string("/google.firestore.v1.Firestore/Listen"),
	    NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

	memset(ops, 0, sizeof(ops));
	send_md_op(&ops[0], &l->md);
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = l->send;
	if (grpc_call_start_batch(l->call, ops, 2, (void *)TAG_SEND, NULL) !=
	    GRPC_CALL_OK)
		fatal("grpc_call_start_batch failed (listen send)");
	l->outstanding++;

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[0].data.recv_initial_metadata.recv_initial_metadata =
	    &l->initial_md;
	if (grpc_call_start_batch(l->call, ops, 1, (void *)TAG_MD, NULL) !=
	    GRPC_CALL_OK)
		fatal("grpc_call_start_batch failed (listen metadata)");
	l->outstanding++;

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &l->trailing_md;
	ops[0].data.recv_status_on_client.status = &l->code;
	ops[0].data.recv_status_on_client.status_details = &l->details;
	if (grpc_call_start_batch(l->call, ops, 1, (void *)TAG_STATUS, NULL) !=
	    GRPC_CALL_OK)
		fatal("grpc_call_start_batch failed (listen status)");
	l->outstanding++;

	arm_recv(l);
	return l;
}

/* Handle one completion; returns 1 if a message is ready in l->recv. */
static int
on_event(struct fs_listen *l, grpc_event ev)
{
	l->outstanding--;
	switch ((intptr_t)ev.tag) {
	case TAG_SEND:
		grpc_byte_buffer_destroy(l->send);
		l->send = NULL;
		if (ev.success && !l->ended)
			send_next(l);
		return 0;
	case TAG_MD:
		return 0;
	case TAG_STATUS:
		l->have_status = true;
		l->ended = true;
		return 0;
	case TAG_RECV:
		l->recv_armed = false;
		if (!ev.success || l->recv == NULL) {
			l->ended = true;
			return 0;
		}
		return 1;
	default:
		fatal("listen: unexpected completion tag %p", ev.tag);
	}
}

int
fs_listen_next(struct fs_listen *l, int64_t timeout_ms,
    FsListenResponse **resp)
{
	gpr_timespec deadline = deadline_in(timeout_ms);

	for (;;) {
		grpc_event ev;

		if (l->ended && !l->recv_armed)
			return -1;
		ev = grpc_completion_queue_next(l->cq, deadline, NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT)
			return 0;
		if (ev.type != GRPC_OP_COMPLETE)
			fatal("listen: completion queue shut down early");
		if (on_event(l, ev) == 0)
			continue;
		*resp = (FsListenResponse *)unpack_message(l->recv,
		    &google__firestore__v1__listen_response__descriptor);
		grpc_byte_buffer_destroy(l->recv);
		l->recv = NULL;
		if (*resp == NULL) {
			log_err("listen: cannot parse a ListenResponse; "
			    "restarting the stream");
			grpc_call_cancel(l->call, NULL);
			l->ended = true;
			continue;
		}
		if (!l->ended)
			arm_recv(l);
		return 1;
	}
}

void
fs_listen_response_free(FsListenResponse *resp)
{
	if (resp != NULL)
		google__firestore__v1__listen_response__free_unpacked(resp,
		    NULL);
}

void
fs_listen_cancel(struct fs_listen *l)
{
	grpc_call_cancel(l->call, NULL);
}

void
fs_listen_close(struct fs_listen *l, struct fs_status *st)
{
	grpc_event ev;

	if (l == NULL)
		return;
	grpc_call_cancel(l->call, NULL);
	while (l->outstanding > 0) {
		ev = grpc_completion_queue_next(l->cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		on_event(l, ev);
		if (l->recv) {
			grpc_byte_buffer_destroy(l->recv);
			l->recv = NULL;
		}
	}
	if (st != NULL) {
		if (l->have_status) {
			status_set(st, l->code, l->details);
			unauthenticated(l->c, l->code);
		} else {
			status_code(st, GRPC_STATUS_CANCELLED);
			snprintf(st->message, sizeof(st->message), "cancelled");
		}
		/* a stream that ended cleanly is one to reopen at once; any
		 * other verdict keeps its kind (a target refused for good is
		 * not reopened fast) */
		if (st->kind == FS_OK)
			st->kind = FS_TRANSIENT;
	}
	grpc_call_unref(l->call);
	grpc_completion_queue_shutdown(l->cq);
	do {
		ev = grpc_completion_queue_next(l->cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	} while (ev.type != GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(l->cq);
	if (l->send)
		grpc_byte_buffer_destroy(l->send);
	for (size_t i = l->next_queue; i < l->n_queue; i++)
		grpc_byte_buffer_destroy(l->queue[i]);
	free(l->queue);
	grpc_slice_unref(l->details);
	grpc_metadata_array_destroy(&l->initial_md);
	grpc_metadata_array_destroy(&l->trailing_md);
	md_release(&l->md);
	free(l);
}
