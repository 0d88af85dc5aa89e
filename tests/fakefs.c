/*
 * fakefs.c - a scripted Firestore on gRPC C core (fakefs.h).
 *
 * One thread owns the server and its completion queue; every call is a
 * small state machine driven by the events of its batches.  The test's
 * thread only touches the shared counters, rules and outbox under the
 * lock; the server thread sends what it finds there within a tick.
 */
#include "config.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "fakefs.h"

#define MAX_RULES	16
#define MAX_ADDS	256
#define MAX_METHODS	64

enum tag_kind { T_NEW, T_RECV, T_SEND, T_STATUS, T_CLOSE, T_SHUTDOWN };

struct call;

struct tag {
	enum tag_kind kind;
	struct call *c;
};

struct out {
	grpc_byte_buffer *bb;
	struct out *next;
};

struct call {
	grpc_call *call;
	bool listen;
	int stream;			/* Listen calls: 1, 2, ... */
	int adds;			/* targets it added */
	int ops;			/* batches in flight */
	grpc_byte_buffer *recv;
	grpc_byte_buffer *sent;		/* in flight; destroyed when done */
	int cancelled;
	bool closed;			/* the client is gone */
	bool sending, status_started, done;
	struct out *outq, **outq_tail;
	int end_code;			/* -1: not asked to end */
	char end_msg[512];
	struct tag t_recv, t_send, t_status, t_close;
	struct call *next;
};

struct rule {
	int32_t id;
	bool hold;
	int code;
	char message[512];
};

struct added {
	int stream;
	int32_t id;
	char token[64];
};

struct fakefs {
	grpc_server *server;
	grpc_completion_queue *cq;
	pthread_t thread;
	char host[32];

	/* the server thread's own */
	grpc_call *new_call;
	grpc_call_details details;
	grpc_metadata_array md;
	struct tag t_new, t_shutdown;
	struct call *calls;

	pthread_mutex_t lock;		/* all below */
	bool stop;
	struct rule rules[MAX_RULES];
	int n_rules;
	char fail_suffix[64];		/* fakefs_fail */
	int fail_code;
	char fail_message[512];
	int end_code;			/* fakefs_end_listens */
	bool end_after_add;
	int listens;
	struct added adds[MAX_ADDS];
	int n_adds;
	char methods[MAX_METHODS][96];
	int n_calls[MAX_METHODS], n_methods;
	char metadata[8][2][256];	/* of the newest Listen */
	int n_metadata;
	struct out *outbox, **outbox_tail;
	int end_now;			/* fakefs_end_stream: -1 none */
	char end_now_msg[256];
};

