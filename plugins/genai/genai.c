/*
 * genai.c - the genai plugin: the guest's photo, the experience's prompt
 * and its reference images to a hosted image model (the Gemini API's
 * generateContent), and the image it answers with back as the result.
 *
 * Built on the public plugin ABI only, with libcurl (HTTPS), jansson
 * (JSON), libjpeg (re-encoding) and OpenSSL's base64: the example a vendor
 * of a networked model can read.  docs/plugins.md walks through it.
 *
 * One transform is one generateContent call.  Its calls run on threads of
 * their own (FIRESYNC_PLUGIN_REMOTE); retries, the provider-wide backoff
 * and the fallback look are the host's, told what the service said.  Nothing is written to disk; the request, the
 * reply and the image are held in memory within the limits below.
 */
#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <jpeglib.h>
#include <openssl/evp.h>

#include "buf.h"
#include "firesync/plugin.h"

/* What the Gemini API accepts inline: 20 MB per request.  The photo gets
 * what the references leave, at most PHOTO_MAX bytes of JPEG. */
#define REQUEST_MAX	(20u << 20)
#define PHOTO_MAX	(7u << 20)
#define PHOTO_MAX_SIDE	3072		/* a re-encoded photo's longest side */
#define REPLY_MAX	(32u << 20)	/* the reply, JSON with base64 */
#define KEY_MAX		512
#define MODELS_MAX	16
#define DEFAULT_ENDPOINT "https://generativelanguage.googleapis.com"

/* The aspect ratios the image models accept; others go to the nearest,
 * and the host crops the result exactly. */
static const char *const service_ratios[] = {
	"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9",
	"21:9",
};

struct genai {
	const struct firesync_host *host;
	char *endpoint;			/* without a trailing '/' */
	const char *ca_file;		/* NULL: the system's CAs */
	const char *system_prompt;	/* NULL: none */
	char key[KEY_MAX];
	long timeout_ms;		/* one call */
	char *model_buf;
	const char *models[MODELS_MAX + 1];
	/* connections, TLS sessions and DNS answers shared by the calls,
	 * which run on threads of their own (FIRESYNC_PLUGIN_REMOTE) */
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	bool locks_made;
};

static void
share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct genai *g = arg;

	(void)h;
	(void)access;
	pthread_mutex_lock(&g->locks[data]);
}

static void
share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct genai *g = arg;

	(void)h;
	pthread_mutex_unlock(&g->locks[data]);
}

/* data as base64, straight into the buffer (it needs no JSON escaping). */
static int
buf_base64(struct buf *b, const uint8_t *data, size_t len)
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

/* ---- configuration ---- */

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

/* "a, b c" into g->models. */
static int
parse_models(struct genai *g, const char *list, char *err, size_t errlen)
{
	size_t n = 0;
	char *p;

	g->model_buf = strdup(list);
	if (g->model_buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (p = g->model_buf; *p; ) {
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
		if (n == MODELS_MAX) {
			snprintf(err, errlen, "models: more than %d models",
			    MODELS_MAX);
			return -1;
		}
		g->models[n++] = start;
	}
	if (n == 0) {
		snprintf(err, errlen, "models: no model named");
		return -1;
	}
	g->models[n] = NULL;
	return 0;
}

/* The API key: a file of ours, not readable by others; one line. */
static int
read_key(struct genai *g, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	ssize_t n;
	size_t len;
	int fd;

	if (path[0] != '/') {
		snprintf(err, errlen, "api-key-file %.200s: give an absolute "
		    "path", path);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "api-key-file %.200s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "api-key-file %.200s: not a regular file",
		    path);
		close(fd);
		return -1;
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "api-key-file %.200s is readable by "
		    "others: chmod 600 %.200s", path, path);
		close(fd);
		return -1;
	}
	n = read(fd, g->key, sizeof(g->key) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "api-key-file %.200s: %s", path,
		    strerror(errno));
		return -1;
	}
	len = (size_t)n;
	while (len > 0 && isspace((unsigned char)g->key[len - 1]))
		len--;
	g->key[len] = '\0';
	if (len == 0 || (size_t)n == sizeof(g->key) - 1) {
		snprintf(err, errlen, "api-key-file %.200s: %s", path,
		    len == 0 ? "empty" : "longer than an API key");
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		if (!isgraph((unsigned char)g->key[i])) {
			snprintf(err, errlen, "api-key-file %.200s: the key "
			    "must be one line of printable characters", path);
			return -1;
		}
	return 0;
}

