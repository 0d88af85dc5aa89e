/*
 * fuzz_reply.c - libFuzzer target: a hosted model's reply, as the
 * network delivers it: the JSON, the base64 inside it, and the image
 * that decodes from it, as the worker then checks it.  Built twice:
 * fuzz-gemini reads it as generateContent's reply (genai and vertex),
 * fuzz-openai (with -DREPLY_OPENAI) as the Images API's.  The first byte
 * picks the HTTP status the reply came with; the rest is the body.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firesync/plugin.h"
#include "hosted.h"
#include "image.h"
#include "log.h"
#ifdef REPLY_OPENAI
#include "openai.h"
#else
#include "generate.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
quiet(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

static void *
host_alloc(size_t n)
{
	return malloc(n);
}

static void
host_free(void *p)
{
	free(p);
}

static const char *
no_config(const struct firesync_config *c, const char *key)
{
	(void)c;
	(void)key;
	return NULL;
}

static int
not_cancelled(void)
{
	return 0;
}

static int64_t
time_left(void)
{
	return 60000;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 400, 401, 403, 404, 429, 500,
	    503 };
	struct firesync_host host = {
		.struct_size = sizeof(host), .log = quiet,
		.alloc = host_alloc, .free = host_free,
		.config_get = no_config, .cancelled = not_cancelled,
		.time_left_ms = time_left,
	};
	struct firesync_request req = {
		.struct_size = sizeof(req), .model = "m", .prompt = "p",
		.aspect_ratio = "", .session_id = "s", .event_id = "e",
	};
	struct firesync_result res;
	struct hosted h;
	struct hosted_call c;
	char err[512];
	int rc;

	if (size < 1)
		return 0;
	log_level = -1;
	memset(&h, 0, sizeof(h));
	h.host = &host;
	h.plugin = "fuzz";
	h.endpoint = (char *)"https://example.invalid";
	memset(&c, 0, sizeof(c));
	c.h = &h;
	c.req = &req;
	c.retry_after_s = -1;
	c.status = statuses[data[0] % (sizeof(statuses) /
	    sizeof(statuses[0]))];
	buf_init(&c.reply, HOSTED_REPLY_MAX);
	if (buf_add(&c.reply, data + 1, size - 1) < 0) {
		buf_free(&c.reply);
		return 0;
	}
	memset(&res, 0, sizeof(res));
	res.struct_size = sizeof(res);
	err[0] = '\0';
#ifdef REPLY_OPENAI
	rc = openai_reply(&c, c.reply.p, c.reply.len, &res, err, sizeof(err));
#else
	/* as genai and vertex read what the call got (no transport
	 * failure: the reply arrived) */
	rc = generate_answer(&c, "advice", &res, err, sizeof(err));
#endif
	if (rc == FIRESYNC_OK) {
		struct image img;
		char derr[256];

		/* what the worker then does with it */
		if (res.data == NULL || res.data_len == 0)
			abort();
		if (image_decode(res.data, res.data_len, 4000000, &img, derr,
		    sizeof(derr)) == 0)
			image_free(&img);
	} else if (err[0] == '\0' || res.data != NULL) {
		abort();		/* a failure always says why */
	}
	free(res.data);
	buf_free(&c.reply);
	return 0;
}
