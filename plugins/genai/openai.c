/*
 * openai.c - the openai plugin: the guest's photo and the experience's
 * references to OpenAI's Images API (POST {endpoint}/v1/images/edits, a
 * multipart form: model, prompt, the photo and each reference as
 * image[], size, output_format png) with an API key from a file, and the
 * b64_json image it answers with back as the result.
 *
 * The model is configuration, not code (its names change often), and so
 * are the sizes it accepts: the one nearest the experience's aspect
 * ratio is asked for, and the host crops the result exactly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "hosted.h"
#include "openai.h"

#define DEFAULT_ENDPOINT "https://api.openai.com"
#define DEFAULT_SIZES	"1024x1024, 1536x1024, 1024x1536"
#define PHOTO_MAX	(7u << 20)	/* the photo's JPEG */
#define PHOTO_MAX_SIDE	3072

struct openai {
	struct hosted h;
	const char *system_prompt;	/* NULL: none */
	const char *sizes;
	const char *quality;		/* NULL: the model's default */
	char key[HOSTED_SECRET_MAX];
};

static void openai_fini(void *state);

static int
openai_init(const struct firesync_host *host,
    const struct firesync_config *config, void **state, char *err,
    size_t errlen)
{
	static const struct hosted_setup setup = {
		.plugin = "openai",
		.default_endpoint = DEFAULT_ENDPOINT,
		.default_models = "gpt-image-1",
		.credential_key = "api-key-file",
		.not_configured = "not configured, so its models are not "
		    "served: name a chmod-600 file holding an OpenAI API key "
		    "in [plugin.openai] api-key-file, with network = yes",
	};
	struct openai *o = calloc(1, sizeof(*o));
	const char *key_file;
	char size[32];

	if (o == NULL) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	*state = o;
	o->system_prompt = host->config_get(config, "system-prompt");
	o->sizes = host->config_get(config, "sizes");
	o->quality = host->config_get(config, "quality");
	if (o->sizes == NULL)
		o->sizes = DEFAULT_SIZES;
	if (openai_size(o->sizes, 1, 1, size, sizeof(size)) < 0) {
		snprintf(err, errlen, "sizes = %.100s: give the sizes the "
		    "model accepts, as WxH, WxH...", o->sizes);
		goto fail;
	}
	if (o->quality && strcmp(o->quality, "low") != 0 &&
	    strcmp(o->quality, "medium") != 0 &&
	    strcmp(o->quality, "high") != 0 &&
	    strcmp(o->quality, "auto") != 0) {
		snprintf(err, errlen, "quality = %.32s: give low, medium, "
		    "high or auto", o->quality);
		goto fail;
	}
	if (hosted_init(&o->h, host, config, &setup, &key_file, err,
	    errlen) < 0 || hosted_read_secret("api-key-file", key_file, o->key,
	    sizeof(o->key), err, errlen) < 0)
		goto fail;
	host->log(FIRESYNC_LOG_INFO, "serving %s via %s, sizes %s "
	    "(timeout %lds)", host->config_get(config, "models") ?
	    host->config_get(config, "models") : setup.default_models,
	    o->h.endpoint, o->sizes, o->h.timeout_ms / 1000);
	return FIRESYNC_OK;
fail:
	openai_fini(o);
	*state = NULL;
	return FIRESYNC_ERROR;
}

static const char *const *
openai_models(void *state)
{
	struct openai *o = state;

	return o->h.models;
}

static void
openai_fini(void *state)
{
	struct openai *o = state;

	if (o == NULL)
		return;
	hosted_fini(&o->h);
	OPENSSL_cleanse(o->key, sizeof(o->key));
	free(o);
}

static int
add_field(curl_mime *form, const char *name, const char *value)
{
	curl_mimepart *p = curl_mime_addpart(form);

	return p && curl_mime_name(p, name) == CURLE_OK &&
	    curl_mime_data(p, value, CURL_ZERO_TERMINATED) == CURLE_OK ?
	    0 : -1;
}

static int
add_image(curl_mime *form, const char *file, const uint8_t *jpeg,
    size_t len)
{
	curl_mimepart *p = curl_mime_addpart(form);

	return p && curl_mime_name(p, "image[]") == CURLE_OK &&
	    curl_mime_filename(p, file) == CURLE_OK &&
	    curl_mime_type(p, "image/jpeg") == CURLE_OK &&
	    curl_mime_data(p, (const char *)jpeg, len) == CURLE_OK ? 0 : -1;
}

