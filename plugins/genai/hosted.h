/*
 * hosted.h - what the bundled hosted-model plugins (genai, vertex,
 * openai) share: their configuration keys, the photo made ready to leave
 * the booth (upright, cropped, metadata removed), one HTTPS call with
 * libcurl, and one table of failures, so every provider's guest messages
 * and log lines read the same.
 *
 * Built on the public plugin ABI only: the example a vendor of a
 * networked model can read (docs/plugins.md).
 */
#ifndef FIRESYNC_HOSTED_H
#define FIRESYNC_HOSTED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "buf.h"
#include "firesync/plugin.h"

#define HOSTED_MODELS_MAX	16
#define HOSTED_REPLY_MAX	(32u << 20)	/* a reply, JSON with base64 */
#define HOSTED_SECRET_MAX	512		/* an API key */
#define HOSTED_REFS_MAX		8		/* reference images sent */

struct hosted {
	const struct firesync_host *host;
	const char *plugin;		/* "genai": for messages */
	char *endpoint;			/* without a trailing '/' */
	const char *ca_file;		/* NULL: the system's CAs */
	long timeout_ms;		/* one call */
	char *model_buf;
	const char *models[HOSTED_MODELS_MAX + 1];
	/* connections, TLS sessions and DNS answers shared by the calls,
	 * which run on threads of their own (FIRESYNC_PLUGIN_REMOTE) */
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	bool locks_made;
};

/* What a plugin's section must and may say. */
struct hosted_setup {
	const char *plugin;		/* the section: [plugin.NAME] */
	const char *default_endpoint;	/* NULL: endpoint must be given */
	const char *default_models;	/* NULL: models must be given */
	const char *credential_key;	/* "api-key-file" */
	const char *not_configured;	/* the message when it is missing */
};

/*
 * Read the keys every hosted plugin has: endpoint, ca-file, timeout,
 * models and network, and the credential key's presence; start libcurl.
 * *credential gets the credential file's path.  0, or -1 with err (then
 * hosted_fini frees what was made).
 */
int hosted_init(struct hosted *h, const struct firesync_host *host,
    const struct firesync_config *config, const struct hosted_setup *s,
    const char **credential, char *err, size_t errlen);
void hosted_fini(struct hosted *h);
/* "what = V": a whole number from min to max into *out (left alone when
 * v is NULL). */
int hosted_long(const char *what, const char *v, long min, long max,
    long *out, char *err, size_t errlen);
/*
 * A secret's file: absolute, ours alone (chmod 600), one line of
 * printable characters that fits in out.  what names the key in err.
 */
int hosted_read_secret(const char *what, const char *path, char *out,
    size_t max, char *err, size_t errlen);
/* An identifier for a URL path: [a-z0-9-], 1 to 63 characters. */
bool hosted_valid_id(const char *s);

/* ---- the images ---- */

struct hosted_jpeg {
	unsigned char *data;
	unsigned long len;
};

/* img, area-averaged by an integer factor, as a JPEG; alpha composited
 * over white.  0 or -1. */
int hosted_encode_jpeg(const struct firesync_image *img, uint32_t factor,
    int quality, struct hosted_jpeg *out);
/*
 * The photo to send, at most max bytes: the guest's original JPEG with
 * its metadata removed (EXIF with the phone's GPS position, XMP,
 * comments) when the host did not have to turn or crop it, else the
 * upright, cropped photo re-encoded, scaled down until it fits.  0 or
 * -1; *out is malloc'd.
 */
int hosted_photo_jpeg(const struct firesync_request *req, size_t max,
    uint32_t max_side, uint8_t **out, size_t *outlen, bool *original);
/* Copy a JPEG without its metadata segments into out (as big as src);
 * its size and EXIF orientation into the others.  0, or -1 if it is not
 * a JPEG this can read. */
int hosted_jpeg_strip(const uint8_t *src, size_t len, uint8_t *out,
    size_t *outlen, uint32_t *width, uint32_t *height, int *orientation);

