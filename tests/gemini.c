/*
 * gemini.c - a loopback stand-in for generateContent (gemini.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emulator.h"
#include "gemini.h"
#include "image.h"

#define BODY_MAX (40u << 20)

static const char *const ratios[] = { "1:1", "2:3", "3:2", "3:4", "4:3",
    "4:5", "5:4", "9:16", "16:9", "21:9" };

/* The server's state, shared by its connections' threads (in the child
 * process). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* How many requests each [429xN] prompt has had. */
static struct { char *text; int n; } seen[64];
static size_t n_seen;
static int in_flight;			/* requests being answered */
static int log_fd = -1;			/* O_APPEND */
static int latency_ms;			/* before each answer */
static const char *api_key;
static char gate_path[160];		/* [gate]: wait until it exists */
/* this request's log line, written out before its answer goes */
static _Thread_local char *line_buf;
static _Thread_local size_t line_len;
static _Thread_local FILE *line;

static int
seen_count(const char *text)
{
	int n = 1;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_seen; i++)
		if (strcmp(seen[i].text, text) == 0) {
			n = ++seen[i].n;
			goto out;
		}
	if (n_seen < sizeof(seen) / sizeof(seen[0])) {
		seen[n_seen].text = strdup(text);
		seen[n_seen++].n = 1;
	}
out:
	pthread_mutex_unlock(&lock);
	return n;
}

/* The request's line to the log, in one write: each line is on disk
 * before its answer goes out (it ends with the outcome), so a test that
 * got the answer finds it. */
static void
line_flush(void)
{
	if (line == NULL)
		return;
	fclose(line);
	line = NULL;
	if (line_len > 0 && write(log_fd, line_buf, line_len) < 0)
		_exit(1);
	free(line_buf);
	line_buf = NULL;
}

static void
send_all(int fd, const char *p, size_t n)
{
	line_flush();
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void
reply(int fd, int status, const char *type, const char *body)
{
	char head[256];

	snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, type,
	    strlen(body));
	send_all(fd, head, strlen(head));
	send_all(fd, body, strlen(body));
}

/* A Google API error. */
static void
reply_error(int fd, int status, const char *code, const char *msg,
    const char *reason)
{
	json_t *j = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", status,
	    "message", msg, "status", code);
	char *body;

	if (reason)
		json_object_set_new(json_object_get(j, "error"), "details",
		    json_pack("[{s:s,s:s}]", "@type",
		    "type.googleapis.com/google.rpc.ErrorInfo", "reason",
		    reason));
	body = json_dumps(j, 0);
	reply(fd, status, "application/json", body);
	free(body);
	json_decref(j);
}

/* Hold a [gate] request until the test opens the gate (two minutes at
 * most). */
static void
wait_for_gate(void)
{
	for (int w = 0; w < 12000 && access(gate_path, F_OK) != 0; w++) {
		struct timespec ts = { 0, 10000000 };

		nanosleep(&ts, NULL);
	}
}

static uint8_t *
unbase64(const char *s, size_t len, size_t *out)
{
	uint8_t *b;
	int n, pad = 0;

	if (len == 0 || len % 4 != 0 || len > INT32_MAX)
		return NULL;
	b = malloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock(b, (const unsigned char *)s, (int)len);
	if (n < 0) {
		free(b);
		return NULL;
	}
	pad = (s[len - 1] == '=') + (s[len - 2] == '=');
	*out = (size_t)n - (size_t)pad;
	return b;
}

