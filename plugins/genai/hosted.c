/*
 * hosted.c - what the bundled hosted-model plugins share (hosted.h),
 * with libcurl, jansson, libjpeg and OpenSSL's base64.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <jpeglib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hosted.h"

/* ---- configuration ---- */

static void
share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct hosted *h = arg;

	(void)c;
	(void)access;
	pthread_mutex_lock(&h->locks[data]);
}

static void
share_unlock(CURL *c, curl_lock_data data, void *arg)
{
	struct hosted *h = arg;

	(void)c;
	pthread_mutex_unlock(&h->locks[data]);
}

static bool
valid_model(const char *s, size_t n)
{
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		    s[i] == '_' || s[i] == '.'))
			return false;
	return true;
}

bool
hosted_valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* "a, b c" into h->models. */
static int
parse_models(struct hosted *h, const char *list, char *err, size_t errlen)
{
	size_t n = 0;
	char *p;

	h->model_buf = strdup(list);
	if (h->model_buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (p = h->model_buf; *p; ) {
		char *start;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && *p != ',' && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
		if (!valid_model(start, strlen(start))) {
			snprintf(err, errlen, "models: '%.64s' is not a model "
			    "name ([a-z0-9._-], under 64 characters)", start);
			return -1;
		}
		if (n == HOSTED_MODELS_MAX) {
			snprintf(err, errlen, "models: more than %d models",
			    HOSTED_MODELS_MAX);
			return -1;
		}
		h->models[n++] = start;
	}
	if (n == 0) {
		snprintf(err, errlen, "models: no model named");
		return -1;
	}
	h->models[n] = NULL;
	return 0;
}

int
hosted_read_secret(const char *what, const char *path, char *out,
    size_t max, char *err, size_t errlen)
{
	struct stat sb;
	ssize_t n;
	size_t len;
	int fd;

	if (path[0] != '/') {
		snprintf(err, errlen, "%s %.200s: give an absolute path", what,
		    path);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "%s %.200s: %s", what, path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s %.200s: not a regular file", what,
		    path);
		close(fd);
		return -1;
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "%s %.200s is readable by others: "
		    "chmod 600 %.200s", what, path, path);
		close(fd);
		return -1;
	}
	n = read(fd, out, max - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s %.200s: %s", what, path,
		    strerror(errno));
		return -1;
	}
	len = (size_t)n;
	while (len > 0 && isspace((unsigned char)out[len - 1]))
		len--;
	out[len] = '\0';
	if (len == 0 || (size_t)n == max - 1) {
		snprintf(err, errlen, "%s %.200s: %s", what, path,
		    len == 0 ? "empty" : "longer than an API key");
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		if (!isgraph((unsigned char)out[i])) {
			snprintf(err, errlen, "%s %.200s: the key must be one "
			    "line of printable characters", what, path);
			return -1;
		}
	return 0;
}

int
hosted_long(const char *what, const char *v, long min, long max, long *out,
    char *err, size_t errlen)
{
	char *end;
	long x;

	if (v == NULL)
		return 0;
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || x < min || x > max) {
		snprintf(err, errlen, "%s = %.32s: give a whole number from "
		    "%ld to %ld", what, v, min, max);
		return -1;
	}
	*out = x;
	return 0;
}

static bool
yes(const char *v)
{
	return v && (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
	    strcmp(v, "1") == 0);
}

