/*
 * vertex.c - the vertex plugin: Gemini image models on Vertex AI, for
 * projects with a Google Cloud contract, Provisioned Throughput or data
 * that must stay in a region.  The same generateContent request as genai
 * (generate.c), sent to
 *   {endpoint}/v1/projects/{project}/locations/{location}/publishers/
 *       google/models/{model}:generateContent
 * with an OAuth2 access token of a service account of its own: a key
 * file (credentials-file) that should hold only the Vertex AI User role,
 * read inside the worker's sandbox, exchanged at the key's token_uri,
 * cached and refreshed five minutes before it expires (daemon/token.c).
 * Never the daemon's own Firestore credentials, never the metadata
 * server.  The token is never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "generate.h"
#include "hosted.h"
#include "token.h"

#define SCOPE "https://www.googleapis.com/auth/cloud-platform"

struct vertex {
	struct hosted h;
	const char *system_prompt;	/* NULL: none */
	const char *key_path;
	char project[64], location[64];
	struct token_source *ts;
};

static void vertex_fini(void *state);

static int
vertex_init(const struct firesync_host *host,
    const struct firesync_config *config, void **state, char *err,
    size_t errlen)
{
	static const struct hosted_setup setup = {
		.plugin = "vertex",
		.default_endpoint = NULL,	/* from the location */
		.default_models = "gemini-2.5-flash-image",
		.credential_key = "credentials-file",
		.not_configured = "not configured, so its models are not "
		    "served: name a chmod-600 service account key file (a "
		    "service account with only the Vertex AI User role) in "
		    "[plugin.vertex] credentials-file, with network = yes",
	};
	struct vertex *v = calloc(1, sizeof(*v));
	const char *project, *location;
	char url[160];

	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	*state = v;
	v->system_prompt = host->config_get(config, "system-prompt");
	project = host->config_get(config, "project");
	location = host->config_get(config, "location");
	if (location == NULL)
		location = "global";
	if (!hosted_valid_id(location)) {
		snprintf(err, errlen, "location = %.64s: give a Vertex AI "
		    "location such as global, us-central1 or europe-west4",
		    location);
		goto fail;
	}
	snprintf(v->location, sizeof(v->location), "%s", location);
	if (hosted_init(&v->h, host, config, &setup, &v->key_path, err,
	    errlen) < 0)
		goto fail;
	if (v->key_path[0] != '/') {
		snprintf(err, errlen, "credentials-file %.200s: give an "
		    "absolute path", v->key_path);
		goto fail;
	}
	v->ts = token_source_key_file(v->key_path, SCOPE, err, errlen);
	if (v->ts == NULL)
		goto fail;
	if (project == NULL)
		project = token_source_project(v->ts);
	if (project == NULL || !hosted_valid_id(project)) {
		snprintf(err, errlen, "project %.64s: give the Google Cloud "
		    "project ID in [plugin.vertex] project (the key file has "
		    "%s)", project ? project : "(none)", project ? "that" :
		    "no project_id");
		goto fail;
	}
	snprintf(v->project, sizeof(v->project), "%s", project);
	if (v->h.endpoint == NULL) {
		if (strcmp(v->location, "global") == 0)
			snprintf(url, sizeof(url),
			    "https://aiplatform.googleapis.com");
		else
			snprintf(url, sizeof(url), "https://%s-aiplatform."
			    "googleapis.com", v->location);
		v->h.endpoint = strdup(url);
		if (v->h.endpoint == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	host->log(FIRESYNC_LOG_INFO, "serving %s via %s, project %s, "
	    "location %s (timeout %lds)", host->config_get(config, "models") ?
	    host->config_get(config, "models") : setup.default_models,
	    v->h.endpoint, v->project, v->location, v->h.timeout_ms / 1000);
	return FIRESYNC_OK;
fail:
	vertex_fini(v);
	*state = NULL;
	return FIRESYNC_ERROR;
}

static const char *const *
vertex_models(void *state)
{
	struct vertex *v = state;

	return v->h.models;
}

static void
vertex_fini(void *state)
{
	struct vertex *v = state;

	if (v == NULL)
		return;
	token_source_free(v->ts);	/* cleanses the token */
	hosted_fini(&v->h);
	free(v);
}

/* The token into hdr as an Authorization header; false with err and the
 * host told when there is none. */
static bool
authorize(struct vertex *v, struct hosted_call *c, char *hdr, size_t len,
    struct firesync_result *res, char *err, size_t errlen)
{
	char terr[512];
	long http;
	char *tok = token_fetch(v->ts, &http, terr, sizeof(terr));
	bool refused = http >= 400 && http < 500;

	if (tok == NULL) {
		v->h.host->log(FIRESYNC_LOG_WARNING, "session=%s model=%s: no "
		    "access token for Vertex AI: %s; %s", c->req->session_id,
		    c->req->model, terr, refused ? "the service account key "
		    "in [plugin.vertex] credentials-file was refused (deleted "
		    "or disabled?)" : "the token endpoint did not answer");
		snprintf(err, errlen, refused ? "the AI service refused "
		    "firesync's key" : "cannot reach the AI service");
		hosted_say(res, refused ? FIRESYNC_SERVICE_REJECTED :
		    FIRESYNC_SERVICE_UNAVAILABLE, 0);
		return false;
	}
	snprintf(hdr, len, "Authorization: Bearer %s", tok);
	OPENSSL_cleanse(tok, strlen(tok));
	free(tok);
	return true;
}

/*
 * One generateContent call.  A 401 means the cached token was revoked
 * or expired early: it is dropped, a fresh one fetched, and the request
 * sent once more.
 */
static int
vertex_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	struct vertex *v = state;
	struct curl_slist *headers = NULL;
	struct buf body;
	struct generate_sent sent = { 0 };
	struct hosted_call c;
	CURL *curl = NULL;
	char url[1024], auth[4096], words[160] = "";
	int rc = FIRESYNC_ERROR;

	if (hosted_call_init(&c, &v->h, req, err, errlen) < 0) {
		buf_free(&c.reply);
		return FIRESYNC_ERROR;
	}
	if (generate_request(v->system_prompt, req, &body, &sent, err,
	    errlen) < 0)
		goto out;
	snprintf(url, sizeof(url), "%s/v1/projects/%s/locations/%s/publishers/"
	    "google/models/%s:generateContent", v->h.endpoint, v->project,
	    v->location, req->model);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!authorize(v, &c, auth, sizeof(auth), res, err, errlen))
			goto out;
		hosted_free_headers(headers);
		headers = curl_slist_append(NULL, "Content-Type: "
		    "application/json");
		if (headers)
			headers = curl_slist_append(headers, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
		curl_easy_cleanup(curl);
		if (headers == NULL || (curl = hosted_easy(&c, url,
		    headers)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.p);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)body.len);
		hosted_perform(&c, curl);
		if (c.cc != CURLE_OK || c.status != 401 || c.cancelled)
			break;
		/* the token is no longer good: a fresh one, once */
		v->h.host->log(FIRESYNC_LOG_INFO, "session=%s model=%s: "
		    "Vertex AI refused the access token (401)%s",
		    req->session_id, req->model, attempt == 0 ? "; fetching "
		    "a new one" : "");
		{
			const char *a = headers->next->data + strlen(
			    "Authorization: Bearer ");

			token_invalidate(v->ts, a);
		}
	}
	rc = generate_answer(&c, c.status == 403 ? "give the service "
	    "account of [plugin.vertex] credentials-file the Vertex AI User "
	    "role (roles/aiplatform.user) in the project, and enable the "
	    "Vertex AI API there" : "check [plugin.vertex] credentials-file",
	    res, err, errlen);
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
	.name = "vertex",
	.version = PACKAGE_VERSION,
	.vendor = "firesync",
	.license = "MIT",
	.models = default_models,
	.init = vertex_init,
	.transform = vertex_transform,
	.fini = vertex_fini,
	.configured_models = vertex_models,
	.flags = FIRESYNC_PLUGIN_REMOTE,
};