static grpc_byte_buffer *
pack_response(FsListenResponse *r)
{
	size_t n = google__firestore__v1__listen_response__get_packed_size(r);
	grpc_slice s = grpc_slice_malloc(n);
	grpc_byte_buffer *bb;

	google__firestore__v1__listen_response__pack(r,
	    GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

static FsListenResponse *
target_change(int type, int32_t id, const char *token, bool read_time)
{
	FsListenResponse *r = xcalloc(1, sizeof(*r));
	FsTargetChange *c = xcalloc(1, sizeof(*c));

	google__firestore__v1__listen_response__init(r);
	google__firestore__v1__target_change__init(c);
	c->target_change_type = type;
	if (id >= 0) {
		c->n_target_ids = 1;
		c->target_ids = xmalloc(sizeof(int32_t));
		c->target_ids[0] = id;
	}
	if (token != NULL) {
		c->resume_token.len = strlen(token);
		c->resume_token.data = (uint8_t *)xstrdup(token);
	}
	if (read_time) {
		c->read_time = xcalloc(1, sizeof(*c->read_time));
		google__protobuf__timestamp__init(c->read_time);
		c->read_time->seconds = (int64_t)time(NULL);
	}
	r->response_type_case = FSLR(TARGET_CHANGE);
	r->target_change = c;
	return r;
}

/* Queue r (consumed) on c. */
static void
queue(struct call *c, FsListenResponse *r)
{
	struct out *o = xcalloc(1, sizeof(*o));

	o->bb = pack_response(r);
	google__firestore__v1__listen_response__free_unpacked(r, NULL);
	*c->outq_tail = o;
	c->outq_tail = &o->next;
}

static void
start(struct call *c, grpc_op *ops, size_t n, struct tag *t)
{
	if (grpc_call_start_batch(c->call, ops, n, t, NULL) != GRPC_CALL_OK)
		abort();
	c->ops++;
}

static void
post_recv(struct call *c)
{
	grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };

	op.data.recv_message.recv_message = &c->recv;
	start(c, &op, 1, &c->t_recv);
}

/* A call has arrived: take it, and ask for the next. */
static void
accept_call(struct fakefs *f)
{
	struct call *c = xcalloc(1, sizeof(*c));
	char method[96];
	grpc_op ops[2];
	size_t mlen = GRPC_SLICE_LENGTH(f->details.method);
	int i;

	snprintf(method, sizeof(method), "%.*s", (int)mlen,
	    (const char *)GRPC_SLICE_START_PTR(f->details.method));
	c->call = f->new_call;
	c->outq_tail = &c->outq;
	c->end_code = -1;
	c->t_recv = (struct tag){ T_RECV, c };
	c->t_send = (struct tag){ T_SEND, c };
	c->t_status = (struct tag){ T_STATUS, c };
	c->t_close = (struct tag){ T_CLOSE, c };
	c->listen = strlen(method) >= 7 &&
	    strcmp(method + strlen(method) - 7, "/Listen") == 0;
	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->n_methods; i++)
		if (strcmp(f->methods[i], method) == 0)
			break;
	if (i == f->n_methods && i < MAX_METHODS)
		snprintf(f->methods[f->n_methods++], sizeof(f->methods[0]),
		    "%s", method);
	if (i < MAX_METHODS)
		f->n_calls[i]++;
	if (c->listen) {
		c->stream = ++f->listens;
		f->n_metadata = 0;
		for (size_t k = 0; k < f->md.count && k < 8; k++) {
			snprintf(f->metadata[k][0], sizeof(f->metadata[k][0]),
			    "%.*s", (int)GRPC_SLICE_LENGTH(f->md.metadata[k].key),
			    (const char *)GRPC_SLICE_START_PTR(
			    f->md.metadata[k].key));
			snprintf(f->metadata[k][1], sizeof(f->metadata[k][1]),
			    "%.*s", (int)GRPC_SLICE_LENGTH(
			    f->md.metadata[k].value), (const char *)
			    GRPC_SLICE_START_PTR(f->md.metadata[k].value));
			f->n_metadata++;
		}
		if (f->end_code != 0 && !f->end_after_add)
			c->end_code = f->end_code;
	} else if (f->fail_suffix[0] && strlen(method) >=
	    strlen(f->fail_suffix) && strcmp(method + strlen(method) -
	    strlen(f->fail_suffix), f->fail_suffix) == 0) {
		c->end_code = f->fail_code;
		snprintf(c->end_msg, sizeof(c->end_msg), "%s",
		    f->fail_message);
	} else {
		c->end_code = GRPC_STATUS_UNIMPLEMENTED;
		snprintf(c->end_msg, sizeof(c->end_msg), "not scripted");
	}
	pthread_mutex_unlock(&f->lock);
	c->next = f->calls;
	f->calls = c;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[1].data.recv_close_on_server.cancelled = &c->cancelled;
	start(c, ops, 2, &c->t_close);
	if (c->listen)
		post_recv(c);
	/* the next call */
	grpc_call_details_destroy(&f->details);
	grpc_metadata_array_destroy(&f->md);
	grpc_call_details_init(&f->details);
	grpc_metadata_array_init(&f->md);
	f->new_call = NULL;
	if (grpc_server_request_call(f->server, &f->new_call, &f->details,
	    &f->md, f->cq, f->cq, &f->t_new) != GRPC_CALL_OK)
		abort();
}