int
hosted_init(struct hosted *h, const struct firesync_host *host,
    const struct firesync_config *config, const struct hosted_setup *s,
    const char **credential, char *err, size_t errlen)
{
	const char *endpoint, *network, *models;
	long timeout_s = 60;
	size_t len;

	memset(h, 0, sizeof(*h));
	h->host = host;
	h->plugin = s->plugin;
	/* every key is asked for, so the host can report typos */
	endpoint = host->config_get(config, "endpoint");
	h->ca_file = host->config_get(config, "ca-file");
	*credential = host->config_get(config, s->credential_key);
	models = host->config_get(config, "models");
	network = host->config_get(config, "network");
	if (hosted_long("timeout", host->config_get(config, "timeout"), 1,
	    3600, &timeout_s, err, errlen) < 0)
		return -1;
	h->timeout_ms = timeout_s * 1000;
	if (models == NULL)
		models = s->default_models;
	if (models == NULL) {
		snprintf(err, errlen, "name the models it serves in "
		    "[plugin.%s] models", s->plugin);
		return -1;
	}
	if (parse_models(h, models, err, errlen) < 0)
		return -1;
	if (endpoint == NULL)
		endpoint = s->default_endpoint;
	if (endpoint != NULL) {
		if (strncmp(endpoint, "https://", 8) != 0 ||
		    strlen(endpoint) > 512) {
			snprintf(err, errlen, "endpoint %.100s: give an "
			    "https:// URL", endpoint);
			return -1;
		}
		h->endpoint = strdup(endpoint);
		if (h->endpoint == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		len = strlen(h->endpoint);
		while (len > 8 && h->endpoint[len - 1] == '/')
			h->endpoint[--len] = '\0';
	}
	if (h->ca_file && h->ca_file[0] != '/') {
		snprintf(err, errlen, "ca-file %.200s: give an absolute path",
		    h->ca_file);
		return -1;
	}
	if (h->ca_file && access(h->ca_file, R_OK) != 0) {
		snprintf(err, errlen, "ca-file %.200s: %s", h->ca_file,
		    strerror(errno));
		return -1;
	}
	if (*credential == NULL) {
		snprintf(err, errlen, "%s", s->not_configured);
		return -1;
	}
	if (!yes(network)) {
		snprintf(err, errlen, "the worker sandbox has no network for "
		    "it: add network = yes to [plugin.%s]", s->plugin);
		return -1;
	}
	/* once, before any call's thread exists */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (h->share = curl_share_init()) == NULL) {
		snprintf(err, errlen, "libcurl failed to start");
		return -1;
	}
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->locks[i], NULL);
	h->locks_made = true;
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(h->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	return 0;
}

void
hosted_fini(struct hosted *h)
{
	if (h->share) {
		curl_share_cleanup(h->share);
		curl_global_cleanup();
	}
	if (h->locks_made)
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&h->locks[i]);
	free(h->endpoint);
	free(h->model_buf);
	memset(h, 0, sizeof(*h));
}

/* ---- the images ---- */

int
hosted_encode_jpeg(const struct firesync_image *img, uint32_t factor,
    int quality, struct hosted_jpeg *out)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	uint32_t w = img->width / factor, h = img->height / factor;
	unsigned char *row;

	if (w == 0 || h == 0)
		return -1;
	row = malloc((size_t)w * 3);
	if (row == NULL)
		return -1;
	out->data = NULL;
	out->len = 0;
	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &out->data, &out->len);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	jpeg_start_compress(&c, TRUE);
	for (uint32_t y = 0; y < h; y++) {
		for (uint32_t x = 0; x < w; x++) {
			uint32_t sum[3] = { 0, 0, 0 };

			for (uint32_t dy = 0; dy < factor; dy++) {
				const uint8_t *p = img->pixels +
				    (size_t)(y * factor + dy) * img->stride +
				    (size_t)x * factor * img->channels;

				for (uint32_t dx = 0; dx < factor; dx++,
				    p += img->channels)
					for (int k = 0; k < 3; k++) {
						uint32_t v = p[k];

						if (img->channels == 4)
							v = (v * p[3] + 255u *
							    (255u - p[3])) /
							    255u;
						sum[k] += v;
					}
			}
			for (int k = 0; k < 3; k++)
				row[(size_t)x * 3 + (size_t)k] =
				    (unsigned char)(sum[k] / (factor * factor));
		}
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	return 0;
}

/* The EXIF orientation in an APP1 segment's body; 1 if none. */
static int
exif_orientation(const uint8_t *p, size_t n)
{
	bool le;
	uint32_t ifd;
	uint16_t count;

#define RD16(o) (le ? (uint16_t)(p[o] | p[(o) + 1] << 8) : \
	    (uint16_t)(p[o] << 8 | p[(o) + 1]))
