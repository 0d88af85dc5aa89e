/*
 * make_seeds.c - writes the fuzzers' seed corpora (tests/fuzz/seeds/):
 * a session and an experience document as the web app writes them, small
 * JPEGs with EXIF orientations and a PNG, a job and a result message
 * of the worker protocol with their buffers, and hosted models' replies
 * (Gemini's and OpenAI's, with that PNG inside).  Run once when the formats
 * change:  make tests/fuzz/make-seeds && tests/fuzz/make-seeds DIR
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "emulator.h"
#include "image.h"
#include "testimg.h"
#include "value.h"
#include "wire.h"

static void
put(const char *dir, const char *name, uint8_t flag, const void *a,
    size_t alen, const void *b, size_t blen)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	if (flag != 0xff)
		fputc(flag, f);
	fwrite(a, 1, alen, f);
	if (b)
		fwrite(b, 1, blen, f);
	fclose(f);
}

static void
document(const char *dir, const char *name, FsValue *fields,
    const char *docname)
{
	FsDocument *d = value_map_to_doc(fields, docname);
	size_t n = google__firestore__v1__document__get_packed_size(d);
	uint8_t *buf = xmalloc(n);

	google__firestore__v1__document__pack(d, buf);
	put(dir, name, 0, buf, n, NULL, 0);
	free(buf);
	doc_free(d);
}

static char *
base64(const uint8_t *p, size_t n)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ?
		    (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);

		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? tbl[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* A reply seed: the status selector byte of fuzz_reply.c (0: 200,
 * 1: 400, 2: 401, 5: 429, 7: 503), then the body, whose "%s" is
 * replaced by the image's base64. */
static void
reply_seed(const char *dir, const char *name, uint8_t status,
    const char *body, const char *b64)
{
	const char *at = strstr(body, "%s");
	size_t head = (size_t)(at - body);
	char *text = xmalloc(strlen(body) + strlen(b64) + 1);

	memcpy(text, body, head);
	strcpy(text + head, b64);
	strcat(text, at + 2);
	put(dir, name, status, text, strlen(text), NULL, 0);
	free(text);
}

/* Replies as the services send them (and tests/gemini.c's stand-in). */
static void
replies(const char *root, const uint8_t *png, size_t plen)
{
	char d[512], *b64 = base64(png, plen);

	snprintf(d, sizeof(d), "%s/gemini", root);
	mkdir(d, 0755);
	reply_seed(d, "image", 0, "{\"candidates\":[{\"content\":{\"parts\":"
	    "[{\"text\":\"Here is your portrait.\"},{\"inlineData\":"
	    "{\"mimeType\":\"image/png\",\"data\":\"%s\"}}],\"role\":"
	    "\"model\"},\"finishReason\":\"STOP\",\"index\":0}],"
	    "\"usageMetadata\":{\"promptTokenCount\":1300,"
	    "\"candidatesTokenCount\":1290}}", b64);
	reply_seed(d, "blocked", 0, "{\"promptFeedback\":{\"blockReason\":"
	    "\"SAFETY\"}}%s", "");
	reply_seed(d, "image-safety", 0, "{\"candidates\":[{\"finishReason\":"
	    "\"IMAGE_SAFETY\",\"index\":0}]}%s", "");
	reply_seed(d, "text", 0, "{\"candidates\":[{\"content\":{\"parts\":"
	    "[{\"text\":\"I would rather describe it.\"}],\"role\":"
	    "\"model\"},\"finishReason\":\"STOP\"}]}%s", "");
	reply_seed(d, "key", 1, "{\"error\":{\"code\":400,\"message\":"
	    "\"API key not valid. Please pass a valid API key.\",\"status\":"
	    "\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis"
	    ".com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\"}]}}%s",
	    "");
	reply_seed(d, "busy", 5, "{\"error\":{\"code\":429,\"message\":"
	    "\"Resource has been exhausted (e.g. check quota).\",\"status\":"
	    "\"RESOURCE_EXHAUSTED\"}}%s", "");

	snprintf(d, sizeof(d), "%s/openai", root);
	mkdir(d, 0755);
	reply_seed(d, "image", 0, "{\"created\":1765000000,\"data\":[{"
	    "\"b64_json\":\"%s\"}],\"usage\":{\"input_tokens\":600,"
	    "\"output_tokens\":4160,\"total_tokens\":4760}}", b64);
	reply_seed(d, "url", 0, "{\"created\":1,\"data\":[{\"url\":"
	    "\"https://example.invalid/img.png\"}]}%s", "");
	reply_seed(d, "blocked", 1, "{\"error\":{\"message\":\"Your request "
	    "was rejected by the safety system.\",\"type\":"
	    "\"image_generation_user_error\",\"param\":null,\"code\":"
	    "\"moderation_blocked\"}}%s", "");
	reply_seed(d, "quota", 5, "{\"error\":{\"message\":\"You exceeded "
	    "your current quota, please check your plan and billing "
	    "details.\",\"type\":\"insufficient_quota\",\"param\":null,"
	    "\"code\":\"insufficient_quota\"}}%s", "");
	reply_seed(d, "key", 2, "{\"error\":{\"message\":\"Incorrect API key "
	    "provided.\",\"type\":\"invalid_request_error\",\"param\":"
	    "null,\"code\":\"invalid_api_key\"}}%s", "");
	free(b64);
}

