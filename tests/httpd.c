/*
 * httpd.c - nginx with TLS and a token endpoint, for tests (httpd.h).
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "emulator.h"
#include "httpd.h"
#include "store.h"

static int
run(const char *cmd)
{
	int rc = system(cmd);

	if (rc != 0)
		fprintf(stderr, "httpd: '%s' failed (%d)\n", cmd, rc);
	return rc;
}

/* A CA, and a certificate it signs for 127.0.0.1. */
static int
make_certs(const char *dir)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
	    "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
	    "-subj /CN=firesync-test-ca -keyout ca.key -out ca.crt "
	    ">/dev/null 2>&1 && "
	    "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
	    "-keyout server.key -out server.csr >/dev/null 2>&1 && "
	    "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
	    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
	    "-CAcreateserial -days 2 -extfile san.ext -out server.crt "
	    ">/dev/null 2>&1", dir);
	return run(cmd);
}

static int nginx_start_front(struct nginx *n, const char *token,
    int grpc_port, int http_port, int storage_port);

int
nginx_start(struct nginx *n, const char *token, int storage_port)
{
	return nginx_start_front(n, token, 0, 0, storage_port);
}

int
nginx_start_grpc(struct nginx *n, const char *token, int grpc_port)
{
	return nginx_start_front(n, token, grpc_port, 0, 0);
}

int
nginx_start_proxy(struct nginx *n, int http_port)
{
	return nginx_start_front(n, NULL, 0, http_port, 0);
}