#define RD32(o) (le ? (uint32_t)p[o] | (uint32_t)p[(o) + 1] << 8 | \
	    (uint32_t)p[(o) + 2] << 16 | (uint32_t)p[(o) + 3] << 24 : \
	    (uint32_t)p[o] << 24 | (uint32_t)p[(o) + 1] << 16 | \
	    (uint32_t)p[(o) + 2] << 8 | (uint32_t)p[(o) + 3])
	if (n < 14 || memcmp(p, "Exif\0\0", 6) != 0)
		return 1;
	p += 6;
	n -= 6;
	if (memcmp(p, "II", 2) == 0)
		le = true;
	else if (memcmp(p, "MM", 2) == 0)
		le = false;
	else
		return 1;
	ifd = RD32(4);
	if (ifd > n || n - ifd < 2)
		return 1;
	count = RD16(ifd);
	for (uint32_t i = 0; i < count; i++) {
		size_t e = ifd + 2 + (size_t)i * 12;

		if (e + 12 > n)
			break;
		if (RD16(e) == 0x0112) {
			uint16_t v = RD16(e + 8);

			return v >= 1 && v <= 8 ? v : 1;
		}
	}
	return 1;
#undef RD16
#undef RD32
}

int
hosted_jpeg_strip(const uint8_t *src, size_t len, uint8_t *out,
    size_t *outlen, uint32_t *width, uint32_t *height, int *orientation)
{
	size_t i = 2, o = 2;

	if (len < 4 || src[0] != 0xFF || src[1] != 0xD8)
		return -1;
	memcpy(out, src, 2);
	*orientation = 1;
	*width = *height = 0;
	while (i + 4 <= len) {
		uint8_t m;
		size_t seg;

		if (src[i] != 0xFF)
			return -1;
		m = src[i + 1];
		if (m == 0xFF) {		/* fill byte */
			i++;
			continue;
		}
		seg = (size_t)src[i + 2] << 8 | src[i + 3];
		if (seg < 2 || i + 2 + seg > len)
			return -1;
		if (m == 0xDA) {		/* the scan: the rest as is */
			memcpy(out + o, src + i, len - i);
			*outlen = o + len - i;
			return *width && *height ? 0 : -1;
		}
		if (m == 0xE1)
			*orientation = exif_orientation(src + i + 4, seg - 2);
		if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 &&
		    m != 0xCC && seg >= 7) {
			*height = (uint32_t)src[i + 5] << 8 | src[i + 6];
			*width = (uint32_t)src[i + 7] << 8 | src[i + 8];
		}
		if (!((m >= 0xE1 && m <= 0xEF && m != 0xEE) || m == 0xFE)) {
			/* keep JFIF (APP0), Adobe (APP14) and the codec's */
			memcpy(out + o, src + i, 2 + seg);
			o += 2 + seg;
		}
		i += 2 + seg;
	}
	return -1;
}

int
hosted_photo_jpeg(const struct firesync_request *req, size_t max,
    uint32_t max_side, uint8_t **out, size_t *outlen, bool *original)
{
	const struct firesync_image *img = &req->image;
	uint32_t side = img->width > img->height ? img->width : img->height;
	uint32_t factor = (side + max_side - 1) / max_side;

	*original = false;
	if (req->original_encoding == FIRESYNC_ENCODING_JPEG &&
	    req->original_len <= max) {
		uint8_t *copy = malloc(req->original_len);
		uint32_t w, h;
		int o;

		if (copy == NULL)
			return -1;
		if (hosted_jpeg_strip(req->original, req->original_len, copy,
		    outlen, &w, &h, &o) == 0 && o == 1 && w == img->width &&
		    h == img->height) {
			*out = copy;
			*original = true;
			return 0;
		}
		free(copy);
	}
	for (; factor <= side; factor++) {
		struct hosted_jpeg j;

		if (hosted_encode_jpeg(img, factor, 90, &j) < 0)
			return -1;
		if (j.len <= max) {
			*out = j.data;
			*outlen = j.len;
			return 0;
		}
		free(j.data);
	}
	return -1;
}

