/*
 * test_token.c - the OAuth2 token source: the service-account JWT checked
 * with OpenSSL against the public half of a key generated here, the
 * exchange and the metadata server answered by a loopback responder that
 * records what it was sent, caching, and refusing a readable key file.
 */
#include "config.h"

#include <check.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "suites.h"
#include "token.h"

static EVP_PKEY *key;
static char keyfile[64];
static int port, listen_fd, requests;
static atomic_bool hold;		/* keep each request waiting */
static atomic_int parked;		/* requests held so far */
static char last_request[16384];
static pthread_t server;

/* Answers each HTTP request with a token, recording the request. */
static void *
serve(void *arg)
{
	for (;;) {
		int c = accept(listen_fd, NULL, NULL);
		char body[256];
		size_t n = 0;

		if (c < 0)
			return NULL;
		memset(last_request, 0, sizeof(last_request));
		for (;;) {
			ssize_t r = read(c, last_request + n,
			    sizeof(last_request) - 1 - n);
			char *hdr_end, *cl;

			if (r <= 0)
				break;
			n += (size_t)r;
			hdr_end = strstr(last_request, "\r\n\r\n");
			if (hdr_end == NULL)
				continue;
			cl = strcasestr(last_request, "Content-Length:");
			if (cl == NULL || strlen(hdr_end + 4) >=
			    (size_t)atoi(cl + 15))
				break;
		}
		if (atomic_load(&hold)) {
			atomic_fetch_add(&parked, 1);
			while (atomic_load(&hold))
				usleep(5000);
		}
		requests++;
		snprintf(body, sizeof(body), "{\"access_token\":\"tok-%d\","
		    "\"expires_in\":3599,\"token_type\":\"Bearer\"}", requests);
		dprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		    strlen(body), body);
		close(c);
	}
	return arg;
}

static void
setup(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	long pemlen;
	json_t *j;
	FILE *f;

	key = EVP_RSA_gen(2048);
	ck_assert_ptr_nonnull(key);
	PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	pemlen = BIO_get_mem_data(bio, &pem);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(listen_fd, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	listen(listen_fd, 8);
	requests = 0;
	pthread_create(&server, NULL, serve, NULL);

	snprintf(keyfile, sizeof(keyfile), "/tmp/fskey-XXXXXX");
	close(mkstemp(keyfile));
	j = json_pack("{s:s, s:s, s:s, s:s#, s:s}", "type", "service_account",
	    "project_id", "p-123", "client_email",
	    "firesync@p-123.iam.gserviceaccount.com", "private_key", pem,
	    (size_t)pemlen, "token_uri", "http://127.0.0.1:0/token");
	{
		char uri[64];

		snprintf(uri, sizeof(uri), "http://127.0.0.1:%d/token", port);
		json_object_set_new(j, "token_uri", json_string(uri));
	}
	f = fopen(keyfile, "w");
	json_dumpf(j, f, JSON_INDENT(2));
	fclose(f);
	json_decref(j);
	BIO_free(bio);
	chmod(keyfile, 0600);
}

static void
teardown(void)
{
	shutdown(listen_fd, SHUT_RDWR);
	close(listen_fd);
	pthread_join(server, NULL);
	EVP_PKEY_free(key);
	unlink(keyfile);
}

static unsigned char *
unb64url(const char *s, size_t n, size_t *outlen)
{
	unsigned char *out = malloc(n + 4);
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
		    "qrstuvwxyz0123456789-_";
		const char *p = strchr(tbl, s[i]);

		ck_assert_ptr_nonnull(p);
		acc = acc << 6 | (uint32_t)(p - tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* Verify jwt's RS256 signature with the test key; return its claims. */
static json_t *
verify(const char *jwt)
{
	const char *dot1 = strchr(jwt, '.'), *dot2;
	unsigned char *hdr, *claims, *sig;
	size_t hl, cl, sl;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	json_t *h, *c;

	ck_assert_ptr_nonnull(dot1);
	dot2 = strchr(dot1 + 1, '.');
	ck_assert_ptr_nonnull(dot2);
	hdr = unb64url(jwt, (size_t)(dot1 - jwt), &hl);
	claims = unb64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), &cl);
	sig = unb64url(dot2 + 1, strlen(dot2 + 1), &sl);
	ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    key), 1);
	ck_assert_msg(EVP_DigestVerify(md, sig, sl, (const unsigned char *)jwt,
	    (size_t)(dot2 - jwt)) == 1, "RS256 signature does not verify");
	EVP_MD_CTX_free(md);
	h = json_loads((char *)hdr, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(h, "alg")), "RS256");
	ck_assert_str_eq(json_string_value(json_object_get(h, "typ")), "JWT");
	json_decref(h);
	c = json_loads((char *)claims, 0, NULL);
	ck_assert_ptr_nonnull(c);
	free(hdr);
	free(claims);
	free(sig);
	return c;
}

