/*
 * httpd.h - HTTP servers for tests of the Cloud Storage path, all on
 * loopback and started and stopped by the test:
 *   - Debian's nginx with TLS (a test CA and a certificate for 127.0.0.1
 *     made here with openssl), serving a bucket directory with WebDAV PUT
 *     and plain GET, and answering 401 to any request not carrying
 *     "Authorization: Bearer <token>";
 *   - a token endpoint that hands out OAuth2 access tokens from a list.
 */
#ifndef FIRESYNC_HTTPD_H
#define FIRESYNC_HTTPD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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
 * Start nginx accepting token ("~prefix": any token starting so).  Objects live in dir/www/BUCKET/...; while
 * dir/www/.unavailable exists every request gets 503, and while
 * dir/www/.noput exists every PUT does.  Returns 0, or -1
 * with the reason on stderr (nginx or openssl missing).
 */
int nginx_start(struct nginx *n, const char *token);
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

struct tokend {
	int fd, port;
	pthread_t thread;
	const char *const *tokens;	/* handed out in order; the last one
					   repeats; none: tok-0, tok-1... */
	int n_tokens, served;
	int expires_in;			/* seconds; 0 is an hour */
	atomic_bool down;		/* set: hang up on every request */
	char url[64];			/* http://127.0.0.1:PORT/token */
};

/* Serve tokens until tokend_stop (set t->expires_in before, or not);
 * it also answers as a metadata server (any GET). */
void tokend_start(struct tokend *t, const char *const *tokens, int n);
void tokend_stop(struct tokend *t);

/*
 * A service account key file (mode 600, a fresh RSA key) whose token_uri
 * is url, written into dir; its path (static buffer).
 */
const char *test_key_file(const char *dir, const char *url);

#endif
