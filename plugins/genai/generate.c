/*
 * generate.c - the generateContent request and reply (generate.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "generate.h"

/* What the service accepts inline: 20 MB per request.  The photo gets
 * what the references leave, at most PHOTO_MAX bytes of JPEG. */
#define REQUEST_MAX	(20u << 20)
#define PHOTO_MAX	(7u << 20)
#define PHOTO_MAX_SIDE	3072		/* a re-encoded photo's longest side */

/* The aspect ratios the image models accept; others go to the nearest,
 * and the host crops the result exactly. */
static const char *const service_ratios[] = {
	"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9",
	"21:9",
};

const char *
generate_ratio(const char *ratio)
{
	unsigned long w, h;
	const char *best = NULL;
	double want, d = 0;
	char *end;

	if (ratio == NULL || *ratio == '\0')
		return NULL;
	w = strtoul(ratio, &end, 10);
	if (*end != ':' || w == 0)
		return NULL;
	h = strtoul(end + 1, &end, 10);
	if (*end != '\0' || h == 0)
		return NULL;
	want = log((double)w / (double)h);
	for (size_t i = 0; i < sizeof(service_ratios) /
	    sizeof(service_ratios[0]); i++) {
		unsigned long sw = strtoul(service_ratios[i], &end, 10);
		unsigned long sh = strtoul(end + 1, NULL, 10);
		double e = fabs(log((double)sw / (double)sh) - want);

		if (best == NULL || e < d) {
			best = service_ratios[i];
			d = e;
		}
	}
	return best;
}

static int
add_image_part(struct buf *b, const uint8_t *jpeg, size_t len)
{
	if (buf_str(b, ",{\"inlineData\":{\"mimeType\":\"image/jpeg\","
	    "\"data\":\"") < 0 || hosted_base64(b, jpeg, len) < 0)
		return -1;
	return buf_str(b, "\"}}");
}

int
generate_request(const char *system_prompt,
    const struct firesync_request *req, struct buf *b,
    struct generate_sent *sent, char *err, size_t errlen)
{
	struct hosted_jpeg refs[HOSTED_REFS_MAX];
	size_t n_refs = req->n_references < HOSTED_REFS_MAX ?
	    req->n_references : HOSTED_REFS_MAX;
	size_t refs_b64 = 0, budget;
	char *text, *quoted = NULL;
	uint8_t *photo = NULL;
	size_t photo_len = 0;
	int rc = -1;

	memset(refs, 0, sizeof(refs));
	buf_init(b, REQUEST_MAX);
	text = hosted_prompt(system_prompt, req->prompt, err, errlen);
	if (text == NULL)
		return -1;
	quoted = hosted_json_quote(text);
	if (quoted == NULL) {
		snprintf(err, errlen, "the prompt is not valid text");
		goto out;
	}
	for (size_t i = 0; i < n_refs; i++) {
		if (hosted_encode_jpeg(&req->references[i], 1, 85,
		    &refs[i]) < 0)
			goto oom;
		refs_b64 += 4 * ((refs[i].len + 2) / 3) + 64;
	}
	if (refs_b64 + strlen(quoted) + 4096 >= REQUEST_MAX) {
		snprintf(err, errlen, "the prompt and reference images are "
		    "too large for the AI service");
		goto out;
	}
	/* what the photo's JPEG may take, before base64's 4/3 */
	budget = (REQUEST_MAX - 4096 - strlen(quoted) - refs_b64) / 4 * 3;
	if (hosted_photo_jpeg(req, budget < PHOTO_MAX ? budget : PHOTO_MAX,
	    PHOTO_MAX_SIDE, &photo, &photo_len, &sent->original) < 0) {
		snprintf(err, errlen, "the photo cannot be prepared for the "
		    "AI service");
		goto out;
	}
	sent->photo_bytes = photo_len;
	sent->photo_w = req->image.width;
	sent->photo_h = req->image.height;
	sent->n_refs = n_refs;
	sent->ratio = generate_ratio(req->aspect_ratio);
	if (buf_str(b, "{\"contents\":[{\"role\":\"user\",\"parts\":["
	    "{\"text\":") < 0 || buf_str(b, quoted) < 0 ||
	    buf_str(b, "}") < 0 || add_image_part(b, photo, photo_len) < 0)
		goto oom;
	for (size_t i = 0; i < n_refs; i++)
		if (add_image_part(b, refs[i].data, refs[i].len) < 0)
			goto oom;
	if (buf_str(b, "]}],\"generationConfig\":{\"responseModalities\":"
	    "[\"IMAGE\"]") < 0)
		goto oom;
	if (sent->ratio && (buf_str(b, ",\"imageConfig\":{\"aspectRatio\":"
	    "\"") < 0 || buf_str(b, sent->ratio) < 0 || buf_str(b, "\"}") <
	    0))
		goto oom;
	if (buf_str(b, "}}") < 0)
		goto oom;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "%s", b->too_big ? "the request is too large "
	    "for the AI service" : "out of memory");
out:
	for (size_t i = 0; i < n_refs; i++)
		free(refs[i].data);
	free(photo);
	free(quoted);
	free(text);
	return rc;
}

void
generate_sent_words(const struct generate_sent *s, char *out, size_t len)
{
	snprintf(out, len, "%s photo %ux%u (%zu bytes), %zu reference(s), "
	    "aspect %s", s->original ? "original" : "re-encoded", s->photo_w,
	    s->photo_h, s->photo_bytes, s->n_refs, s->ratio ? s->ratio :
	    "(the photo's)");
}