static int
nginx_start_front(struct nginx *n, const char *token, int grpc_port,
    int http_port, int storage_port)
{
	char path[256], cmd[512], location[512], open_location[512] = "";
	bool regex = token && token[0] == '~';
	FILE *f;

	if (regex)
		token++;	/* "~tok-": any token starting so */
	if (access("/usr/sbin/nginx", X_OK) != 0) {
		fprintf(stderr, "httpd: /usr/sbin/nginx is missing: "
		    "apt-get install nginx\n");
		return -1;
	}
	snprintf(n->dir, sizeof(n->dir), "/tmp/fsnginx-XXXXXX");
	if (mkdtemp(n->dir) == NULL || make_certs(n->dir) != 0)
		return -1;
	snprintf(n->ca, sizeof(n->ca), "%s/ca.crt", n->dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/www %s/tmp", n->dir, n->dir);
	if (run(cmd) != 0)
		return -1;
	n->port = free_port();
	if (grpc_port)
		/* a TLS front for the emulator: the token is checked here,
		 * and the emulator gets its own admin token */
		snprintf(location, sizeof(location),
		    "      grpc_set_header Authorization \"Bearer owner\";\n"
		    "      grpc_read_timeout %ds;\n"
		    "      grpc_send_timeout 3600s;\n"
		    "      grpc_pass grpc://127.0.0.1:%d;\n",
		    n->grpc_read_timeout_s > 0 ? n->grpc_read_timeout_s : 3600,
		    grpc_port);
	else if (http_port)
		/* a TLS front for a plain HTTP test server, which checks
		 * what it needs itself */
		snprintf(location, sizeof(location),
		    "      proxy_pass http://127.0.0.1:%d;\n"
		    "      proxy_read_timeout 120s;\n"
		    "      proxy_buffering off;\n", http_port);
	else	/* storage_port */
		snprintf(location, sizeof(location),
		    "      proxy_set_header Authorization \"Bearer owner\";\n"
		    "      proxy_pass http://127.0.0.1:%d;\n", storage_port);
	if (storage_port) {
		/* Cloud Storage's JSON API (above): the token is checked
		 * here, and the emulator gets its own admin token.  Firebase
		 * download URLs go on as they come: their token opens them. */
		snprintf(open_location, sizeof(open_location),
		    "    location /v0/ {\n"
		    "      if (-f %s/www/.unavailable) { return 503; }\n"
		    "      proxy_pass http://127.0.0.1:%d;\n"
		    "    }\n", n->dir, storage_port);
	}
	snprintf(n->endpoint, sizeof(n->endpoint), "https://127.0.0.1:%d",
	    n->port);
	snprintf(path, sizeof(path), "%s/nginx.conf", n->dir);
	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fprintf(f,
	    "daemon off;\n"
	    "%4$s"
	    "worker_processes 1;\n"
	    "pid %1$s/nginx.pid;\n"
	    "error_log %1$s/error.log;\n"
	    "events { worker_connections 1024; }\n"
	    "http {\n"
	    "  log_format t '$request_method $uri $status "
	    "ct=$http_content_type cc=$http_cache_control args=$args';\n"
	    "  access_log %1$s/access.log t;\n"
	    "  client_body_temp_path %1$s/tmp;\n"
	    "  proxy_temp_path %1$s/tmp;\n"
	    "  fastcgi_temp_path %1$s/tmp;\n"
	    "  uwsgi_temp_path %1$s/tmp;\n"
	    "  scgi_temp_path %1$s/tmp;\n"
	    "  map $http_authorization $authorised {\n"
	    "    \"%7$sBearer %2$s\" 1;\n"
	    "    default 0;\n"
	    "  }\n"
	    "  server {\n"
	    "    listen 127.0.0.1:%3$d ssl%5$s;\n"
	    "    ssl_certificate %1$s/server.crt;\n"
	    "    ssl_certificate_key %1$s/server.key;\n"
	    "    root %1$s/www;\n"
	    "    client_max_body_size 300m;\n"
	    "    location / {\n"
	    "      if (-f %1$s/www/.unavailable) { return 503; }\n"
	    "      set $noput \"\";\n"
	    "      if (-f %1$s/www/.noput) { set $noput x; }\n"
	    "      if ($request_method = POST) { set $noput \"${noput}y\"; }\n"
	    "      if ($noput = xy) { return 503; }\n"
	    "%8$s"
	    "%6$s"
	    "    }\n"
	    "%9$s"
	    "  }\n"
	    "}\n", n->dir, token ? token : "-", n->port,
	    /* as root, workers would drop to www-data: keep them ours */
	    geteuid() == 0 ? "user root root;\n" : "",
	    grpc_port ? " http2" : "", location, regex ? "~^" : "",
	    token ? "      if ($authorised = 0) { return 401; }\n" : "",
	    open_location);
	fclose(f);
	n->pid = fork();
	if (n->pid < 0)
		return -1;
	if (n->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);	/* never outlive the test */
		snprintf(cmd, sizeof(cmd), "%s/stderr.log", n->dir);
		if (freopen(cmd, "w", stderr) == NULL)
			_exit(127);
		execl("/usr/sbin/nginx", "nginx", "-c", path, "-p", n->dir,
		    "-e", "stderr", (char *)NULL);
		_exit(127);
	}
	/* ready once it accepts connections */
	for (int i = 0; i < 500; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
		    .sin_port = htons((uint16_t)n->port),
		    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a,
		    sizeof(a)) == 0;

		if (fd >= 0)
			close(fd);
		if (ok)
			return 0;
		if (waitpid(n->pid, NULL, WNOHANG) == n->pid) {
			fprintf(stderr, "httpd: nginx exited; see %s/"
			    "stderr.log\n", n->dir);
			n->pid = 0;
			return -1;
		}
		sleep_ms(20);
	}
	nginx_stop(n);
	return -1;
}

void
nginx_stop(struct nginx *n)
{
	char cmd[128];

	if (n->pid > 0) {
		kill(n->pid, SIGTERM);
		waitpid(n->pid, NULL, 0);
		n->pid = 0;
	}
	if (n->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", n->dir);
		(void)!system(cmd);
		n->dir[0] = '\0';
	}
}

int
nginx_log_wait(const struct nginx *n, const char *needle, int want)
{
	int c = 0;

	/* nginx writes the line just after it answers */
	for (int i = 0; i < 200 && (c = nginx_log_count(n, needle)) < want;
	    i++)
		sleep_ms(10);
	return c;
}

