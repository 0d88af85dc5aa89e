/*
 * gemini.h - a loopback stand-in for the Gemini API's generateContent, for
 * tests of the genai plugin: Debian's nginx with TLS (a test CA made at
 * test time) in front of a small HTTP server in a child process that
 * follows the published request and response shapes.
 *
 * The server checks the x-goog-api-key header and the request's
 * structure (a text part, then JPEG inlineData parts that decode, the
 * IMAGE response modality, an accepted aspect ratio) and answers 400 like
 * the service when something is off.  Otherwise it answers with the
 * photo, cropped near the aspect ratio asked for (a few pixels off, as
 * the service's own sizes are) and inverted, as a PNG: a test can tell
 * the result came from its request.  Markers in the prompt choose other
 * answers:
 *   [safety]        promptFeedback.blockReason SAFETY, no candidates
 *   [image-safety]  a candidate with finishReason IMAGE_SAFETY, no image
 *   [text]          a candidate with only a text part
 *   [429xN]         429 for the first N requests with this prompt
 *   [500]           500, always
 *   [notjson]       200 with an HTML page
 *   [huge]          200 with 48 MB of JSON
 *   [webp]          an image/webp part
 *   [gate]          held until gemini_open_gate (two minutes at most)
 *   [quota]         (OpenAI) 429 insufficient_quota
 *   [url]           (OpenAI) a URL instead of b64_json
 *
 * The same server answers two more APIs the same way:
 *   - Vertex AI's generateContent at /v1/projects/P/locations/L/
 *     publishers/google/models/M:generateContent, which needs
 *     "Authorization: Bearer T" with the token gemini_token set (401
 *     otherwise; project "denied" gets 403);
 *   - OpenAI's images/edits at /v1/images/edits, which needs "Bearer KEY"
 *     and a multipart body (model, prompt, image[] parts that decode,
 *     size 1024x1024, 1536x1024 or 1024x1536, output_format png) and
 *     answers b64_json: the photo inverted, cropped to the size's shape;
 *     [safety] there is 400 moderation_blocked.
 * Each request is logged as one line (see gemini_count), with key=ok
 * when it carried exactly one credential and the right one, creds=N
 * (the credential headers it carried), and inflight=N: the requests
 * being answered when it arrived, itself included.  Each connection is served on a thread of its own, so calls
 * overlap as they do at the service.
 */
#ifndef FIRESYNC_GEMINI_H
#define FIRESYNC_GEMINI_H

#include <sys/types.h>

#include "httpd.h"

struct gemini {
	struct nginx nx;	/* the TLS front: nx.endpoint, nx.ca */
	pid_t pid;		/* the server behind it */
	int port;
	char log[128];		/* one line per request */
};

/* Start both, accepting key.  0, or -1 with the reason on stderr. */
int gemini_start(struct gemini *g, const char *key);
/* The same, with every answer sent latency_ms after its request: a
 * hosted model's seconds. */
int gemini_start_slow(struct gemini *g, const char *key, int latency_ms);
/* The most requests being answered at once so far (the log's highest
 * inflight=N). */
int gemini_peak(const struct gemini *g);
/* Let every [gate] request, held or to come, be answered. */
void gemini_open_gate(const struct gemini *g);
/* How the whole service answers from the next request on: "503" (an
 * outage), "429" (rate limited), "503 N" or "429 N" (with Retry-After:
 * N); NULL:
 * normally again.  Such answers are logged "-> 503 (mode)". */
void gemini_mode(const struct gemini *g, const char *mode);
/* The access token Vertex requests must carry from now on. */
void gemini_token(const struct gemini *g, const char *token);
void gemini_stop(struct gemini *g);
/* Requests logged so far whose line holds needle, e.g. "images=3". */
int gemini_count(const struct gemini *g, const char *needle);

#endif
