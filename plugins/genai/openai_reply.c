/*
 * openai_reply.c - the OpenAI Images API's reply and its sizes
 * (openai.h).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "openai.h"

int
openai_size(const char *sizes, double w, double h, char *out, size_t len)
{
	double want = log(w / h), best = 0;
	const char *p = sizes;
	int found = -1;

	while (*p) {
		unsigned long sw, sh;
		char *end;
		double e;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		sw = strtoul(p, &end, 10);
		if (*end != 'x' || sw == 0)
			return -1;
		sh = strtoul(end + 1, &end, 10);
		if (sh == 0 || (*end && *end != ',' &&
		    !isspace((unsigned char)*end)) || sw > 16384 ||
		    sh > 16384)
			return -1;
		e = fabs(log((double)sw / (double)sh) - want);
		if (found < 0 || e < best) {
			snprintf(out, len, "%lux%lu", sw, sh);
			best = e;
			found = 0;
		}
		p = end;
	}
	return found;
}

/* An error reply: {"error": {"message", "type", "code"}}. */
static void
error_reply(struct hosted_call *c, json_t *j, struct firesync_result *res,
    char *err, size_t errlen)
{
	json_t *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *type = json_string_value(json_object_get(e, "type"));
	enum hosted_failure f = hosted_failure_of(c->status);
	const char *advice = NULL;
	char reason[48], line[400];

	hosted_reason(code ? code : type ? type : "", reason, sizeof(reason));
	snprintf(line, sizeof(line), "%.300s (%s)", msg ? msg :
	    "(no message)", reason);
	if (hosted_refusal(reason) || (type && strstr(type, "safety"))) {
		/* one word for the guest, whatever the provider calls it */
		hosted_fail(c, HOSTED_REFUSED, "SAFETY", line, NULL, res, err,
		    errlen);
		return;
	}
	if (strstr(reason, "INSUFFICIENT_QUOTA") ||
	    strstr(reason, "BILLING")) {
		f = HOSTED_QUOTA;
	} else if (f == HOSTED_BAD_KEY) {
		advice = c->status == 403 ? "the key's project or "
		    "organisation may not use this model (some need a "
		    "verified organisation): check at the provider" :
		    "check [plugin.openai] api-key-file";
	} else if (f == HOSTED_BAD_REQUEST && strstr(reason,
	    "MODEL_NOT_FOUND")) {
		f = HOSTED_NO_MODEL;
	}
	if (f == HOSTED_NO_MODEL)
		advice = "check [plugin.openai] models";
	hosted_fail(c, f, NULL, line, advice, res, err, errlen);
}

int
openai_reply(struct hosted_call *c, const char *body, size_t len,
    struct firesync_result *res, char *err, size_t errlen)
{
	const struct firesync_host *host = c->h->host;
	json_t *j = json_loadb(body ? body : "", len, 0, NULL), *d, *u, *b64;
	uint8_t *bytes;
	size_t n;
	char msg[96];

	if (j == NULL || !json_is_object(j)) {
		/* an error status says what failed; a 200 is unreadable */
		json_decref(j);
		snprintf(msg, sizeof(msg), "a reply that is not JSON (%zu "
		    "bytes)", len);
		hosted_fail(c, c->status != 200 ? hosted_failure_of(c->status) :
		    HOSTED_UNREADABLE, NULL, msg, NULL, res, err, errlen);
		return FIRESYNC_ERROR;
	}
	if (c->status != 200) {
		error_reply(c, j, res, err, errlen);
		json_decref(j);
		return FIRESYNC_ERROR;
	}
	u = json_object_get(j, "usage");
	hosted_tokens(res, json_integer_value(json_object_get(u,
	    "input_tokens")), json_integer_value(json_object_get(u,
	    "output_tokens")));
	d = json_array_get(json_object_get(j, "data"), 0);
	b64 = json_object_get(d, "b64_json");
	if (!json_is_string(b64)) {
		hosted_fail(c, HOSTED_NO_IMAGE, NULL, json_object_get(d,
		    "url") ? "a URL instead of b64_json (a model that does not "
		    "take output_format?)" : "no data[0].b64_json", NULL, res,
		    err, errlen);
		json_decref(j);
		return FIRESYNC_ERROR;
	}
	bytes = hosted_unbase64(host, json_string_value(b64),
	    json_string_length(b64), &n);
	if (bytes == NULL || n < 8) {
		host->free(bytes);
		hosted_fail(c, HOSTED_UNREADABLE, "the AI service sent an "
		    "unreadable image", "an image that is not base64", NULL,
		    res, err, errlen);
		json_decref(j);
		return FIRESYNC_ERROR;
	}
	json_decref(j);
	if (memcmp(bytes, "\x89PNG", 4) == 0) {
		res->encoding = FIRESYNC_ENCODING_PNG;
	} else if (bytes[0] == 0xFF && bytes[1] == 0xD8) {
		res->encoding = FIRESYNC_ENCODING_JPEG;
	} else {
		host->free(bytes);
		hosted_fail(c, HOSTED_UNREADABLE, "the model answered with an "
		    "image format firesync cannot use", "an image that is "
		    "neither PNG nor JPEG", "", res, err, errlen);
		return FIRESYNC_ERROR;
	}
	res->data = bytes;
	res->data_len = n;
	return FIRESYNC_OK;
}