START_TEST(jwt_is_signed_rs256_with_the_right_claims)
{
	char err[256], uri[64];
	struct token_source *ts = token_source_key_file(keyfile,
	    "https://www.googleapis.com/auth/devstorage.read_write", err,
	    sizeof(err));
	char *jwt;
	json_t *c;

	ck_assert_msg(ts != NULL, "%s", err);
	ck_assert_str_eq(token_source_project(ts), "p-123");
	jwt = token_jwt(ts, 1700000000, err, sizeof(err));
	ck_assert_ptr_nonnull(jwt);
	c = verify(jwt);
	snprintf(uri, sizeof(uri), "http://127.0.0.1:%d/token", port);
	ck_assert_str_eq(json_string_value(json_object_get(c, "iss")),
	    "firesync@p-123.iam.gserviceaccount.com");
	ck_assert_str_eq(json_string_value(json_object_get(c, "aud")), uri);
	ck_assert_str_eq(json_string_value(json_object_get(c, "scope")),
	    "https://www.googleapis.com/auth/devstorage.read_write");
	ck_assert_int_eq(json_integer_value(json_object_get(c, "iat")),
	    1700000000);
	ck_assert_int_eq(json_integer_value(json_object_get(c, "exp")),
	    1700003600);
	json_decref(c);
	/* a tampered assertion does not verify */
	{
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		char *dot2 = strrchr(jwt, '.');
		size_t sl;
		unsigned char *sig = unb64url(dot2 + 1, strlen(dot2 + 1), &sl);

		jwt[5] ^= 1;
		EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key);
		ck_assert_int_ne(EVP_DigestVerify(md, sig, sl,
		    (unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
		EVP_MD_CTX_free(md);
		free(sig);
	}
	free(jwt);
	token_source_free(ts);
}
END_TEST

START_TEST(exchange_and_cache)
{
	char err[256], *tok, *assertion, *end;
	struct token_source *ts = token_source_key_file(keyfile, "scope-a",
	    err, sizeof(err));
	json_t *c;

	ck_assert_msg(ts != NULL, "%s", err);
	tok = token_get(ts, err, sizeof(err));
	ck_assert_msg(tok != NULL, "%s", err);
	ck_assert_str_eq(tok, "tok-1");
	free(tok);
	ck_assert_ptr_nonnull(strstr(last_request, "POST /token "));
	ck_assert_ptr_nonnull(strstr(last_request, "grant_type=urn%3Aietf%3A"
	    "params%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="));
	/* the assertion sent verifies with the key's public half */
	assertion = strdup(strstr(last_request, "assertion=") + 10);
	end = strpbrk(assertion, "&\r\n");
	if (end)
		*end = '\0';
	for (char *p = assertion; *p; p++)	/* no %-escapes in b64url */
		ck_assert(*p != '%');
	c = verify(assertion);
	ck_assert_str_eq(json_string_value(json_object_get(c, "scope")),
	    "scope-a");
	json_decref(c);
	free(assertion);
	/* cached: no second request */
	tok = token_get(ts, err, sizeof(err));
	ck_assert_str_eq(tok, "tok-1");
	free(tok);
	ck_assert_int_eq(requests, 1);
	token_source_free(ts);
}
END_TEST

static void *
fetch_one(void *arg)
{
	char err[256];

	return token_get(arg, err, sizeof(err));
}

/* gRPC's threads ask with token_peek, which answers from the cache or
 * not at all: never waiting for a fetch under way. */
START_TEST(peek_never_waits_for_a_fetch)
{
	char err[256], *tok;
	struct token_source *ts = token_source_key_file(keyfile, "scope-a",
	    err, sizeof(err));
	pthread_t fetcher;
	void *got;

	ck_assert_msg(ts != NULL, "%s", err);
	ck_assert_ptr_null(token_peek(ts, 60));		/* nothing cached */
	atomic_store(&parked, 0);
	atomic_store(&hold, true);
	pthread_create(&fetcher, NULL, fetch_one, ts);
	while (atomic_load(&parked) == 0)	/* the fetch is in flight */
		usleep(5000);
	ck_assert_ptr_null(token_peek(ts, 60));		/* and not waited on */
	ck_assert_int_eq(requests, 0);
	atomic_store(&hold, false);
	pthread_join(fetcher, &got);
	ck_assert_str_eq(got, "tok-1");
	free(got);
	tok = token_peek(ts, 60);
	ck_assert_str_eq(tok, "tok-1");
	free(tok);
	/* good for 3599 s: not for another hour */
	ck_assert_ptr_null(token_peek(ts, 3600));
	ck_assert_int_eq(requests, 1);
	token_source_free(ts);
}
END_TEST

START_TEST(metadata_server)
{
	char err[256], url[96], *tok;
	struct token_source *ts;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/computeMetadata/v1/"
	    "instance/service-accounts/default/token", port);
	ts = token_source_metadata(url, "scope-b");
	tok = token_get(ts, err, sizeof(err));
	ck_assert_msg(tok != NULL, "%s", err);
	ck_assert_str_eq(tok, "tok-1");
	ck_assert_ptr_nonnull(strstr(last_request, "GET /computeMetadata/v1/"));
	ck_assert_ptr_nonnull(strstr(last_request, "Metadata-Flavor: Google"));
	free(tok);
	token_source_free(ts);
}
END_TEST

START_TEST(readable_or_wrong_key_files_are_refused)
{
	char err[256], other[64];
	FILE *f;

	chmod(keyfile, 0640);
	ck_assert_ptr_null(token_source_key_file(keyfile, "s", err,
	    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "is readable by others: chmod 600"));
	chmod(keyfile, 0600);

	snprintf(other, sizeof(other), "/tmp/fskey-XXXXXX");
	close(mkstemp(other));
	f = fopen(other, "w");
	fputs("{\"type\": \"authorized_user\", \"refresh_token\": \"x\"}", f);
	fclose(f);
	chmod(other, 0600);
	ck_assert_ptr_null(token_source_key_file(other, "s", err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "is not a service account key"));
	/* the token never reaches the message */
	ck_assert_ptr_null(strstr(err, "refresh_token"));
	unlink(other);
}
END_TEST

Suite *
token_suite(void)
{
	Suite *s = suite_create("token");
	TCase *tc = tcase_create("oauth2");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, jwt_is_signed_rs256_with_the_right_claims);
	tcase_add_test(tc, exchange_and_cache);
	tcase_add_test(tc, metadata_server);
	tcase_add_test(tc, peek_never_waits_for_a_fetch);
	tcase_add_test(tc, readable_or_wrong_key_files_are_refused);
	suite_add_tcase(s, tc);
	return s;
}