static int
parse_long(const char *name, const char *v, long min, long max, long *out,
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
		    "%ld to %ld", name, v, min, max);
		return -1;
	}
	*out = x;
	return 0;
}

static void genai_fini(void *state);

static int
genai_init(const struct firesync_host *host,
    const struct firesync_config *config, void **state, char *err,
    size_t errlen)
{
	struct genai *g = calloc(1, sizeof(*g));
	const char *endpoint, *network, *models, *key_file;
	long timeout_s = 60;
	size_t len;

	if (g == NULL) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	*state = g;
	g->host = host;
	/* every key is asked for here, so the host can report typos */
	endpoint = host->config_get(config, "endpoint");
	g->ca_file = host->config_get(config, "ca-file");
	key_file = host->config_get(config, "api-key-file");
	models = host->config_get(config, "models");
	g->system_prompt = host->config_get(config, "system-prompt");
	network = host->config_get(config, "network");
	if (parse_long("timeout", host->config_get(config, "timeout"), 1,
	    3600, &timeout_s, err, errlen) < 0)
		goto fail;
	g->timeout_ms = timeout_s * 1000;
	if (parse_models(g, models ? models : "gemini-2.5-flash-image", err,
	    errlen) < 0)
		goto fail;
	if (endpoint == NULL)
		endpoint = DEFAULT_ENDPOINT;
	if (strncmp(endpoint, "https://", 8) != 0 || strlen(endpoint) > 512) {
		snprintf(err, errlen, "endpoint %.100s: give an https:// URL",
		    endpoint);
		goto fail;
	}
	g->endpoint = strdup(endpoint);
	if (g->endpoint == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	len = strlen(g->endpoint);
	while (len > 8 && g->endpoint[len - 1] == '/')
		g->endpoint[--len] = '\0';
	if (g->ca_file && g->ca_file[0] != '/') {
		snprintf(err, errlen, "ca-file %.200s: give an absolute path",
		    g->ca_file);
		goto fail;
	}
	if (g->ca_file && access(g->ca_file, R_OK) != 0) {
		snprintf(err, errlen, "ca-file %.200s: %s", g->ca_file,
		    strerror(errno));
		goto fail;
	}
	if (key_file == NULL) {
		snprintf(err, errlen, "not configured, so its models are not "
		    "served: name a chmod-600 file holding a Gemini API key "
		    "in [plugin.genai] api-key-file, with network = yes");
		goto fail;
	}
	if (network == NULL || (strcmp(network, "yes") != 0 &&
	    strcmp(network, "true") != 0 && strcmp(network, "1") != 0)) {
		snprintf(err, errlen, "the worker sandbox has no network for "
		    "it: add network = yes to [plugin.genai]");
		goto fail;
	}
	if (read_key(g, key_file, err, errlen) < 0)
		goto fail;
	/* once, before any call's thread exists */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (g->share = curl_share_init()) == NULL) {
		snprintf(err, errlen, "libcurl failed to start");
		goto fail;
	}
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&g->locks[i], NULL);
	g->locks_made = true;
	curl_share_setopt(g->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(g->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(g->share, CURLSHOPT_USERDATA, g);
	curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(g->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	host->log(FIRESYNC_LOG_INFO, "serving %s via %s (timeout %lds)",
	    models ? models : "gemini-2.5-flash-image", g->endpoint,
	    timeout_s);
	return FIRESYNC_OK;
fail:
	genai_fini(g);
	*state = NULL;
	return FIRESYNC_ERROR;
}

static const char *const *
genai_models(void *state)
{
	struct genai *g = state;

	return g->models;
}

static void
genai_fini(void *state)
{
	struct genai *g = state;

	if (g == NULL)
		return;
	if (g->share) {
		curl_share_cleanup(g->share);
		curl_global_cleanup();
	}
	if (g->locks_made)
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&g->locks[i]);
	/* the key does not linger in freed memory */
	memset(g->key, 0, sizeof(g->key));
	free(g->endpoint);
	free(g->model_buf);
	free(g);
}

/* ---- the photo and the references as JPEG ---- */

struct jpeg_out {
	unsigned char *data;
	unsigned long len;
};

/* Encode w x h pixels of img, area-averaged by an integer factor, as a
 * JPEG.  Alpha is dropped (composited over white). */
static int
encode_jpeg(const struct firesync_image *img, uint32_t factor, int quality,
    struct jpeg_out *out)
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

/*
 * Walk a JPEG's markers up to the scan: its size, its EXIF orientation
 * (1 if none), and where the metadata segments are (APP1 to APP15 and
 * COM: EXIF with the phone's GPS position, XMP, comments), so the photo
 * can be sent without them.  -1 if it is not a JPEG this can read.
 */
struct jpeg_info {
	uint32_t width, height;
	int orientation;
};

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

/* Copy src without its metadata segments into out (as big as src). */
static int
jpeg_strip(const uint8_t *src, size_t len, uint8_t *out, size_t *outlen,
    struct jpeg_info *info)
{
	size_t i = 2, o = 2;

	if (len < 4 || src[0] != 0xFF || src[1] != 0xD8)
		return -1;
	memcpy(out, src, 2);
	info->orientation = 1;
	info->width = info->height = 0;
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
			return info->width && info->height ? 0 : -1;
		}
		if (m == 0xE1)
			info->orientation = exif_orientation(src + i + 4,
			    seg - 2);
		if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 &&
		    m != 0xCC && seg >= 7) {
			info->height = (uint32_t)src[i + 5] << 8 | src[i + 6];
			info->width = (uint32_t)src[i + 7] << 8 | src[i + 8];
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

/*
 * The photo to send: the guest's original JPEG, metadata removed, when
 * the host did not have to turn or crop it and it fits in max; else the
 * upright, cropped photo re-encoded, scaled down until it fits.
 */
static int
photo_jpeg(const struct firesync_request *req, size_t max, uint8_t **out,
    size_t *outlen, bool *original)
{
	const struct firesync_image *img = &req->image;
	uint32_t side = img->width > img->height ? img->width : img->height;
	uint32_t factor = (side + PHOTO_MAX_SIDE - 1) / PHOTO_MAX_SIDE;

	*original = false;
	if (req->original_encoding == FIRESYNC_ENCODING_JPEG &&
	    req->original_len <= max) {
		struct jpeg_info info;
		uint8_t *copy = malloc(req->original_len);

		if (copy == NULL)
			return -1;
		if (jpeg_strip(req->original, req->original_len, copy, outlen,
		    &info) == 0 && info.orientation == 1 &&
		    info.width == img->width && info.height == img->height) {
			*out = copy;
			*original = true;
			return 0;
		}
		free(copy);
	}
	for (; factor <= side; factor++) {
		struct jpeg_out j;

		if (encode_jpeg(img, factor, 90, &j) < 0)
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

/* ---- the request ---- */

/* The nearest aspect ratio the service accepts to "W:H", or NULL. */
static const char *
service_ratio(const char *ratio)
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
	    "\"data\":\"") < 0 || buf_base64(b, jpeg, len) < 0)
		return -1;
	return buf_str(b, "\"}}");
}