/* The form: 0, or -1 with err. */
static int
build_form(const struct openai *o, const struct firesync_request *req,
    curl_mime *form, char *size, size_t sizelen, char *words,
    size_t wordslen, char *err, size_t errlen)
{
	size_t n_refs = req->n_references < HOSTED_REFS_MAX ?
	    req->n_references : HOSTED_REFS_MAX;
	uint32_t rw = req->image.width, rh = req->image.height;
	uint8_t *photo = NULL;
	size_t photo_len = 0;
	char *text;
	bool original;
	int rc = -1;

	text = hosted_prompt(o->system_prompt, req->prompt, err, errlen);
	if (text == NULL)
		return -1;
	if (sscanf(req->aspect_ratio, "%u:%u", &rw, &rh) != 2 || rw == 0 ||
	    rh == 0) {
		rw = req->image.width;
		rh = req->image.height;
	}
	openai_size(o->sizes, rw, rh, size, sizelen);
	if (hosted_photo_jpeg(req, PHOTO_MAX, PHOTO_MAX_SIDE, &photo,
	    &photo_len, &original) < 0) {
		snprintf(err, errlen, "the photo cannot be prepared for the "
		    "AI service");
		goto out;
	}
	if (add_field(form, "model", req->model) < 0 ||
	    add_field(form, "prompt", text) < 0 ||
	    add_image(form, "photo.jpg", photo, photo_len) < 0)
		goto oom;
	for (size_t i = 0; i < n_refs; i++) {
		struct hosted_jpeg j;
		char name[32];
		int bad;

		if (hosted_encode_jpeg(&req->references[i], 1, 85, &j) < 0)
			goto oom;
		snprintf(name, sizeof(name), "reference-%zu.jpg", i + 1);
		bad = add_image(form, name, j.data, j.len);
		free(j.data);
		if (bad)
			goto oom;
	}
	if (add_field(form, "size", size) < 0 ||
	    add_field(form, "output_format", "png") < 0 ||
	    add_field(form, "n", "1") < 0 ||
	    (o->quality && add_field(form, "quality", o->quality) < 0))
		goto oom;
	snprintf(words, wordslen, "%s photo %ux%u (%zu bytes), %zu "
	    "reference(s), size %s", original ? "original" : "re-encoded",
	    req->image.width, req->image.height, photo_len, n_refs, size);
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(photo);
	free(text);
	return rc;
}

/* One images/edits call; retries are the host's, as genai's. */
static int
openai_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	struct openai *o = state;
	struct curl_slist *headers = NULL;
	struct hosted_call c;
	curl_mime *form = NULL;
	CURL *curl = NULL;
	char url[640], auth[HOSTED_SECRET_MAX + 32], size[32] = "",
	    words[160] = "";
	int rc = FIRESYNC_ERROR;

	if (hosted_call_init(&c, &o->h, req, err, errlen) < 0)
		goto out;
	snprintf(url, sizeof(url), "%s/v1/images/edits", o->h.endpoint);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->key);
	headers = curl_slist_append(NULL, auth);
	OPENSSL_cleanse(auth, sizeof(auth));
	if (headers == NULL || (curl = hosted_easy(&c, url, headers)) ==
	    NULL || (form = curl_mime_init(curl)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (build_form(o, req, form, size, sizeof(size), words,
	    sizeof(words), err, errlen) < 0)
		goto out;
	curl_easy_setopt(curl, CURLOPT_MIMEPOST, form);
	hosted_perform(&c, curl);
	if (hosted_transport_failed(&c, res, &rc, err, errlen))
		goto out;
	rc = openai_reply(&c, c.reply.p, c.reply.len, res, err, errlen);
out:
	hosted_call_done(&c, rc, res, words, err);
	curl_easy_cleanup(curl);
	curl_mime_free(form);
	hosted_free_headers(headers);
	return rc;
}

static const char *const default_models[] = { "gpt-image-1", NULL };

const struct firesync_plugin firesync_plugin = {
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
	.abi_minor = 3,			/* configured_models, flags,
					   result.service */
	.struct_size = sizeof(struct firesync_plugin),
	.name = "openai",
	.version = PACKAGE_VERSION,
	.vendor = "firesync",
	.license = "MIT",
	.models = default_models,
	.init = openai_init,
	.transform = openai_transform,
	.fini = openai_fini,
	.configured_models = openai_models,
	.flags = FIRESYNC_PLUGIN_REMOTE,
};