static char *
base64(const uint8_t *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* The photo inverted, cropped near ratio (3 pixels wider than exact
 * when widen), as base64 PNG (malloc'd). */
static char *
inverted_png(const struct image *photo, const char *ratio, bool widen)
{
	struct image img = *photo;
	uint8_t *png;
	size_t len;
	char err[256], *b64;

	img.pixels = malloc((size_t)img.width * img.height * img.channels);
	memcpy(img.pixels, photo->pixels, (size_t)img.width * img.height *
	    img.channels);
	if (ratio && image_crop_aspect(&img, ratio, err, sizeof(err)) == 0 &&
	    widen && img.width + 3 <= photo->width) {
		/* widen the exact crop by 3 columns, as if the service had
		 * its own idea of the size */
		uint32_t w = img.width + 3, c = img.channels;
		uint8_t *wide = malloc((size_t)w * img.height * c);

		for (uint32_t y = 0; y < img.height; y++)
			memcpy(wide + (size_t)y * w * c, photo->pixels +
			    ((size_t)((photo->height - img.height) / 2 + y) *
			    photo->width + (photo->width - w) / 2) * c,
			    (size_t)w * c);
		free(img.pixels);
		img.pixels = wide;
		img.width = w;
	}
	for (size_t i = 0; i < (size_t)img.width * img.height; i++)
		for (uint32_t k = 0; k < 3; k++)
			img.pixels[i * img.channels + k] ^= 0xFF;
	if (image_encode_png(&img, &png, &len, err, sizeof(err)) < 0) {
		free(img.pixels);
		return NULL;
	}
	free(img.pixels);
	b64 = base64(png, len);
	free(png);
	return b64;
}

static int
answer_image(int fd, const struct image *photo, const char *ratio)
{
	char *b64 = inverted_png(photo, ratio, true), *body;
	json_t *j;

	if (b64 == NULL)
		return -1;
	j = json_pack("{s:[{s:{s:[{s:s},{s:{s:s,s:s}}],s:s},s:s,s:i}],"
	    "s:{s:i,s:i}}", "candidates", "content", "parts", "text",
	    "Here is your portrait.", "inlineData", "mimeType", "image/png",
	    "data", b64, "role", "model", "finishReason", "STOP", "index", 0,
	    "usageMetadata", "promptTokenCount", 1300, "candidatesTokenCount",
	    1290);
	free(b64);
	body = json_dumps(j, JSON_COMPACT);
	reply(fd, 200, "application/json", body);
	free(body);
	json_decref(j);
	return 0;
}

static void
answer_huge(int fd, const char *start, const char *end)
{
	size_t chunk = 1u << 20, n = 48;
	char head[256], *a = malloc(chunk);

	memset(a, 'A', chunk);
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\nConnection: close"
	    "\r\n\r\n", strlen(start) + n * chunk + strlen(end));
	send_all(fd, head, strlen(head));
	send_all(fd, start, strlen(start));
	for (size_t i = 0; i < n; i++)
		send_all(fd, a, chunk);
	send_all(fd, end, strlen(end));
	free(a);
}

static bool
accepted_ratio(const char *r)
{
	for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++)
		if (strcmp(ratios[i], r) == 0)
			return true;
	return false;
}