int
nginx_log_count(const struct nginx *n, const char *needle)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/access.log", n->dir);
	return log_count(path, needle);
}

/* base64url into out (malloc'd); NULL if it is not. */
static uint8_t *
unb64url(const char *s, size_t len, size_t *outlen)
{
	size_t padded = (len + 3) / 4 * 4, pad = padded - len;
	char *in = malloc(padded + 1);
	uint8_t *out = malloc(padded / 4 * 3 + 1);
	int n;

	for (size_t i = 0; i < len; i++)
		in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	memset(in + len, '=', pad);
	in[padded] = '\0';
	n = EVP_DecodeBlock(out, (unsigned char *)in, (int)padded);
	free(in);
	if (n < 0 || (size_t)n < pad) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)n - pad;
	out[*outlen] = '\0';
	return out;
}

/*
 * Whether the request's assertion is a JWT signed (RS256) by the key in
 * pem, for the cloud-platform scope; its iss into issuer.
 */
static bool
assertion_ok(const char *req, const char *pem, char *issuer, size_t len)
{
	const char *a = strstr(req, "assertion="), *dot1, *dot2, *end;
	uint8_t *claims = NULL, *sig = NULL;
	size_t clen, slen;
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	json_t *j = NULL;
	FILE *f;
	bool ok = false;

	if (a == NULL)
		return false;
	a += 10;
	end = a + strcspn(a, "&\r\n");
	dot1 = memchr(a, '.', (size_t)(end - a));
	dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
	if (dot2 == NULL)
		return false;
	claims = unb64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), &clen);
	sig = unb64url(dot2 + 1, (size_t)(end - dot2 - 1), &slen);
	if (claims == NULL || sig == NULL || (f = fopen(pem, "r")) == NULL)
		goto out;
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	md = EVP_MD_CTX_new();
	if (key == NULL || md == NULL || EVP_DigestVerifyInit(md, NULL,
	    EVP_sha256(), NULL, key) != 1 || EVP_DigestVerify(md, sig, slen,
	    (const unsigned char *)a, (size_t)(dot2 - a)) != 1)
		goto out;
	j = json_loads((char *)claims, 0, NULL);
	if (json_string_value(json_object_get(j, "scope")) == NULL ||
	    strstr(json_string_value(json_object_get(j, "scope")),
	    "cloud-platform") == NULL)
		goto out;
	snprintf(issuer, len, "%s", json_string_value(json_object_get(j,
	    "iss")) ? json_string_value(json_object_get(j, "iss")) : "");
	ok = true;
out:
	json_decref(j);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	free(claims);
	free(sig);
	return ok;
}

static void *
tokend_main(void *arg)
{
	struct tokend *t = arg;

	for (;;) {
		int c = accept(t->fd, NULL, NULL);
		char req[8192], body[256], resp[512], fresh[32];
		const char *tok;
		ssize_t got = 0, r;

		if (c < 0)
			return NULL;
		if (atomic_load(&t->down)) {	/* as if it were not there */
			close(c);
			continue;
		}
		/* the whole request: headers, then Content-Length bytes */
		while (got < (ssize_t)sizeof(req) - 1 &&
		    (r = read(c, req + got, sizeof(req) - 1 - (size_t)got)) > 0) {
			char *end, *cl;

			got += r;
			req[got] = '\0';
			if ((end = strstr(req, "\r\n\r\n")) == NULL)
				continue;
			cl = strcasestr(req, "Content-Length:");
			if (cl == NULL || (ssize_t)strlen(end + 4) >=
			    atol(cl + 15))
				break;
		}
		if (atomic_load(&t->verify) && !assertion_ok(req,
		    t->key_pem, t->issuer, sizeof(t->issuer))) {
			static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
			    "Content-Type: application/json\r\n"
			    "Content-Length: 60\r\nConnection: close\r\n\r\n"
			    "{\"error\":\"invalid_grant\",\"error_description\":"
			    "\"Invalid JWT.\"}";

			atomic_fetch_add(&t->refused, 1);
			(void)!write(c, bad, strlen(bad));
			close(c);
			continue;
		}
		if (t->n_tokens > 0) {
			tok = t->tokens[t->served < t->n_tokens ? t->served :
			    t->n_tokens - 1];
		} else {
			snprintf(fresh, sizeof(fresh), "tok-%d", t->served);
			tok = fresh;
		}
		t->served++;
		snprintf(body, sizeof(body), "{\"access_token\":\"%s\","
		    "\"expires_in\":%d,\"token_type\":\"Bearer\"}", tok,
		    t->expires_in > 0 ? t->expires_in : 3600);
		snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\nConnection: "
		    "close\r\n\r\n%s", strlen(body), body);
		(void)!write(c, resp, strlen(resp));
		close(c);
	}
}