/* The tokens the service reports using (usageMetadata), for the host's
 * cost counters. */
static void
usage(json_t *j, struct firesync_result *res)
{
	json_t *u = json_object_get(j, "usageMetadata");

	hosted_tokens(res, json_integer_value(json_object_get(u,
	    "promptTokenCount")), json_integer_value(json_object_get(u,
	    "candidatesTokenCount")));
}

/*
 * Read a 200 reply: the first image part of the first candidate into
 * res (memory from the host), or the reason there is none (err, the
 * log, what the host is told).  FIRESYNC_OK or FIRESYNC_ERROR.
 */
static int
generate_reply(struct hosted_call *c, const char *body, size_t len,
    struct firesync_result *res, char *err, size_t errlen)
{
	const struct firesync_host *host = c->h->host;
	json_t *j, *cand, *parts, *part;
	const char *why, *text = NULL;
	char reason[48], msg[96];
	size_t i;
	int rc = FIRESYNC_ERROR;

	j = json_loadb(body, len, 0, NULL);
	if (j == NULL || !json_is_object(j)) {
		snprintf(msg, sizeof(msg), "a reply that is not JSON (%zu "
		    "bytes)", len);
		hosted_fail(c, HOSTED_UNREADABLE, NULL, msg, NULL, res, err,
		    errlen);
		json_decref(j);
		return FIRESYNC_ERROR;
	}
	usage(j, res);
	why = json_string_value(json_object_get(json_object_get(j,
	    "promptFeedback"), "blockReason"));
	if (why) {
		hosted_reason(why, reason, sizeof(reason));
		hosted_fail(c, HOSTED_REFUSED, reason, NULL, NULL, res, err,
		    errlen);
		goto out;
	}
	cand = json_array_get(json_object_get(j, "candidates"), 0);
	parts = json_object_get(json_object_get(cand, "content"), "parts");
	json_array_foreach(parts, i, part) {
		json_t *inl = json_object_get(part, "inlineData");
		const char *mime, *data;
		uint8_t *bytes;
		size_t n;

		if (inl == NULL)
			inl = json_object_get(part, "inline_data");
		if (inl == NULL) {
			if (text == NULL)
				text = json_string_value(json_object_get(part,
				    "text"));
			continue;
		}
		mime = json_string_value(json_object_get(inl, "mimeType"));
		if (mime == NULL)
			mime = json_string_value(json_object_get(inl,
			    "mime_type"));
		data = json_string_value(json_object_get(inl, "data"));
		if (mime == NULL || data == NULL)
			continue;
		if (strcmp(mime, "image/png") != 0 &&
		    strcmp(mime, "image/jpeg") != 0) {
			snprintf(msg, sizeof(msg), "an image as %.40s, not "
			    "PNG or JPEG", mime);
			hosted_fail(c, HOSTED_UNREADABLE, "the model answered "
			    "with an image format firesync cannot use", msg,
			    "", res, err, errlen);
			goto out;
		}
		bytes = hosted_unbase64(host, data, json_string_length(
		    json_object_get(inl, "data")), &n);
		if (bytes == NULL || n == 0) {
			host->free(bytes);
			hosted_fail(c, HOSTED_UNREADABLE, "the AI service sent "
			    "an unreadable image", "an image that is not "
			    "base64", NULL, res, err, errlen);
			goto out;
		}
		res->data = bytes;
		res->data_len = n;
		res->encoding = strcmp(mime, "image/png") == 0 ?
		    FIRESYNC_ENCODING_PNG : FIRESYNC_ENCODING_JPEG;
		rc = FIRESYNC_OK;
		goto out;
	}
	why = json_string_value(json_object_get(cand, "finishReason"));
	hosted_reason(why ? why : "NO_IMAGE", reason, sizeof(reason));
	if (why && strcmp(why, "STOP") != 0 && hosted_refusal(reason))
		hosted_fail(c, HOSTED_REFUSED, reason, text, NULL, res, err,
		    errlen);
	else
		hosted_fail(c, HOSTED_NO_IMAGE, why && strcmp(why, "STOP") !=
		    0 ? reason : NULL, text, NULL, res, err, errlen);
out:
	json_decref(j);
	return rc;
}

/* A reply that is not 200: the guest's message, the log line and what
 * the host is told. */
static void
generate_error(struct hosted_call *c, const char *key_advice,
    struct firesync_result *res, char *err, size_t errlen)
{
	const struct buf *reply = &c->reply;
	enum hosted_failure f = hosted_failure_of(c->status);
	json_t *j = json_loadb(reply->p ? reply->p : "", reply->len, 0, NULL);
	json_t *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *advice = NULL;

	if (c->status == 400 && reply->len && memmem(reply->p, reply->len,
	    "API_KEY_INVALID", 15))
		f = HOSTED_BAD_KEY;
	if (f == HOSTED_BAD_KEY)
		advice = key_advice;
	hosted_fail(c, f, NULL, msg, advice, res, err, errlen);
	json_decref(j);
}

int
generate_answer(struct hosted_call *c, const char *key_advice,
    struct firesync_result *res, char *err, size_t errlen)
{
	int rc;

	if (hosted_transport_failed(c, res, &rc, err, errlen))
		return rc;
	if (c->status == 200)
		return generate_reply(c, c->reply.p, c->reply.len, res, err,
		    errlen);
	generate_error(c, key_advice, res, err, errlen);
	return FIRESYNC_ERROR;
}