/* Check the body's structure and answer; line gets the log's words. */
static void
answer(int fd, const char *model, const char *body, size_t len, FILE *log)
{
	json_t *j = json_loadb(body, len, 0, NULL), *parts, *part, *gc, *mod;
	const char *text, *ratio = NULL, *why = NULL;
	struct image photo = { 0 };
	size_t i;
	int n;

	parts = json_object_get(json_array_get(json_object_get(j, "contents"),
	    0), "parts");
	gc = json_object_get(j, "generationConfig");
	mod = json_object_get(gc, "responseModalities");
	text = json_string_value(json_object_get(json_array_get(parts, 0),
	    "text"));
	if (j == NULL)
		why = "body is not JSON";
	else if (json_array_size(json_object_get(j, "contents")) != 1)
		why = "contents: one content expected";
	else if (text == NULL || *text == '\0')
		why = "parts[0]: a text part expected";
	else if (json_array_size(parts) < 2)
		why = "no image part";
	else if (json_array_size(mod) != 1 ||
	    json_string_value(json_array_get(mod, 0)) == NULL ||
	    strcmp(json_string_value(json_array_get(mod, 0)), "IMAGE") != 0)
		why = "generationConfig.responseModalities: [\"IMAGE\"] "
		    "expected";
	ratio = json_string_value(json_object_get(json_object_get(gc,
	    "imageConfig"), "aspectRatio"));
	if (why == NULL && ratio && !accepted_ratio(ratio))
		why = "imageConfig.aspectRatio: not a supported ratio";
	fprintf(log, " model=%s images=%zu aspect=%s", model,
	    why ? 0 : json_array_size(parts) - 1, ratio ? ratio : "-");
	json_array_foreach(parts, i, part) {
		json_t *inl = json_object_get(part, "inlineData");
		const char *data = json_string_value(json_object_get(inl,
		    "data"));
		const char *mime = json_string_value(json_object_get(inl,
		    "mimeType"));
		struct image img;
		char err[256];
		uint8_t *bytes;
		size_t blen;

		if (i == 0 || why)
			continue;
		if (data == NULL || mime == NULL ||
		    strcmp(mime, "image/jpeg") != 0) {
			why = "inlineData: image/jpeg data expected";
			break;
		}
		bytes = unbase64(data, json_string_length(json_object_get(inl,
		    "data")), &blen);
		if (bytes == NULL || image_sniff(bytes, blen) != IMAGE_JPEG ||
		    image_decode(bytes, blen, 50000000, &img, err,
		    sizeof(err)) < 0) {
			free(bytes);
			why = "inlineData: not a JPEG that decodes";
			break;
		}
		fprintf(log, " %s=%ux%u%s", i == 1 ? "photo" : "ref",
		    img.width, img.height, i == 1 && memmem(bytes, blen,
		    "Exif", 4) ? "+exif" : "");
		free(bytes);
		if (i == 1)
			photo = img;
		else
			image_free(&img);
	}
	fputs(" text=[", log);
	for (const char *t = text; t && *t && t - text < 200; t++)
		if (*t == '\n')
			fputs("\\n", log);	/* one request, one line */
		else
			fputc(*t, log);
	fputs("]", log);
	if (why == NULL && strstr(text, "[gate]"))
		wait_for_gate();
	if (why) {
		fprintf(log, " -> 400 (%s)\n", why);
		reply_error(fd, 400, "INVALID_ARGUMENT", why, NULL);
	} else if (strstr(text, "[safety]")) {
		fprintf(log, " -> blocked\n");
		reply(fd, 200, "application/json", "{\"promptFeedback\":"
		    "{\"blockReason\":\"SAFETY\"}}");
	} else if (strstr(text, "[image-safety]")) {
		fprintf(log, " -> image-safety\n");
		reply(fd, 200, "application/json", "{\"candidates\":[{"
		    "\"finishReason\":\"IMAGE_SAFETY\",\"index\":0}]}");
	} else if (strstr(text, "[text]")) {
		fprintf(log, " -> text\n");
		reply(fd, 200, "application/json", "{\"candidates\":[{"
		    "\"content\":{\"parts\":[{\"text\":\"I would rather "
		    "describe it.\"}],\"role\":\"model\"},\"finishReason\":"
		    "\"STOP\"}]}");
	} else if (strstr(text, "[429x") && (n = seen_count(text)) <=
	    atoi(strstr(text, "[429x") + 5)) {
		fprintf(log, " -> 429 (%d)\n", n);
		reply_error(fd, 429, "RESOURCE_EXHAUSTED", "Resource has been "
		    "exhausted (e.g. check quota).", NULL);
	} else if (strstr(text, "[500]")) {
		fprintf(log, " -> 500\n");
		reply_error(fd, 500, "INTERNAL", "An internal error has "
		    "occurred.", NULL);
	} else if (strstr(text, "[notjson]")) {
		fprintf(log, " -> html\n");
		reply(fd, 200, "text/html", "<html><body>Bad gateway</body>"
		    "</html>");
	} else if (strstr(text, "[huge]")) {
		fprintf(log, " -> huge\n");
		answer_huge(fd, "{\"candidates\":[{\"content\":{\"parts\":"
		    "[{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":"
		    "\"", "\"}}]}}]}");
	} else if (strstr(text, "[webp]")) {
		fprintf(log, " -> webp\n");
		reply(fd, 200, "application/json", "{\"candidates\":[{"
		    "\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":"
		    "\"image/webp\",\"data\":\"UklGRg==\"}}]},"
		    "\"finishReason\":\"STOP\"}]}");
	} else {
		fprintf(log, " -> image\n");
		answer_image(fd, &photo, ratio);
	}
	image_free(&photo);
	json_decref(j);
}