void
tokend_start(struct tokend *t, const char *const *tokens, int n)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	t->tokens = tokens;
	t->n_tokens = n;
	t->served = 0;	/* expires_in is the caller's */
	atomic_store(&t->down, false);
	atomic_store(&t->verify, false);
	atomic_store(&t->refused, 0);
	t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->fd < 0 || bind(t->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(t->fd, 16) < 0 ||
	    getsockname(t->fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	t->port = ntohs(a.sin_port);
	snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d/token",
	    t->port);
	pthread_create(&t->thread, NULL, tokend_main, t);
}

void
tokend_stop(struct tokend *t)
{
	shutdown(t->fd, SHUT_RDWR);
	close(t->fd);
	pthread_join(t->thread, NULL);
}

void
tokend_verify(struct tokend *t, const char *pem_path)
{
	snprintf(t->key_pem, sizeof(t->key_pem), "%s", pem_path);
	atomic_store(&t->verify, true);
}

const char *
test_key_file(const char *dir, const char *url)
{
	static char path[256];
	char cmd[512], pem[4096];
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "openssl genpkey -algorithm RSA -pkeyopt "
	    "rsa_keygen_bits:2048 -out %s/sa.pem 2>/dev/null", dir);
	if (run(cmd) != 0)
		return NULL;
	snprintf(path, sizeof(path), "%s/sa.pem", dir);
	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	n = fread(pem, 1, sizeof(pem) - 1, f);
	pem[n] = '\0';
	fclose(f);
	snprintf(path, sizeof(path), "%s/sa.json", dir);
	f = fopen(path, "w");
	if (f == NULL)
		return NULL;
	fprintf(f, "{\"type\":\"service_account\",\"project_id\":\"p\","
	    "\"client_email\":\"firesync@p.iam.gserviceaccount.com\","
	    "\"token_uri\":\"%s\",\"private_key\":\"", url);
	for (const char *p = pem; *p; p++)
		if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	fputs("\"}\n", f);
	fclose(f);
	chmod(path, 0600);
	return path;
}

/* ---- Google's Cloud Storage for Firebase emulator ---- */

#ifndef STORAGE_EMULATOR_SCRIPT
#define STORAGE_EMULATOR_SCRIPT "tests/storage/emulator.mjs"
#endif