int
hosted_base64(struct buf *b, const uint8_t *data, size_t len)
{
	size_t out = 4 * ((len + 2) / 3);

	if (buf_reserve(b, out + 1) < 0)
		return -1;
	for (size_t done = 0; done < len; ) {
		/* in slices: EVP_EncodeBlock takes an int */
		size_t n = len - done < (48u << 20) ? len - done : 48u << 20;

		b->len += (size_t)EVP_EncodeBlock((unsigned char *)b->p +
		    b->len, data + done, (int)n);
		done += n;
	}
	return 0;
}

uint8_t *
hosted_unbase64(const struct firesync_host *host, const char *s, size_t len,
    size_t *outlen)
{
	size_t padded = (len + 3) / 4 * 4, pad = 0;
	char *in;
	uint8_t *out;
	int n;

	if (padded > INT32_MAX || (in = malloc(padded + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	for (size_t i = len; i < padded; i++)
		in[i] = '=';
	in[padded] = '\0';
	for (size_t i = padded; i > 0 && in[i - 1] == '=' && pad < 2; i--)
		pad++;
	out = host->alloc(padded / 4 * 3 + 1);
	if (out == NULL) {
		free(in);
		return NULL;
	}
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)padded);
	free(in);
	if (n < 0 || (size_t)n < pad) {
		host->free(out);
		return NULL;
	}
	*outlen = (size_t)n - pad;
	return out;
}

char *
hosted_json_quote(const char *s)
{
	json_t *j = json_string(s);
	char *q;

	if (j == NULL)
		return NULL;
	q = json_dumps(j, JSON_ENCODE_ANY);
	json_decref(j);
	return q;
}

char *
hosted_prompt(const char *system_prompt, const char *prompt, char *err,
    size_t errlen)
{
	size_t len = (system_prompt ? strlen(system_prompt) : 0) +
	    strlen(prompt) + 3;
	char *text = malloc(len);

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(text, len, "%s%s%s", system_prompt ? system_prompt : "",
	    system_prompt && *prompt ? "\n\n" : "", prompt);
	if (*text == '\0') {
		snprintf(err, errlen, "this experience has no prompt for the "
		    "AI model");
		free(text);
		return NULL;
	}
	return text;
}

/* ---- the failures ---- */

void
hosted_reason(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; s && *s && o + 1 < len && o < 40; s++)
		if ((*s >= 'A' && *s <= 'Z') || *s == '_')
			out[o++] = *s;
		else if (*s >= 'a' && *s <= 'z')
			out[o++] = (char)(*s - 'a' + 'A');
	out[o] = '\0';
	if (o == 0)
		snprintf(out, len, "UNSPECIFIED");
}

bool
hosted_refusal(const char *reason)
{
	static const char *const words[] = { "SAFETY", "PROHIBITED",
	    "BLOCKLIST", "SPII", "RECITATION", "MODERATION",
	    "CONTENT_POLICY" };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(reason, words[i]))
			return true;
	return false;
}

static bool
has_result_1_3(const struct firesync_result *res)
{
	return res->struct_size >= offsetof(struct firesync_result,
	    output_tokens) + sizeof(res->output_tokens);
}

void
hosted_say(struct firesync_result *res, uint32_t service, long retry_after_s)
{
	if (!has_result_1_3(res))
		return;
	res->service = service;
	if (retry_after_s > 0 && retry_after_s <= 3600)
		res->retry_after_ms = (int64_t)retry_after_s * 1000;
}

void
hosted_tokens(struct firesync_result *res, int64_t in, int64_t out)
{
	if (!has_result_1_3(res))
		return;
	res->input_tokens = in > 0 ? (uint64_t)in : 0;
	res->output_tokens = out > 0 ? (uint64_t)out : 0;
}

enum hosted_failure
hosted_failure_of(long status)
{
	switch (status) {
	case 401:
	case 403:
		return HOSTED_BAD_KEY;
	case 404:
		return HOSTED_NO_MODEL;
	case 429:
		return HOSTED_RATE_LIMITED;
	default:
		return status >= 500 ? HOSTED_UNAVAILABLE : HOSTED_BAD_REQUEST;
	}
}