/*
 * The service's mode (gemini_mode): "503" answers 503 to everything,
 * "429" answers 429; "503 N" and "429 N" with Retry-After: N.  True if
 * it answered so.
 */
static bool
outage(int fd, FILE *log)
{
	char mode[32] = "", path[200];
	FILE *f;
	int status = 0, after = 0;

	snprintf(path, sizeof(path), "%s.mode", gate_path);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	if (fgets(mode, sizeof(mode), f) == NULL)
		mode[0] = '\0';
	fclose(f);
	if (sscanf(mode, "%d %d", &status, &after) < 1 || (status != 503 &&
	    status != 429))
		return false;
	fprintf(log, " -> %d (mode)\n", status);
	if (after > 0) {
		char head[256];
		const char *body = status == 429 ? "{\"error\":{\"code\":429,"
		    "\"message\":\"Resource has been exhausted (e.g. check "
		    "quota).\",\"status\":\"RESOURCE_EXHAUSTED\"}}" :
		    "{\"error\":{\"code\":503,\"message\":\"The service is "
		    "currently unavailable.\",\"status\":\"UNAVAILABLE\"}}";

		snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: "
		    "application/json\r\nRetry-After: %d\r\nContent-Length: "
		    "%zu\r\nConnection: close\r\n\r\n", status, after,
		    strlen(body));
		send_all(fd, head, strlen(head));
		send_all(fd, body, strlen(body));
	} else if (status == 429) {
		reply_error(fd, 429, "RESOURCE_EXHAUSTED", "Resource has been "
		    "exhausted (e.g. check quota).", NULL);
	} else {
		reply_error(fd, 503, "UNAVAILABLE", "The service is currently "
		    "unavailable.", NULL);
	}
	return true;
}

/* The value of header name (with its colon) in head, into out; false
 * if it is not there.  Counts how many there are into *n. */
static bool
header(const char *head, const char *name, char *out, size_t len, int *n)
{
	char pat[64];
	const char *p = head, *v, *e;
	bool found = false;

	snprintf(pat, sizeof(pat), "\r\n%s", name);
	while ((p = strcasestr(p, pat)) != NULL) {
		v = p + strlen(pat);
		while (*v == ' ')
			v++;
		e = strstr(v, "\r\n");
		if (!found)
			snprintf(out, len, "%.*s", (int)(e ? e - v :
			    (ptrdiff_t)strlen(v)), v);
		found = true;
		if (n)
			(*n)++;
		p = v;
	}
	return found;
}