/* One ListenRequest from the client. */
static void
on_request(struct fakefs *f, struct call *c)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;
	FsListenRequest *req;
	Google__Firestore__V1__Target *t;
	const struct rule *rule = NULL;
	char token[64];

	if (!grpc_byte_buffer_reader_init(&r, c->recv))
		abort();
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	req = google__firestore__v1__listen_request__unpack(NULL,
	    GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	if (req == NULL || req->target_change_case !=
	    GOOGLE__FIRESTORE__V1__LISTEN_REQUEST__TARGET_CHANGE_ADD_TARGET) {
		if (req)
			google__firestore__v1__listen_request__free_unpacked(
			    req, NULL);
		return;
	}
	t = req->add_target;
	pthread_mutex_lock(&f->lock);
	if (f->n_adds < MAX_ADDS) {
		struct added *a = &f->adds[f->n_adds++];

		a->stream = c->stream;
		a->id = t->target_id;
		snprintf(a->token, sizeof(a->token), "%.*s",
		    t->resume_type_case ==
		    GOOGLE__FIRESTORE__V1__TARGET__RESUME_TYPE_RESUME_TOKEN ?
		    (int)t->resume_token.len : 0,
		    (const char *)t->resume_token.data);
	}
	for (int i = 0; i < f->n_rules; i++)
		if (f->rules[i].id == t->target_id)
			rule = &f->rules[i];
	c->adds++;
	if (f->end_code != 0 && f->end_after_add) {
		/* a stream that fails just after its first message */
		if (c->adds == 1) {
			queue(c, target_change(FSTC(ADD), t->target_id, NULL,
			    false));
			c->end_code = f->end_code;
		}
	} else if (rule != NULL && !rule->hold) {
		FsListenResponse *rm = target_change(FSTC(REMOVE),
		    t->target_id, NULL, false);

		rm->target_change->cause = xcalloc(1,
		    sizeof(*rm->target_change->cause));
		google__rpc__status__init(rm->target_change->cause);
		rm->target_change->cause->code = rule->code;
		rm->target_change->cause->message = xstrdup(rule->message);
		queue(c, rm);
	} else {
		queue(c, target_change(FSTC(ADD), t->target_id, NULL, false));
		if (rule == NULL) {
			queue(c, target_change(FSTC(CURRENT), t->target_id,
			    NULL, false));
			snprintf(token, sizeof(token), "s%d-%d", c->stream,
			    c->adds);
			queue(c, target_change(FSTC(NO_CHANGE), -1, token,
			    true));
		}
	}
	pthread_mutex_unlock(&f->lock);
	google__firestore__v1__listen_request__free_unpacked(req, NULL);
}

/* Send what is queued, then the status if one is asked for. */
static void
pump(struct fakefs *f, struct call *c)
{
	grpc_op op;

	if (c->closed || c->status_started || c->sending)
		return;
	if (c->outq != NULL) {
		struct out *o = c->outq;

		c->outq = o->next;
		if (c->outq == NULL)
			c->outq_tail = &c->outq;
		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_SEND_MESSAGE;
		op.data.send_message.send_message = o->bb;
		start(c, &op, 1, &c->t_send);
		c->sending = true;
		c->sent = o->bb;
		free(o);
		return;
	}
	if (c->end_code >= 0) {
		grpc_slice details = grpc_slice_from_copied_string(c->end_msg);

		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		op.data.send_status_from_server.status =
		    (grpc_status_code)c->end_code;
		op.data.send_status_from_server.status_details = &details;
		start(c, &op, 1, &c->t_status);
		grpc_slice_unref(details);
		c->status_started = true;
	}
	(void)f;
}

/* The newest Listen call still open, or NULL. */
static struct call *
newest_listen(struct fakefs *f)
{
	struct call *best = NULL;

	for (struct call *c = f->calls; c; c = c->next)
		if (c->listen && !c->closed && !c->status_started &&
		    (best == NULL || c->stream > best->stream))
			best = c;
	return best;
}

