/*
 * token.h - OAuth2 access tokens for Google APIs, as Application Default
 * Credentials provide them: a service account key file (a JWT signed with
 * RS256, exchanged at the key's token endpoint) or the metadata server of
 * the VM.  Tokens are cached until shortly before they expire.
 * Thread-safe.  Tokens and keys are never logged.
 */
#ifndef FIRESYNC_TOKEN_H
#define FIRESYNC_TOKEN_H

#include <stddef.h>
#include <stdint.h>

struct token_source;

/*
 * From a service account key file.  Refuses a file readable by group or
 * others (the message says how to fix it), or one that is not a service
 * account key.  scope: space-separated OAuth scopes.  NULL + err on
 * failure.
 */
struct token_source *token_source_key_file(const char *path,
    const char *scope, char *err, size_t errlen);
/* From the GCE metadata server: base_url, else the host in
 * $GCE_METADATA_HOST, else the real one. */
struct token_source *token_source_metadata(const char *base_url,
    const char *scope);
void token_source_free(struct token_source *ts);


/* The key's project_id, or NULL (borrowed). */
const char *token_source_project(const struct token_source *ts);

/*
 * A valid access token (malloc'd copy; caller frees), fetched or from the
 * cache.  NULL + err on failure.
 */
char *token_get(struct token_source *ts, char *err, size_t errlen);
/* The same; on failure *http is the token endpoint's HTTP status (0 when
 * it did not answer), so a refused key can be told from an outage. */
char *token_fetch(struct token_source *ts, long *http, char *err,
    size_t errlen);

/*
 * The cached token if it is good for at least min_s more seconds, without
 * ever waiting: NULL when there is none, or when a fetch is under way
 * (caller frees).
 */
char *token_peek(struct token_source *ts, int min_s);

/*
 * A server refused token (401): drop it from the cache, so the next
 * token_get fetches a new one.  A token already replaced is left alone.
 */
void token_invalidate(struct token_source *ts, const char *token);

/*
 * The signed JWT assertion for time now (seconds since the epoch): for
 * tests and for the token exchange.  Caller frees.
 */
char *token_jwt(struct token_source *ts, int64_t now, char *err,
    size_t errlen);

/* Base64url without padding; caller frees.  */
char *b64url(const unsigned char *p, size_t n);

#endif