/* The JSON text of s, quoted; NULL if s is not valid UTF-8. */
static char *
json_quote(const char *s)
{
	json_t *j = json_string(s);
	char *q;

	if (j == NULL)
		return NULL;
	q = json_dumps(j, JSON_ENCODE_ANY);
	json_decref(j);
	return q;
}

struct summary {
	size_t photo_bytes;
	bool original;
	uint32_t photo_w, photo_h;
	size_t n_refs;
	const char *ratio;
};

/* The generateContent body; returns 0, or -1 with err. */
static int
build_request(const struct genai *g, const struct firesync_request *req,
    struct buf *b, struct summary *sum, char *err, size_t errlen)
{
	struct jpeg_out refs[8];
	size_t n_refs = req->n_references < 8 ? req->n_references : 8;
	size_t refs_b64 = 0, budget, text_len;
	char *text = NULL, *quoted = NULL;
	uint8_t *photo = NULL;
	size_t photo_len = 0;
	int rc = -1;

	memset(refs, 0, sizeof(refs));
	text_len = (g->system_prompt ? strlen(g->system_prompt) : 0) +
	    strlen(req->prompt) + 3;
	text = malloc(text_len);
	if (text == NULL)
		goto oom;
	snprintf(text, text_len, "%s%s%s", g->system_prompt ?
	    g->system_prompt : "", g->system_prompt && *req->prompt ?
	    "\n\n" : "", req->prompt);
	if (*text == '\0') {
		snprintf(err, errlen, "this experience has no prompt for the "
		    "AI model");
		goto out;
	}
	quoted = json_quote(text);
	if (quoted == NULL) {
		snprintf(err, errlen, "the prompt is not valid text");
		goto out;
	}
	for (size_t i = 0; i < n_refs; i++) {
		if (encode_jpeg(&req->references[i], 1, 85, &refs[i]) < 0)
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
	if (photo_jpeg(req, budget < PHOTO_MAX ? budget : PHOTO_MAX, &photo,
	    &photo_len, &sum->original) < 0) {
		snprintf(err, errlen, "the photo cannot be prepared for the "
		    "AI service");
		goto out;
	}
	sum->photo_bytes = photo_len;
	sum->photo_w = req->image.width;
	sum->photo_h = req->image.height;
	sum->n_refs = n_refs;
	sum->ratio = service_ratio(req->aspect_ratio);
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
	if (sum->ratio && (buf_str(b, ",\"imageConfig\":{\"aspectRatio\":\"")
	    < 0 || buf_str(b, sum->ratio) < 0 || buf_str(b, "\"}") < 0))
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

/* ---- the call ---- */

struct call {
	struct genai *g;
	struct buf reply;
	bool cancelled;
	long retry_after_s;
};

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	size_t len = size * n;

	if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0)
		c->retry_after_s = strtol(data + 12, NULL, 10);
	return len;
}

