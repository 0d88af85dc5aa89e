/*
 * genai.c - the genai plugin: the guest's photo, the experience's prompt
 * and its reference images to a hosted image model through the Gemini
 * API's generateContent, with an API key, and the image it answers with
 * back as the result.
 *
 * Built on the public plugin ABI only, with libcurl (HTTPS), jansson
 * (JSON), libjpeg (re-encoding) and OpenSSL's base64: the example a vendor
 * of a networked model can read.  docs/plugins.md walks through it.
 *
 * One transform is one generateContent call.  Its calls run on threads of
 * their own (FIRESYNC_PLUGIN_REMOTE); retries, the provider-wide backoff
 * and the fallback look are the host's, told what the service said.
 * Nothing is written to disk; the request, the reply and the image are
 * held in memory within the limits in hosted.h and generate.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "hosted.h"

#define DEFAULT_ENDPOINT "https://generativelanguage.googleapis.com"

struct genai {
	struct hosted h;
	const char *system_prompt;	/* NULL: none */
	char key[HOSTED_SECRET_MAX];
};

static void genai_fini(void *state);

static int
genai_init(const struct firesync_host *host,
    const struct firesync_config *config, void **state, char *err,
    size_t errlen)
{
	static const struct hosted_setup setup = {
		.plugin = "genai",
		.default_endpoint = DEFAULT_ENDPOINT,
		.default_models = "gemini-2.5-flash-image",
		.credential_key = "api-key-file",
		.not_configured = "not configured, so its models are not "
		    "served: name a chmod-600 file holding a Gemini API key "
		    "in [plugin.genai] api-key-file, with network = yes",
	};
	struct genai *g = calloc(1, sizeof(*g));
	const char *key_file;

	if (g == NULL) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	*state = g;
	g->system_prompt = host->config_get(config, "system-prompt");
	if (hosted_init(&g->h, host, config, &setup, &key_file, err,
	    errlen) < 0 || hosted_read_secret("api-key-file", key_file, g->key,
	    sizeof(g->key), err, errlen) < 0) {
		genai_fini(g);
		*state = NULL;
		return FIRESYNC_ERROR;
	}
	host->log(FIRESYNC_LOG_INFO, "serving %s via %s (timeout %lds)",
	    host->config_get(config, "models") ? host->config_get(config,
	    "models") : setup.default_models, g->h.endpoint,
	    g->h.timeout_ms / 1000);
	return FIRESYNC_OK;
}

static const char *const *
genai_models(void *state)
{
	struct genai *g = state;

	return g->h.models;
}

static void
genai_fini(void *state)
{
	struct genai *g = state;

	if (g == NULL)
		return;
	hosted_fini(&g->h);
	/* the key does not linger in freed memory */
	memset(g->key, 0, sizeof(g->key));
	free(g);
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
	struct generate_sent sent = { 0 };
	struct hosted_call c;
	CURL *curl = NULL;
	char url[768], keyhdr[HOSTED_SECRET_MAX + 32], words[160] = "";
	int rc = FIRESYNC_ERROR;

	if (hosted_call_init(&c, &g->h, req, err, errlen) < 0) {
		buf_free(&c.reply);
		return FIRESYNC_ERROR;
	}
	if (generate_request(g->system_prompt, req, &body, &sent, err,
	    errlen) < 0)
		goto out;
	snprintf(url, sizeof(url), "%s/v1beta/models/%s:generateContent",
	    g->h.endpoint, req->model);
	snprintf(keyhdr, sizeof(keyhdr), "x-goog-api-key: %s", g->key);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, keyhdr);
	memset(keyhdr, 0, sizeof(keyhdr));
	if (headers == NULL || (curl = hosted_easy(&c, url, headers)) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.p);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)body.len);
	hosted_perform(&c, curl);
	rc = generate_answer(&c, "check [plugin.genai] api-key-file and that "
	    "the key may use the Gemini API", res, err, errlen);
	generate_sent_words(&sent, words, sizeof(words));
out:
	hosted_call_done(&c, rc, res, words, err);
	curl_easy_cleanup(curl);
	hosted_free_headers(headers);
	buf_free(&body);
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