void
hosted_fail(struct hosted_call *c, enum hosted_failure f, const char *detail,
    const char *service_message, const char *advice,
    struct firesync_result *res, char *err, size_t errlen)
{
	const struct firesync_request *req = c->req;
	const char *table = NULL;
	uint32_t service = FIRESYNC_SERVICE_REJECTED;
	int level = FIRESYNC_LOG_WARNING;
	char what[96];

	switch (f) {
	case HOSTED_REFUSED:
		snprintf(err, errlen, "the model refused the photo (%s)",
		    detail ? detail : "SAFETY");
		service = FIRESYNC_SERVICE_REFUSED;
		level = FIRESYNC_LOG_INFO;
		break;
	case HOSTED_NO_IMAGE:
		if (detail)
			snprintf(err, errlen, "the model made no image (%s)",
			    detail);
		else
			snprintf(err, errlen, "the model answered without an "
			    "image");
		service = FIRESYNC_SERVICE_NONE;
		level = FIRESYNC_LOG_INFO;
		break;
	case HOSTED_RATE_LIMITED:
		snprintf(err, errlen, "the AI service is busy; please try "
		    "again");
		service = FIRESYNC_SERVICE_RATE_LIMITED;
		table = "the key's rate limit is exhausted; raise it or "
		    "lower [plugin.NAME] calls";
		break;
	case HOSTED_QUOTA:
		snprintf(err, errlen, "the AI service's quota is used up");
		table = "the account's quota or credit is spent: add to it "
		    "at the provider";
		break;
	case HOSTED_UNAVAILABLE:
		snprintf(err, errlen, "the AI service failed (HTTP %ld)",
		    c->status);
		service = FIRESYNC_SERVICE_UNAVAILABLE;
		break;
	case HOSTED_BAD_KEY:
		snprintf(err, errlen, "the AI service refused firesync's key");
		table = "check the key file and what it may use";
		break;
	case HOSTED_NO_MODEL:
		snprintf(err, errlen, "the AI service has no model %s",
		    req->model);
		table = "check models";
		break;
	case HOSTED_BAD_REQUEST:
		snprintf(err, errlen, "the AI service rejected the request "
		    "(HTTP %ld)", c->status);
		break;
	case HOSTED_UNREADABLE:
		snprintf(err, errlen, "%s", detail ? detail : "the AI service "
		    "sent an unreadable reply");
		service = FIRESYNC_SERVICE_NONE;
		table = "is endpoint right?";
		break;
	}
	if (advice == NULL)
		advice = table;
	if (advice != NULL && *advice == '\0')
		advice = NULL;
	if (f == HOSTED_REFUSED || f == HOSTED_NO_IMAGE) {
		/* an answer, without the image */
		c->h->host->log(level, "session=%s model=%s: %s (%s)%s%.200s",
		    req->session_id, req->model, f == HOSTED_REFUSED ?
		    "the service blocked the request" : "no image in the "
		    "reply", detail ? detail : "NO_IMAGE", service_message ?
		    "; it said: " : "", service_message ? service_message :
		    "");
		hosted_say(res, service, 0);
		return;
	}
	if (c->status && c->status != 200)
		snprintf(what, sizeof(what), "HTTP %ld from", c->status);
	else
		snprintf(what, sizeof(what), "from");
	c->h->host->log(level, "session=%s model=%s: %s %s: %.300s%s%s",
	    req->session_id, req->model, what, c->h->endpoint,
	    service_message ? service_message : "(no message)",
	    advice ? "; " : "", advice ? advice : "");
	hosted_say(res, service, f == HOSTED_RATE_LIMITED ||
	    f == HOSTED_UNAVAILABLE ? c->retry_after_s : 0);
}

/* ---- one call ---- */

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct hosted_call *c = arg;
	size_t len = size * n;

	if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0)
		c->retry_after_s = strtol(data + 12, NULL, 10);
	return len;
}

static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	struct hosted_call *c = arg;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	if (c->h->host->cancelled()) {
		c->cancelled = true;
		return 1;
	}
	return 0;
}