int
storage_emu_start(struct storage_emu *e)
{
	memset(e, 0, sizeof(*e));
	if (access(STORAGE_EMULATOR_SCRIPT, R_OK) != 0) {
		fprintf(stderr, "httpd: %s is missing (make check installs "
		    "it)\n", STORAGE_EMULATOR_SCRIPT);
		return -1;
	}
	e->port = free_port();
	snprintf(e->host, sizeof(e->host), "127.0.0.1:%d", e->port);
	snprintf(e->url, sizeof(e->url), "http://%s", e->host);
	snprintf(e->log, sizeof(e->log), "/tmp/fsstorage-%d-%d.log",
	    (int)getpid(), e->port);
	e->pid = fork();
	if (e->pid < 0)
		return -1;
	if (e->pid == 0) {
		char port[16];

		prctl(PR_SET_PDEATHSIG, SIGTERM);	/* never outlive the test */
		if (freopen(e->log, "w", stdout) == NULL ||
		    dup2(fileno(stdout), 2) < 0)
			_exit(127);
		snprintf(port, sizeof(port), "%d", e->port);
		execlp("node", "node", STORAGE_EMULATOR_SCRIPT, port,
		    "demo-firesync", (char *)NULL);
		_exit(127);
	}
	/* node loads firebase-tools, then says so; a busy machine may take
	 * a while */
	for (int i = 0; i < 6000; i++) {
		if (log_count(e->log, "ready ") > 0)
			return 0;
		if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
			fprintf(stderr, "httpd: the Storage emulator exited; "
			    "see %s\n", e->log);
			e->pid = 0;
			return -1;
		}
		sleep_ms(20);
	}
	fprintf(stderr, "httpd: the Storage emulator did not start; see %s\n",
	    e->log);
	storage_emu_stop(e);
	return -1;
}

void
storage_emu_stop(struct storage_emu *e)
{
	if (e->pid > 0) {
		kill(e->pid, SIGTERM);
		waitpid(e->pid, NULL, 0);
		e->pid = 0;
	}
	if (e->log[0]) {
		unlink(e->log);
		e->log[0] = '\0';
	}
}

/* A reply into memory. */
struct reply {
	uint8_t *data;
	size_t len;
};

static size_t
on_reply(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	uint8_t *d = realloc(r->data, r->len + size * n + 1);

	if (d == NULL)
		return 0;
	memcpy(d + r->len, p, size * n);
	r->data = d;
	r->len += size * n;
	r->data[r->len] = '\0';
	return size * n;
}

/* One request; the status, or -1.  The body into *body if asked. */
static long
request(const char *method, const char *url, const char *ca,
    struct curl_slist *hdrs, const uint8_t *up, size_t uplen,
    uint8_t **body, size_t *len)
{
	CURL *c = curl_easy_init();
	struct reply r = { 0 };
	long status = -1;

	if (c == NULL)
		return -1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (up) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, up);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)uplen);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_reply);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (body) {
		*body = r.data;
		*len = r.len;
	} else {
		free(r.data);
	}
	return status;
}

long
http_get(const char *url, const char *ca, uint8_t **body, size_t *len)
{
	return request("GET", url, ca, NULL, NULL, 0, body, len);
}

int
storage_emu_put(const struct storage_emu *e, const char *bucket,
    const char *name, const uint8_t *data, size_t len, const char *type)
{
	char url[1024], ctype[160], *enc = store_encode(name, false);
	struct curl_slist *h = NULL;
	long status;

	/* a media upload: the bytes, named in the query */
	snprintf(url, sizeof(url), "%s/upload/storage/v1/b/%s/o?uploadType="
	    "media&name=%s", e->url, bucket, enc);
	snprintf(ctype, sizeof(ctype), "Content-Type: %s", type);
	h = curl_slist_append(h, "Authorization: Bearer owner");
	h = curl_slist_append(h, ctype);
	status = request("POST", url, NULL, h, data, len, NULL, NULL);
	curl_slist_free_all(h);
	free(enc);
	if (status != 200) {
		fprintf(stderr, "httpd: upload of gs://%s/%s: HTTP %ld\n",
		    bucket, name, status);
		return -1;
	}
	return 0;
}

char *
storage_emu_metadata(const struct storage_emu *e, const char *bucket,
    const char *name)
{
	char url[1024], *enc = store_encode(name, false);
	struct curl_slist *h = curl_slist_append(NULL,
	    "Authorization: Bearer owner");
	uint8_t *body = NULL;
	size_t len;
	long status;

	snprintf(url, sizeof(url), "%s/storage/v1/b/%s/o/%s", e->url, bucket,
	    enc);
	status = request("GET", url, NULL, h, NULL, 0, &body, &len);
	curl_slist_free_all(h);
	free(enc);
	if (status != 200) {
		free(body);
		return NULL;
	}
	return (char *)body;
}