/* The token Vertex requests must carry (gemini_token), or "". */
static void
vertex_token(char *out, size_t len)
{
	char path[200];
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s.token", gate_path);
	if ((f = fopen(path, "r")) == NULL)
		return;
	if (fgets(out, (int)len, f) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* An OpenAI API error. */
static void
reply_openai_error(int fd, int status, const char *type, const char *code,
    const char *msg)
{
	json_t *j = json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message",
	    msg, "type", type, "param", "code", code);
	char *body = json_dumps(j, 0);

	reply(fd, status, "application/json", body);
	free(body);
	json_decref(j);
}

static const char *const openai_sizes[] = { "1024x1024", "1536x1024",
    "1024x1536" };

/*
 * An images/edits request: the multipart body's parts (model, prompt,
 * image[] that decode as JPEG, a size the model accepts, output_format
 * png), then the answer its prompt asks for.
 */
static void
answer_openai(int fd, const char *head, const char *body, size_t len,
    FILE *log)
{
	char ctype[256] = "", boundary[128], model[128] = "", size[32] = "",
	    format[16] = "", *text = NULL;
	struct image photo = { 0 };
	const char *p = body, *end = body + len, *why = NULL, *b;
	size_t images = 0;
	int n;

	header(head, "content-type:", ctype, sizeof(ctype), NULL);
	b = strstr(ctype, "boundary=");
	if (strncmp(ctype, "multipart/form-data", 19) != 0 || b == NULL) {
		fprintf(log, " -> 400 (not multipart)\n");
		reply_openai_error(fd, 400, "invalid_request_error", NULL,
		    "Invalid Content-Type header, expected multipart/form-data");
		return;
	}
	snprintf(boundary, sizeof(boundary), "--%s", b + 9);
	/* each part: --boundary, headers, a blank line, the data */
	while ((p = memmem(p, (size_t)(end - p), boundary,
	    strlen(boundary))) != NULL) {
		const char *ph = p + strlen(boundary), *pd, *pe, *nm;
		char name[64] = "", ptype[64] = "";
		size_t dlen;

		if (ph + 2 <= end && memcmp(ph, "--", 2) == 0)
			break;			/* the closing boundary */
		pd = memmem(ph, (size_t)(end - ph), "\r\n\r\n", 4);
		if (pd == NULL)
			break;
		pd += 4;
		pe = memmem(pd, (size_t)(end - pd), boundary,
		    strlen(boundary));
		if (pe == NULL)
			break;
		dlen = (size_t)(pe - pd) - 2;	/* the CRLF before it */
		nm = memmem(ph, (size_t)(pd - ph), "name=\"", 6);
		if (nm)
			sscanf(nm + 6, "%63[^\"]", name);
		nm = memmem(ph, (size_t)(pd - ph), "Content-Type: ", 14);
		if (nm)
			sscanf(nm + 14, "%63[^\r]", ptype);
		if (strcmp(name, "model") == 0)
			snprintf(model, sizeof(model), "%.*s", (int)dlen, pd);
		else if (strcmp(name, "size") == 0)
			snprintf(size, sizeof(size), "%.*s", (int)dlen, pd);
		else if (strcmp(name, "output_format") == 0)
			snprintf(format, sizeof(format), "%.*s", (int)dlen, pd);
		else if (strcmp(name, "prompt") == 0 && text == NULL)
			text = strndup(pd, dlen);
		else if (strcmp(name, "image[]") == 0 && why == NULL) {
			struct image img;
			char err[256];

			if (strcmp(ptype, "image/jpeg") != 0 ||
			    image_decode((const uint8_t *)pd, dlen, 50000000,
			    &img, err, sizeof(err)) < 0) {
				why = "image[]: not an image that decodes";
			} else {
				fprintf(log, " %s=%ux%u%s", images == 0 ?
				    "photo" : "ref", img.width, img.height,
				    images == 0 && memmem(pd, dlen, "Exif", 4) ?
				    "+exif" : "");
				if (images == 0)
					photo = img;
				else
					image_free(&img);
				images++;
			}
		} else if (strcmp(name, "image") == 0) {
			why = "image: send image[] for several images";
		}
		p = pe;
	}
	fprintf(log, " model=%s images=%zu size=%s format=%s text=[", model,
	    images, size, format);
	for (const char *t = text; t && *t && t - text < 200; t++)
		if (*t == '\n')
			fputs("\\n", log);
		else
			fputc(*t, log);
	fputs("]", log);
	if (why == NULL && *model == '\0')
		why = "model: required";
	else if (why == NULL && (text == NULL || *text == '\0'))
		why = "prompt: required";
	else if (why == NULL && images == 0)
		why = "image[]: required";
	else if (why == NULL && strcmp(format, "png") != 0)
		why = "output_format: png expected";
	if (why == NULL) {
		why = "size: not a size the model accepts";
		for (size_t i = 0; i < 3; i++)
			if (strcmp(size, openai_sizes[i]) == 0)
				why = NULL;
	}
	if (why == NULL && text && strstr(text, "[gate]"))
		wait_for_gate();
	if (why) {
		fprintf(log, " -> 400 (%s)\n", why);
		reply_openai_error(fd, 400, "invalid_request_error", NULL,
		    why);
	} else if (strcmp(model, "no-such-model") == 0) {
		fprintf(log, " -> 404\n");
		reply_openai_error(fd, 404, "invalid_request_error",
		    "model_not_found", "The model `no-such-model` does not "
		    "exist or you do not have access to it.");
	} else if (strstr(text, "[safety]")) {
		fprintf(log, " -> blocked\n");
		reply_openai_error(fd, 400, "image_generation_user_error",
		    "moderation_blocked", "Your request was rejected by the "
		    "safety system.");
	} else if (strstr(text, "[quota]")) {
		fprintf(log, " -> 429 (quota)\n");
		reply_openai_error(fd, 429, "insufficient_quota",
		    "insufficient_quota", "You exceeded your current quota, "
		    "please check your plan and billing details.");
	} else if (strstr(text, "[429x") && (n = seen_count(text)) <=
	    atoi(strstr(text, "[429x") + 5)) {
		fprintf(log, " -> 429 (%d)\n", n);
		reply_openai_error(fd, 429, "requests", "rate_limit_exceeded",
		    "Rate limit reached for requests per minute.");
	} else if (strstr(text, "[500]")) {
		fprintf(log, " -> 500\n");
		reply_openai_error(fd, 500, "server_error", NULL, "The server "
		    "had an error while processing your request.");
	} else if (strstr(text, "[notjson]")) {
		fprintf(log, " -> html\n");
		reply(fd, 200, "text/html", "<html><body>Bad gateway</body>"
		    "</html>");
	} else if (strstr(text, "[huge]")) {
		fprintf(log, " -> huge\n");
		answer_huge(fd, "{\"created\":1,\"data\":[{\"b64_json\":\"",
		    "\"}]}");
	} else if (strstr(text, "[url]")) {
		fprintf(log, " -> url\n");
		reply(fd, 200, "application/json", "{\"created\":1,\"data\":"
		    "[{\"url\":\"https://example.invalid/img.png\"}]}");
	} else {
		/* the size's own shape: the host crops it to the ratio */
		unsigned w = 1, h = 1;
		char ratio[32], *b64, *out;
		json_t *j;

		sscanf(size, "%ux%u", &w, &h);
		snprintf(ratio, sizeof(ratio), "%u:%u", w, h);
		b64 = inverted_png(&photo, ratio, false);
		fprintf(log, " -> image\n");
		j = json_pack("{s:i,s:[{s:s}],s:{s:i,s:i,s:i}}", "created",
		    1765000000, "data", "b64_json", b64 ? b64 : "", "usage",
		    "input_tokens", 600, "output_tokens", 4160,
		    "total_tokens", 4760);
		free(b64);
		out = json_dumps(j, JSON_COMPACT);
		reply(fd, 200, "application/json", out);
		free(out);
		json_decref(j);
	}
	image_free(&photo);
	free(text);
}

enum route { GEMINI, VERTEX, OPENAI, UNKNOWN };

static void
serve(int fd, const char *key, FILE *log, int now_in_flight)
{
	char head[65536], *end, *p, model[128] = "", cred[512] = "",
	    auth[512] = "", project[64] = "", location[64] = "", want[256];
	size_t got = 0, clen = 0, have;
	char *body;
	ssize_t r;
	int creds = 0;
	enum route route = UNKNOWN;
	bool key_ok = false;

	while (got < sizeof(head) - 1 &&
	    (r = read(fd, head + got, sizeof(head) - 1 - got)) > 0) {
		got += (size_t)r;
		head[got] = '\0';
		if (strstr(head, "\r\n\r\n"))
			break;
	}
	head[got] = '\0';
	if ((end = strstr(head, "\r\n\r\n")) == NULL)
		return;
	end[2] = '\0';		/* the last header keeps its CRLF */
	if ((p = strcasestr(head, "\r\ncontent-length:")) != NULL)
		clen = strtoul(p + 17, NULL, 10);
	if (sscanf(head, "POST /v1beta/models/%127[a-z0-9._-]:generateContent "
	    "HTTP/", model) == 1)
		route = GEMINI;
	else if (sscanf(head, "POST /v1/projects/%63[a-z0-9-]/locations/"
	    "%63[a-z0-9-]/publishers/google/models/%127[a-z0-9._-]:"
	    "generateContent HTTP/", project, location, model) == 3)
		route = VERTEX;
	else if (strncmp(head, "POST /v1/images/edits HTTP/", 27) == 0)
		route = OPENAI;
	/* the credentials the request carries, of any kind */
	header(head, "x-goog-api-key:", cred, sizeof(cred), &creds);
	header(head, "authorization:", auth, sizeof(auth), &creds);
	if (route == GEMINI) {
		key_ok = creds == 1 && strcmp(cred, key) == 0;
	} else {
		if (route == VERTEX)
			vertex_token(want, sizeof(want));
		else
			snprintf(want, sizeof(want), "%s", key);
		key_ok = creds == 1 && *want && strncmp(auth, "Bearer ", 7) ==
		    0 && strcmp(auth + 7, want) == 0;
	}
	if (clen > BODY_MAX) {
		reply_error(fd, 413, "INVALID_ARGUMENT", "Request payload size "
		    "exceeds the limit", NULL);
		return;
	}
	body = malloc(clen + 1);
	have = got - (size_t)(end + 4 - head);
	if (have > clen)
		have = clen;
	memcpy(body, end + 4, have);
	while (have < clen && (r = read(fd, body + have, clen - have)) > 0)
		have += (size_t)r;
	body[have] = '\0';
	fprintf(log, "%.*s key=%s creds=%d bytes=%zu inflight=%d",
	    (int)strcspn(head, "\r"), head, key_ok ? "ok" : "bad", creds,
	    clen, now_in_flight);
	if (route == VERTEX)
		fprintf(log, " project=%s location=%s", project, location);
	if (latency_ms > 0) {
		struct timespec ts = { latency_ms / 1000,
		    (long)(latency_ms % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (route == UNKNOWN) {
		fprintf(log, " -> 404\n");
		reply_error(fd, 404, "NOT_FOUND", "Not found", NULL);
	} else if (!key_ok && route == GEMINI) {
		fprintf(log, " -> 400 (key)\n");
		reply_error(fd, 400, "INVALID_ARGUMENT", "API key not valid. "
		    "Please pass a valid API key.", "API_KEY_INVALID");
	} else if (!key_ok && route == VERTEX) {
		fprintf(log, " -> 401\n");
		reply_error(fd, 401, "UNAUTHENTICATED", "Request had invalid "
		    "authentication credentials. Expected OAuth 2 access "
		    "token, login cookie or other valid authentication "
		    "credential.", "ACCESS_TOKEN_TYPE_UNSUPPORTED");
	} else if (!key_ok) {
		fprintf(log, " -> 401\n");
		reply_openai_error(fd, 401, "invalid_request_error",
		    "invalid_api_key", "Incorrect API key provided.");
	} else if (outage(fd, log)) {
		/* the whole service is down or rationing: see gemini_mode */
	} else if (route == OPENAI) {
		answer_openai(fd, head, body, have, log);
	} else if (route == VERTEX && strcmp(project, "denied") == 0) {
		fprintf(log, " -> 403\n");
		reply_error(fd, 403, "PERMISSION_DENIED", "Permission "
		    "'aiplatform.endpoints.predict' denied on resource.",
		    "IAM_PERMISSION_DENIED");
	} else if (strcmp(model, "no-such-model") == 0) {
		fprintf(log, " -> 404\n");
		reply_error(fd, 404, "NOT_FOUND", "models/no-such-model is not "
		    "found for API version v1beta", NULL);
	} else {
		answer(fd, model, body, have, log);
	}
	free(body);
}

/* One connection, on a thread of its own. */
static void *
connection(void *arg)
{
	int c = (int)(intptr_t)arg, now;

	pthread_mutex_lock(&lock);
	now = ++in_flight;
	pthread_mutex_unlock(&lock);
	line = open_memstream(&line_buf, &line_len);
	if (line == NULL)
		_exit(1);
	serve(c, api_key, line, now);
	line_flush();
	close(c);
	pthread_mutex_lock(&lock);
	in_flight--;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int
gemini_start(struct gemini *g, const char *key)
{
	return gemini_start_slow(g, key, 0);
}

int
gemini_start_slow(struct gemini *g, const char *key, int latency)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(g, 0, sizeof(*g));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		fprintf(stderr, "gemini: listen: %s\n", strerror(errno));
		return -1;
	}
	g->port = ntohs(a.sin_port);
	if (nginx_start_proxy(&g->nx, g->port) < 0) {
		close(fd);
		return -1;
	}
	snprintf(g->log, sizeof(g->log), "%s/requests.log", g->nx.dir);
	g->pid = fork();
	if (g->pid < 0) {
		close(fd);
		nginx_stop(&g->nx);
		return -1;
	}
	if (g->pid == 0) {
		/* not the test runner's handlers (Check's SIGTERM handler
		 * would take the whole process group with it) */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		signal(SIGPIPE, SIG_IGN);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		log_fd = open(g->log, O_WRONLY | O_CREAT | O_APPEND |
		    O_CLOEXEC, 0644);
		if (log_fd < 0)
			_exit(1);
		latency_ms = latency;
		api_key = key;
		snprintf(gate_path, sizeof(gate_path), "%s/gate", g->nx.dir);
		/* each connection on a thread: calls overlap as they do at
		 * the service, and the lines say how many did */
		for (;;) {
			int c = accept(fd, NULL, NULL);
			pthread_attr_t attr;
			pthread_t t;

			if (c < 0)
				continue;
			pthread_attr_init(&attr);
			pthread_attr_setdetachstate(&attr,
			    PTHREAD_CREATE_DETACHED);
			if (pthread_create(&t, &attr, connection,
			    (void *)(intptr_t)c) != 0)
				close(c);
			pthread_attr_destroy(&attr);
		}
	}
	close(fd);
	return 0;
}

void
gemini_stop(struct gemini *g)
{
	if (g->pid > 0) {
		kill(g->pid, SIGTERM);
		waitpid(g->pid, NULL, 0);
		g->pid = 0;
	}
	nginx_stop(&g->nx);
}

int
gemini_count(const struct gemini *g, const char *needle)
{
	return log_count(g->log, needle);
}

int
gemini_peak(const struct gemini *g)
{
	FILE *f = fopen(g->log, "r");
	char buf[4096];
	int peak = 0;

	if (f == NULL)
		return 0;
	while (fgets(buf, sizeof(buf), f)) {
		const char *p = strstr(buf, " inflight=");
		int n;

		if (p && sscanf(p + 10, "%d", &n) == 1 && n > peak)
			peak = n;
	}
	fclose(f);
	return peak;
}

void
gemini_open_gate(const struct gemini *g)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gate", g->nx.dir);
	if ((f = fopen(path, "w")) != NULL)
		fclose(f);
}

void
gemini_token(const struct gemini *g, const char *token)
{
	char path[200], tmp[220];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gate.token", g->nx.dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) != NULL) {
		fputs(token, f);
		fclose(f);
		rename(tmp, path);
	}
}

void
gemini_mode(const struct gemini *g, const char *mode)
{
	char path[200], tmp[220];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gate.mode", g->nx.dir);
	if (mode == NULL) {
		unlink(path);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) != NULL) {
		fputs(mode, f);
		fclose(f);
		rename(tmp, path);	/* whole, for the next request */
	}
}