int
hosted_call_init(struct hosted_call *c, struct hosted *h,
    const struct firesync_request *req, char *err, size_t errlen)
{
	int64_t left = h->host->time_left_ms() - 500;

	memset(c, 0, sizeof(*c));
	c->h = h;
	c->req = req;
	c->retry_after_s = -1;
	c->timeout_ms = h->timeout_ms < left ? h->timeout_ms : (long)left;
	buf_init(&c->reply, HOSTED_REPLY_MAX);
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
	if (c->timeout_ms < 1000) {
		snprintf(err, errlen, "no time left to call the AI service");
		return -1;
	}
	return 0;
}

CURL *
hosted_easy(struct hosted_call *c, const char *url,
    const struct curl_slist *headers)
{
	struct hosted *h = c->h;
	CURL *curl = curl_easy_init();

	if (curl == NULL)
		return NULL;
	curl_easy_setopt(curl, CURLOPT_SHARE, h->share);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	if (h->ca_file)
		curl_easy_setopt(curl, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
	    c->timeout_ms < 10000 ? c->timeout_ms : 10000L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c->reply);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, c->curlerr);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "firesync-hosted/"
	    PACKAGE_VERSION);
	return curl;
}

void
hosted_perform(struct hosted_call *c, CURL *curl)
{
	buf_reset(&c->reply);
	c->status = 0;
	c->retry_after_s = -1;
	c->curlerr[0] = '\0';
	c->cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &c->status);
}

bool
hosted_transport_failed(struct hosted_call *c, struct firesync_result *res,
    int *rc, char *err, size_t errlen)
{
	const struct hosted *h = c->h;
	const struct firesync_request *req = c->req;
	bool tls;

	if (c->cancelled) {
		*rc = FIRESYNC_CANCELLED;
		return true;
	}
	*rc = FIRESYNC_ERROR;
	if (c->cc == CURLE_WRITE_ERROR && c->reply.too_big) {
		h->host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: the "
		    "reply from %s is larger than %u MB; not read",
		    req->session_id, req->model, h->endpoint,
		    HOSTED_REPLY_MAX >> 20);
		snprintf(err, errlen, "the AI service's reply is too large");
		return true;
	}
	if (c->cc == CURLE_OK)
		return false;
	tls = c->cc == CURLE_PEER_FAILED_VERIFICATION ||
	    c->cc == CURLE_SSL_CACERT_BADFILE ||
	    c->cc == CURLE_SSL_CONNECT_ERROR ||
	    c->cc == CURLE_SSL_CERTPROBLEM;
	h->host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: %s: %s%s%s%s",
	    req->session_id, req->model, h->endpoint, *c->curlerr ?
	    c->curlerr : curl_easy_strerror(c->cc), tls ? "; check "
	    "[plugin." : "", tls ? h->plugin : "", tls ? "] ca-file and the "
	    "endpoint's certificate" : "");
	if (tls) {
		snprintf(err, errlen, "cannot reach the AI service securely");
		hosted_say(res, FIRESYNC_SERVICE_REJECTED, 0);
		return true;
	}
	snprintf(err, errlen, c->cc == CURLE_OPERATION_TIMEDOUT ? "the AI "
	    "service did not answer in time" : "cannot reach the AI service");
	/* at the transform's own deadline it is not the service's fault */
	hosted_say(res, c->cc == CURLE_OPERATION_TIMEDOUT &&
	    c->timeout_ms < h->timeout_ms ? FIRESYNC_SERVICE_NONE :
	    FIRESYNC_SERVICE_UNAVAILABLE, 0);
	return true;
}

void
hosted_free_headers(struct curl_slist *headers)
{
	for (struct curl_slist *l = headers; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(headers);
}

void
hosted_call_done(struct hosted_call *c, int rc,
    const struct firesync_result *res, const char *sent, const char *err)
{
	const struct firesync_request *req = c->req;
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc == FIRESYNC_OK)
		c->h->host->log(FIRESYNC_LOG_INFO, "session=%s model=%s: %s: "
		    "%zu-byte image in %ld ms", req->session_id, req->model,
		    sent, res->data_len, (long)((t1.tv_sec - c->t0.tv_sec) *
		    1000 + (t1.tv_nsec - c->t0.tv_nsec) / 1000000));
	else if (rc == FIRESYNC_ERROR)
		c->h->host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: "
		    "failed: %s", req->session_id, req->model, err);
	buf_free(&c->reply);
}