static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	struct call *c = arg;

	if (c->g->host->cancelled()) {
		c->cancelled = true;
		return 1;
	}
	return 0;
}

/* A reason from the service, fit for a guest's screen: [A-Z_], short. */
static void
reason_of(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; s && *s && o + 1 < len && o < 40; s++)
		if ((*s >= 'A' && *s <= 'Z') || *s == '_')
			out[o++] = *s;
	out[o] = '\0';
	if (o == 0)
		snprintf(out, len, "UNSPECIFIED");
}

static bool
refusal(const char *reason)
{
	static const char *const words[] = { "SAFETY", "PROHIBITED",
	    "BLOCKLIST", "SPII", "RECITATION" };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(reason, words[i]))
			return true;
	return false;
}

/* The message of a Google API error reply, for the log. */
static void
log_api_error(const struct genai *g, const struct firesync_request *req,
    long status, const char *body, size_t len, const char *advice)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *msg = NULL;

	if (j)
		msg = json_string_value(json_object_get(json_object_get(j,
		    "error"), "message"));
	g->host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: HTTP %ld "
	    "from %s: %.300s%s%s", req->session_id, req->model, status,
	    g->endpoint, msg ? msg : "(no error message)", advice ? "; " :
	    "", advice ? advice : "");
	json_decref(j);
}

