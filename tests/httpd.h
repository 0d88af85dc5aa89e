/*
 * httpd.h - HTTP servers for tests of the Cloud Storage path, all on
 * loopback and started and stopped by the test:
 *   - Google's Cloud Storage for Firebase emulator (firebase-tools), with
 *     a stand-in for the rules a Firebase app deploys
 *     (tests/storage/emulator.mjs);
 *   - Debian's nginx with TLS (a test CA and a certificate for 127.0.0.1
 *     made here with openssl) in front of it, answering 401 to any API
 *     request not carrying "Authorization: Bearer <token>" and passing
 *     Firebase download URLs (/v0/) on as they come;
 *   - a token endpoint that hands out OAuth2 access tokens from a list.
 */
#ifndef FIRESYNC_HTTPD_H
#define FIRESYNC_HTTPD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct nginx {
	pid_t pid;
	int port;
	char dir[64];		/* config, certificates, logs, www/ */
	char ca[128];		/* the test CA's certificate */
	char endpoint[64];	/* https://127.0.0.1:PORT */
	int grpc_read_timeout_s;	/* gRPC front: 0 is an hour */
};

/*
 * Start nginx as a TLS front for the Storage emulator at storage_port,
 * accepting token ("~prefix": any token starting so) and passing the
 * emulator's admin token on.  While dir/www/.unavailable exists every
 * request gets 503, and while dir/www/.noput exists every upload (POST)
 * does.  Returns 0, or -1 with the reason on stderr (nginx or openssl
 * missing).
 */
int nginx_start(struct nginx *n, const char *token, int storage_port);
/*
 * The same server as a TLS gRPC front (HTTP/2) for the Firestore emulator
 * at grpc_port: requests without "Bearer <token>" get 401 (gRPC reads
 * UNAUTHENTICATED); the others go on with the emulator's admin token.
 * Set n->grpc_read_timeout_s first to make it close quiet streams.
 */
int nginx_start_grpc(struct nginx *n, const char *token, int grpc_port);
/* The same server as a TLS front for a plain HTTP server on loopback at
 * http_port; no token is checked here. */
int nginx_start_proxy(struct nginx *n, int http_port);
void nginx_stop(struct nginx *n);
/* Lines of nginx's access log holding needle. */
int nginx_log_count(const struct nginx *n, const char *needle);
/* The same, once it reaches want or after 2 s (nginx logs a request just
 * after answering it). */
int nginx_log_wait(const struct nginx *n, const char *needle, int want);

/* Google's Storage emulator, on loopback. */
struct storage_emu {
	pid_t pid;
	int port;
	char host[32];		/* 127.0.0.1:PORT, as STORAGE_EMULATOR_HOST */
	char url[48];		/* http://127.0.0.1:PORT */
	char log[64];		/* its output */
};

/* Start it (node and the firebase-tools package that make check
 * installs).  0, or -1 with the reason on stderr. */
int storage_emu_start(struct storage_emu *e);
void storage_emu_stop(struct storage_emu *e);
/* Store an object as the web app's backend would (the admin token): a
 * capture, a reference.  0, or -1 with the reason on stderr. */
int storage_emu_put(const struct storage_emu *e, const char *bucket,
    const char *name, const uint8_t *data, size_t len, const char *type);
/* The object's metadata (the JSON API's object resource), malloc'd; NULL
 * if there is none. */
char *storage_emu_metadata(const struct storage_emu *e, const char *bucket,
    const char *name);

/*
 * GET url with no credentials, as a browser opening a link would (ca:
 * the CA to trust for https, or NULL).  The HTTP status, or -1; the body
 * into *body (malloc'd) when body is not NULL.
 */
long http_get(const char *url, const char *ca, uint8_t **body, size_t *len);

struct tokend {
	int fd, port;
	pthread_t thread;
	const char *const *tokens;	/* handed out in order; the last one
					   repeats; none: tok-0, tok-1... */
	int n_tokens, served;
	int expires_in;			/* seconds; 0 is an hour */
	atomic_bool down;		/* set: hang up on every request */
	char url[64];			/* http://127.0.0.1:PORT/token */
	/* tokend_verify: assertions not signed by this key are refused */
	char key_pem[256];
	atomic_bool verify;
	atomic_int refused;		/* assertions refused so far */
	char issuer[128];		/* the last good assertion's iss */
};

/* Serve tokens until tokend_stop (set t->expires_in before, or not);
 * it also answers as a metadata server (any GET). */
void tokend_start(struct tokend *t, const char *const *tokens, int n);
void tokend_stop(struct tokend *t);
/*
 * From now on hand tokens out only for JWT assertions (RS256) signed by
 * the private key in pem_path, as Google's endpoint does for a key it
 * knows; others get 400 invalid_grant and count in t->refused.
 */
void tokend_verify(struct tokend *t, const char *pem_path);

/*
 * A service account key file (mode 600, a fresh RSA key) whose token_uri
 * is url, written into dir; its path (static buffer).
 */
const char *test_key_file(const char *dir, const char *url);

#endif