/* Move the test's outbox and end request onto the newest stream. */
static void
take_orders(struct fakefs *f)
{
	struct call *c;

	pthread_mutex_lock(&f->lock);
	c = newest_listen(f);
	if (c != NULL) {
		while (f->outbox != NULL) {
			struct out *o = f->outbox;

			f->outbox = o->next;
			o->next = NULL;
			*c->outq_tail = o;
			c->outq_tail = &o->next;
		}
		f->outbox_tail = &f->outbox;
		if (f->end_now >= 0) {
			c->end_code = f->end_now;
			snprintf(c->end_msg, sizeof(c->end_msg), "%s",
			    f->end_now_msg);
			f->end_now = -1;
		}
	}
	pthread_mutex_unlock(&f->lock);
}

static void
free_call(struct fakefs *f, struct call *c)
{
	struct call **pp;

	for (pp = &f->calls; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	while (c->outq) {
		struct out *o = c->outq;

		c->outq = o->next;
		grpc_byte_buffer_destroy(o->bb);
		free(o);
	}
	grpc_call_unref(c->call);
	free(c);
}

static void *
serve(void *arg)
{
	struct fakefs *f = arg;
	bool shutting = false, shut = false;

	for (;;) {
		gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
		    gpr_time_from_millis(10, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_next(f->cq, dl, NULL);
		struct tag *t = ev.tag;
		bool stop;

		pthread_mutex_lock(&f->lock);
		stop = f->stop;
		pthread_mutex_unlock(&f->lock);
		if (stop && !shutting) {
			shutting = true;
			grpc_server_shutdown_and_notify(f->server, f->cq,
			    &f->t_shutdown);
			grpc_server_cancel_all_calls(f->server);
		}
		if (ev.type == GRPC_OP_COMPLETE) {
			struct call *c = t->c;

			switch (t->kind) {
			case T_NEW:
				if (ev.success)
					accept_call(f);
				break;
			case T_SHUTDOWN:
				shut = true;
				break;
			case T_RECV:
				c->ops--;
				if (ev.success && c->recv != NULL) {
					on_request(f, c);
					grpc_byte_buffer_destroy(c->recv);
					c->recv = NULL;
					post_recv(c);
				}
				break;
			case T_SEND:
				c->ops--;
				c->sending = false;
				grpc_byte_buffer_destroy(c->sent);
				c->sent = NULL;
				break;
			case T_STATUS:
				c->ops--;
				c->done = true;
				break;
			case T_CLOSE:
				c->ops--;
				c->closed = true;
				break;
			}
		}
		if (!shutting)
			take_orders(f);
		for (struct call *c = f->calls, *next; c; c = next) {
			next = c->next;
			if (!shutting)
				pump(f, c);
			if (c->ops == 0 && (c->closed || c->done))
				free_call(f, c);
		}
		if (shut && f->calls == NULL)
			break;
	}
	return NULL;
}

struct fakefs *
fakefs_start(void)
{
	struct fakefs *f = xcalloc(1, sizeof(*f));
	grpc_server_credentials *cr;
	int port;

	grpc_init();
	pthread_mutex_init(&f->lock, NULL);
	f->outbox_tail = &f->outbox;
	f->end_now = -1;
	f->t_new = (struct tag){ T_NEW, NULL };
	f->t_shutdown = (struct tag){ T_SHUTDOWN, NULL };
	f->server = grpc_server_create(NULL, NULL);
	f->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(f->server, f->cq, NULL);
	cr = grpc_insecure_server_credentials_create();
	port = grpc_server_add_http2_port(f->server, "127.0.0.1:0", cr);
	grpc_server_credentials_release(cr);
	if (port <= 0) {
		grpc_server_destroy(f->server);
		grpc_completion_queue_destroy(f->cq);
		free(f);
		grpc_shutdown();
		return NULL;
	}
	snprintf(f->host, sizeof(f->host), "127.0.0.1:%d", port);
	grpc_server_start(f->server);
	grpc_call_details_init(&f->details);
	grpc_metadata_array_init(&f->md);
	if (grpc_server_request_call(f->server, &f->new_call, &f->details,
	    &f->md, f->cq, f->cq, &f->t_new) != GRPC_CALL_OK)
		abort();
	pthread_create(&f->thread, NULL, serve, f);
	return f;
}

const char *
fakefs_host(const struct fakefs *f)
{
	return f->host;
}

void
fakefs_stop(struct fakefs *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	grpc_server_destroy(f->server);
	grpc_completion_queue_shutdown(f->cq);
	while (grpc_completion_queue_next(f->cq, gpr_inf_future(
	    GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(f->cq);
	grpc_call_details_destroy(&f->details);
	grpc_metadata_array_destroy(&f->md);
	while (f->outbox) {
		struct out *o = f->outbox;

		f->outbox = o->next;
		grpc_byte_buffer_destroy(o->bb);
		free(o);
	}
	pthread_mutex_destroy(&f->lock);
	free(f);
	grpc_shutdown();
}

static void
add_rule(struct fakefs *f, int32_t id, bool hold, int code,
    const char *message)
{
	pthread_mutex_lock(&f->lock);
	if (f->n_rules < MAX_RULES) {
		struct rule *r = &f->rules[f->n_rules++];

		r->id = id;
		r->hold = hold;
		r->code = code;
		snprintf(r->message, sizeof(r->message), "%s",
		    message ? message : "");
	}
	pthread_mutex_unlock(&f->lock);
}

void
fakefs_remove_target(struct fakefs *f, int32_t id, int code,
    const char *message)
{
	add_rule(f, id, false, code, message);
}

void
fakefs_hold_target(struct fakefs *f, int32_t id)
{
	add_rule(f, id, true, 0, NULL);
}

void
fakefs_end_listens(struct fakefs *f, int code, bool after_first_add)
{
	pthread_mutex_lock(&f->lock);
	f->end_code = code;
	f->end_after_add = after_first_add;
	pthread_mutex_unlock(&f->lock);
}

void
fakefs_fail(struct fakefs *f, const char *suffix, int code,
    const char *message)
{
	pthread_mutex_lock(&f->lock);
	snprintf(f->fail_suffix, sizeof(f->fail_suffix), "%s", suffix);
	f->fail_code = code;
	snprintf(f->fail_message, sizeof(f->fail_message), "%s", message);
	pthread_mutex_unlock(&f->lock);
}

void
fakefs_send(struct fakefs *f, FsListenResponse *r)
{
	struct out *o = xcalloc(1, sizeof(*o));

	o->bb = pack_response(r);
	google__firestore__v1__listen_response__free_unpacked(r, NULL);
	pthread_mutex_lock(&f->lock);
	*f->outbox_tail = o;
	f->outbox_tail = &o->next;
	pthread_mutex_unlock(&f->lock);
}

void
fakefs_end_stream(struct fakefs *f, int code, const char *message)
{
	pthread_mutex_lock(&f->lock);
	f->end_now = code;
	snprintf(f->end_now_msg, sizeof(f->end_now_msg), "%s",
	    message ? message : "");
	pthread_mutex_unlock(&f->lock);
}

int
fakefs_listens(struct fakefs *f)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = f->listens;
	pthread_mutex_unlock(&f->lock);
	return n;
}

int
fakefs_calls(struct fakefs *f, const char *suffix)
{
	size_t sl = strlen(suffix);
	int n = 0;

	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->n_methods; i++) {
		size_t ml = strlen(f->methods[i]);

		if (ml >= sl && strcmp(f->methods[i] + ml - sl, suffix) == 0)
			n += f->n_calls[i];
	}
	pthread_mutex_unlock(&f->lock);
	return n;
}

bool
fakefs_added(struct fakefs *f, int n, int32_t id, char *token, size_t len)
{
	bool found = false;

	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->n_adds && !found; i++)
		if (f->adds[i].stream == n && f->adds[i].id == id) {
			snprintf(token, len, "%s", f->adds[i].token);
			found = true;
		}
	pthread_mutex_unlock(&f->lock);
	return found;
}

void
fakefs_metadata(struct fakefs *f, const char *key, char *out, size_t len)
{
	pthread_mutex_lock(&f->lock);
	snprintf(out, len, "%s", "");
	for (int i = 0; i < f->n_metadata; i++)
		if (strcmp(f->metadata[i][0], key) == 0)
			snprintf(out, len, "%s", f->metadata[i][1]);
	pthread_mutex_unlock(&f->lock);
}