/* Decode base64 (standard or URL-safe alphabet, padded or not). */
static uint8_t *
base64_decode(const struct genai *g, const char *s, size_t len,
    size_t *outlen)
{
	size_t padded = (len + 3) / 4 * 4, pad = 0;
	char *in = malloc(padded + 1);
	uint8_t *out;
	int n;

	if (in == NULL || padded > INT32_MAX)
		goto bad;
	for (size_t i = 0; i < len; i++)
		in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	for (size_t i = len; i < padded; i++)
		in[i] = '=';
	in[padded] = '\0';
	for (size_t i = padded; i > 0 && in[i - 1] == '=' && pad < 2; i--)
		pad++;
	out = g->host->alloc(padded / 4 * 3 + 1);
	if (out == NULL)
		goto bad;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)padded);
	free(in);
	if (n < 0 || (size_t)n < pad) {
		g->host->free(out);
		return NULL;
	}
	*outlen = (size_t)n - pad;
	return out;
bad:
	free(in);
	return NULL;
}

/* Tell the host what the service said (ABI 1.3): it retries, slows
 * every call down, opens the circuit or runs the fallback look. */
static void
say(struct firesync_result *res, uint32_t service, long retry_after_s)
{
	if (res->struct_size < offsetof(struct firesync_result,
	    output_tokens) + sizeof(res->output_tokens))
		return;
	res->service = service;
	if (retry_after_s > 0 && retry_after_s <= 3600)
		res->retry_after_ms = (int64_t)retry_after_s * 1000;
}

/* The tokens the service reports using (usageMetadata), for the host's
 * cost counters. */
static void
usage(json_t *j, struct firesync_result *res)
{
	json_t *u = json_object_get(j, "usageMetadata");
	json_int_t in = json_integer_value(json_object_get(u,
	    "promptTokenCount"));
	json_int_t out = json_integer_value(json_object_get(u,
	    "candidatesTokenCount"));

	if (res->struct_size < offsetof(struct firesync_result,
	    output_tokens) + sizeof(res->output_tokens))
		return;
	res->input_tokens = in > 0 ? (uint64_t)in : 0;
	res->output_tokens = out > 0 ? (uint64_t)out : 0;
}

/*
 * Read a 200 reply: the first image part of the first candidate into
 * res, or the reason there is none into err.
 */
static int
take_reply(const struct genai *g, const struct firesync_request *req,
    const struct buf *reply, struct firesync_result *res, char *err,
    size_t errlen)
{
	json_t *j, *cand, *parts, *part;
	const char *why, *text = NULL;
	char reason[48];
	size_t i;
	int rc = FIRESYNC_ERROR;

	j = json_loadb(reply->p, reply->len, 0, NULL);
	if (j == NULL || !json_is_object(j)) {
		g->host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: the "
		    "reply from %s is not JSON (%zu bytes); is endpoint "
		    "right?", req->session_id, req->model, g->endpoint,
		    reply->len);
		snprintf(err, errlen, "the AI service sent an unreadable "
		    "reply");
		json_decref(j);
		return FIRESYNC_ERROR;
	}
	usage(j, res);
	why = json_string_value(json_object_get(json_object_get(j,
	    "promptFeedback"), "blockReason"));
	if (why) {
		reason_of(why, reason, sizeof(reason));
		snprintf(err, errlen, "the model refused the photo (%s)",
		    reason);
		say(res, FIRESYNC_SERVICE_REFUSED, 0);
		g->host->log(FIRESYNC_LOG_INFO, "session=%s model=%s: the "
		    "service blocked the request (%s)", req->session_id,
		    req->model, reason);
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
			g->host->log(FIRESYNC_LOG_WARNING, "session=%s "
			    "model=%s: the service answered with %.40s, not "
			    "PNG or JPEG", req->session_id, req->model, mime);
			snprintf(err, errlen, "the model answered with an "
			    "image format firesync cannot use");
			goto out;
		}
		bytes = base64_decode(g, data, json_string_length(
		    json_object_get(inl, "data")), &n);
		if (bytes == NULL || n == 0) {
			g->host->free(bytes);
			snprintf(err, errlen, "the AI service sent an "
			    "unreadable image");
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
	reason_of(why ? why : "NO_IMAGE", reason, sizeof(reason));
	if (why && strcmp(why, "STOP") != 0 && refusal(reason)) {
		snprintf(err, errlen, "the model refused the photo (%s)",
		    reason);
		say(res, FIRESYNC_SERVICE_REFUSED, 0);
	} else if (why && strcmp(why, "STOP") != 0)
		snprintf(err, errlen, "the model made no image (%s)", reason);
	else
		snprintf(err, errlen, "the model answered without an image");
	g->host->log(FIRESYNC_LOG_INFO, "session=%s model=%s: no image in "
	    "the reply (finishReason %s)%s%.200s", req->session_id,
	    req->model, reason, text ? "; it said: " : "", text ? text : "");
out:
	json_decref(j);
	return rc;
}