int
main(int argc, char **argv)
{
	char d[512];
	uint8_t *jpg, *png;
	size_t jlen, plen;

	if (argc != 2) {
		fprintf(stderr, "usage: make-seeds DIR\n");
		return 2;
	}
	snprintf(d, sizeof(d), "%s/documents", argv[1]);
	mkdir(argv[1], 0755);
	mkdir(d, 0755);
	document(d, "session", session_fields("evt_1", "sess_1", "exp_1",
	    "captures/evt_1/sess_1/input.jpg", 1764000000000),
	    "projects/p/databases/(default)/documents/events/evt_1/sessions/"
	    "sess_1");
	{
		FsValue *f = value_map(), *cfg = value_map(),
		    *refs = value_array();

		value_array_add(refs, value_string("references/warm.jpg"));
		value_map_put(cfg, "enabled", value_bool(true));
		value_map_put(cfg, "model", value_string("cartoon"));
		value_map_put(cfg, "prompt", value_string("bold comic"));
		value_map_put(cfg, "aspectRatio", value_string("3:4"));
		value_map_put(cfg, "referenceImageUrls", refs);
		value_map_put(f, "aiPhotoConfig", cfg);
		document(d, "experience", f, "projects/p/databases/(default)/"
		    "documents/experiences/exp_1");
	}

	snprintf(d, sizeof(d), "%s/image", argv[1]);
	mkdir(d, 0755);
	for (int o = 1; o <= 8; o += 5) {
		char name[32];

		testimg_jpeg(24, 16, o, &jpg, &jlen);
		snprintf(name, sizeof(name), "exif%d.jpg", o);
		put(d, name, 0xff, jpg, jlen, NULL, 0);
		free(jpg);
	}
	{
		struct image img;
		char err[256];

		testimg_jpeg(16, 12, 1, &jpg, &jlen);
		image_decode(jpg, jlen, 1000, &img, err, sizeof(err));
		image_encode_png(&img, &png, &plen, err, sizeof(err));
		put(d, "small.png", 0xff, png, plen, NULL, 0);
		image_free(&img);
		free(jpg);
	}

	snprintf(d, sizeof(d), "%s/wire", argv[1]);
	mkdir(d, 0755);
	{
		struct wire_job *job = xcalloc(1, sizeof(*job));
		struct wire_result res;

		testimg_jpeg(16, 12, 6, &jpg, &jlen);
		wire_header_init(&job->h, WIRE_JOB, sizeof(*job));
		job->input_len = jlen;
		job->timeout_ms = 1000;
		job->max_pixels = 1000000;
		snprintf(job->aspect_ratio, sizeof(job->aspect_ratio), "1:1");
		snprintf(job->session_id, sizeof(job->session_id), "s");
		snprintf(job->event_id, sizeof(job->event_id), "e");
		put(d, "job-passthrough", 1, job, sizeof(*job), jpg, jlen);
		job->flags = WIRE_JOB_AI;
		snprintf(job->model, sizeof(job->model), "cartoon");
		put(d, "job-ai", 1, job, sizeof(*job), jpg, jlen);
		memset(&res, 0, sizeof(res));
		wire_header_init(&res.h, WIRE_RESULT, sizeof(res));
		res.output_len = plen;
		snprintf(res.plugin, sizeof(res.plugin), "cartoon");
		put(d, "result", 1 | 4, &res, sizeof(res), png, plen);
		res.status = WIRE_PLUGIN_ERROR;
		snprintf(res.message, sizeof(res.message), "the model is sad");
		put(d, "result-error", 4, &res, sizeof(res), NULL, 0);
		free(job);
		free(jpg);
	}
	replies(argv[1], png, plen);
	free(png);
	return 0;
}