/* data as base64, straight into b (it needs no JSON escaping). */
int hosted_base64(struct buf *b, const uint8_t *data, size_t len);
/* Decode base64 (standard or URL-safe alphabet, padded or not) into
 * memory from host->alloc; NULL if it is not base64. */
uint8_t *hosted_unbase64(const struct firesync_host *host, const char *s,
    size_t len, size_t *outlen);
/* The JSON text of s, quoted (malloc'd); NULL if s is not valid UTF-8. */
char *hosted_json_quote(const char *s);
/* The system prompt, a blank line and the experience's prompt
 * (malloc'd); NULL with err when there is none or out of memory. */
char *hosted_prompt(const char *system_prompt, const char *prompt,
    char *err, size_t errlen);

/* ---- the failures, one table for every provider ---- */

enum hosted_failure {
	HOSTED_REFUSED,		/* blocked for safety */
	HOSTED_NO_IMAGE,	/* an answer without an image */
	HOSTED_RATE_LIMITED,	/* 429: slow down */
	HOSTED_QUOTA,		/* the account's quota or credit is spent */
	HOSTED_UNAVAILABLE,	/* 5xx */
	HOSTED_BAD_KEY,		/* 401, 403: the key or its role */
	HOSTED_NO_MODEL,	/* 404 */
	HOSTED_BAD_REQUEST,	/* another 4xx */
	HOSTED_UNREADABLE,	/* not JSON, no image that decodes */
};

/* A reason from the service, fit for a guest's screen: [A-Z_], short. */
void hosted_reason(const char *s, char *out, size_t len);
/* Whether a finish or block reason means the model refused (safety). */
bool hosted_refusal(const char *reason);
/* Tell the host what the service said (ABI 1.3). */
void hosted_say(struct firesync_result *res, uint32_t service,
    long retry_after_s);
void hosted_tokens(struct firesync_result *res, int64_t in, int64_t out);

/* ---- one call ---- */

struct hosted_call {
	struct hosted *h;
	const struct firesync_request *req;
	struct buf reply;
	long status;			/* HTTP; 0 if none came */
	long retry_after_s;		/* -1: none */
	long timeout_ms;
	bool cancelled;
	CURLcode cc;
	char curlerr[CURL_ERROR_SIZE];
	struct timespec t0;
};

/* Start a call: the time it may take, within the transform's deadline.
 * -1 with err when too little is left. */
int hosted_call_init(struct hosted_call *c, struct hosted *h,
    const struct firesync_request *req, char *err, size_t errlen);
/* A curl handle for url with every option the calls share; NULL when
 * out of memory. */
CURL *hosted_easy(struct hosted_call *c, const char *url,
    const struct curl_slist *headers);
/* Run it: status, retry_after_s, reply.  Again on the same handle
 * starts afresh. */
void hosted_perform(struct hosted_call *c, CURL *curl);
/*
 * The call did not get an HTTP answer to read (cancelled, the reply too
 * large, or the service unreachable): *rc, err, the log and what the
 * host is told are set, and it returns true.
 */
bool hosted_transport_failed(struct hosted_call *c,
    struct firesync_result *res, int *rc, char *err, size_t errlen);
/*
 * The service said no: the guest's message into err, what the host is
 * told into res, and one log line with the service's own message and
 * what to do (advice, or the table's).
 */
void hosted_fail(struct hosted_call *c, enum hosted_failure f,
    const char *detail, const char *service_message, const char *advice,
    struct firesync_result *res, char *err, size_t errlen);
/* The failure an HTTP status that is not 200 means. */
enum hosted_failure hosted_failure_of(long status);
/* Free a call's request headers, wiping each first: they hold the key
 * or the token. */
void hosted_free_headers(struct curl_slist *headers);
/* The end of a call: its log line (what was sent, in how long) and the
 * memory it held. */
void hosted_call_done(struct hosted_call *c, int rc,
    const struct firesync_result *res, const char *sent, const char *err);

#endif