/* The message for a final HTTP error status. */
static void
status_error(const struct genai *g, const struct firesync_request *req,
    long status, const struct buf *reply, char *err, size_t errlen)
{
	const char *advice = NULL;

	if (status == 400 && reply->len && memmem(reply->p, reply->len,
	    "API_KEY_INVALID", 15)) {
		status = 401;
	}
	switch (status) {
	case 401:
	case 403:
		snprintf(err, errlen, "the AI service refused firesync's key");
		advice = "check [plugin.genai] api-key-file and that the key "
		    "may use the Gemini API";
		break;
	case 404:
		snprintf(err, errlen, "the AI service has no model %s",
		    req->model);
		advice = "check [plugin.genai] models";
		break;
	case 429:
		snprintf(err, errlen, "the AI service is busy; please try "
		    "again");
		advice = "the key's quota or rate limit is exhausted; raise "
		    "it or spread the load";
		break;
	default:
		if (status >= 500)
			snprintf(err, errlen, "the AI service failed "
			    "(HTTP %ld)", status);
		else
			snprintf(err, errlen, "the AI service rejected the "
			    "request (HTTP %ld)", status);
	}
	log_api_error(g, req, status, reply->p, reply->len, advice);
}

/* The service failed to answer (curl's cc): err, the log, and what the
 * host is told. */
static void
transport_error(const struct genai *g, const struct firesync_request *req,
    CURLcode cc, const char *curlerr, long timeout,
    struct firesync_result *res, char *err, size_t errlen)
{
	bool tls = cc == CURLE_PEER_FAILED_VERIFICATION ||
	    cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CONNECT_ERROR ||
	    cc == CURLE_SSL_CERTPROBLEM;

	g->host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: %s: %s%s",
	    req->session_id, req->model, g->endpoint, *curlerr ? curlerr :
	    curl_easy_strerror(cc), tls ? "; check [plugin.genai] ca-file "
	    "and the endpoint's certificate" : "");
	if (tls) {
		snprintf(err, errlen, "cannot reach the AI service securely");
		say(res, FIRESYNC_SERVICE_REJECTED, 0);
		return;
	}
	snprintf(err, errlen, cc == CURLE_OPERATION_TIMEDOUT ? "the AI "
	    "service did not answer in time" : "cannot reach the AI service");
	/* at the transform's own deadline it is not the service's fault */
	say(res, cc == CURLE_OPERATION_TIMEDOUT && timeout < g->timeout_ms ?
	    FIRESYNC_SERVICE_NONE : FIRESYNC_SERVICE_UNAVAILABLE, 0);
}

/*
 * One generateContent call.  Retries are the host's: it sees every call
 * to the service, so when the service is struggling it slows them all
 * down rather than each call retrying on its own.
 */
static int
genai_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	struct genai *g = state;
	struct curl_slist *headers = NULL;
	struct buf body;
	struct summary sum = { 0 };
	struct call c = { .g = g, .retry_after_s = -1 };
	CURL *curl;
	char url[768], keyhdr[KEY_MAX + 32], curlerr[CURL_ERROR_SIZE] = "";
	long status = 0, timeout;
	int64_t left = g->host->time_left_ms() - 500;
	int rc = FIRESYNC_ERROR;
	struct timespec t0, t1;
	CURLcode cc;

	timeout = g->timeout_ms < left ? g->timeout_ms : (long)left;
	if (timeout < 1000) {
		snprintf(err, errlen, "no time left to call the AI service");
		return FIRESYNC_ERROR;
	}
	buf_init(&body, REQUEST_MAX);
	buf_init(&c.reply, REPLY_MAX);
	if (build_request(g, req, &body, &sum, err, errlen) < 0) {
		buf_free(&body);
		return FIRESYNC_ERROR;
	}
	snprintf(url, sizeof(url), "%s/v1beta/models/%s:generateContent",
	    g->endpoint, req->model);
	snprintf(keyhdr, sizeof(keyhdr), "x-goog-api-key: %s", g->key);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, keyhdr);
	memset(keyhdr, 0, sizeof(keyhdr));
	if (headers == NULL || (curl = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "out of memory");
		curl_slist_free_all(headers);
		buf_free(&body);
		return FIRESYNC_ERROR;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	curl_easy_setopt(curl, CURLOPT_SHARE, g->share);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.p);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)body.len);
	if (g->ca_file)
		curl_easy_setopt(curl, CURLOPT_CAINFO, g->ca_file);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout < 10000 ? timeout : 10000L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c.reply);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &c);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &c);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curlerr);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "firesync-genai/"
	    PACKAGE_VERSION);
	cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (c.cancelled) {
		rc = FIRESYNC_CANCELLED;
	} else if (cc == CURLE_WRITE_ERROR && c.reply.too_big) {
		g->host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: the "
		    "reply from %s is larger than %u MB; not read",
		    req->session_id, req->model, g->endpoint, REPLY_MAX >> 20);
		snprintf(err, errlen, "the AI service's reply is too large");
	} else if (cc != CURLE_OK) {
		transport_error(g, req, cc, curlerr, timeout, res, err,
		    errlen);
	} else if (status == 200) {
		rc = take_reply(g, req, &c.reply, res, err, errlen);
	} else {
		status_error(g, req, status, &c.reply, err, errlen);
		say(res, status == 429 ? FIRESYNC_SERVICE_RATE_LIMITED :
		    status >= 500 ? FIRESYNC_SERVICE_UNAVAILABLE :
		    FIRESYNC_SERVICE_REJECTED, c.retry_after_s);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc == FIRESYNC_OK)
		g->host->log(FIRESYNC_LOG_INFO, "session=%s model=%s: %s "
		    "photo %ux%u (%zu bytes), %zu reference(s), aspect %s: "
		    "%zu-byte image in %ld ms", req->session_id, req->model,
		    sum.original ? "original" : "re-encoded", sum.photo_w,
		    sum.photo_h, sum.photo_bytes, sum.n_refs, sum.ratio ?
		    sum.ratio : "(the photo's)", res->data_len,
		    (long)((t1.tv_sec - t0.tv_sec) * 1000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000000));
	else if (rc == FIRESYNC_ERROR)
		g->host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: "
		    "failed: %s", req->session_id, req->model, err);
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	buf_free(&body);
	buf_free(&c.reply);
	return rc;
}

static const char *const default_models[] = { "gemini-2.5-flash-image",
    NULL };

const struct firesync_plugin firesync_plugin = {
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
	.abi_minor = 3,			/* configured_models, flags,
					   result.service */
	.struct_size = sizeof(struct firesync_plugin),
	.name = "genai",
	.version = PACKAGE_VERSION,
	.vendor = "firesync",
	.license = "MIT",
	.models = default_models,
	.init = genai_init,
	.transform = genai_transform,
	.fini = genai_fini,
	.configured_models = genai_models,
	.flags = FIRESYNC_PLUGIN_REMOTE,
};
