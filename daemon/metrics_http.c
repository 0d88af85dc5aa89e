/*
 * metrics_http.c - GET /metrics over HTTP with libmicrohttpd, in its own
 * thread (metrics_http.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"

struct metrics_server {
	struct MHD_Daemon *mhd;
	char *unix_path;		/* removed at stop */
};

static enum MHD_Result
answer(struct MHD_Response *r, struct MHD_Connection *c, unsigned status)
{
	enum MHD_Result rc;

	if (r == NULL)
		return MHD_NO;
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
plain(struct MHD_Connection *c, unsigned status, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text),
	    (void *)text, MHD_RESPMEM_PERSISTENT);

	if (r && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
	if (r)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		    "text/plain; charset=utf-8");
	return answer(r, c, status);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct MHD_Response *r;
	size_t len;
	char *text;

	(void)cls, (void)version, (void)upload_data, (void)req_cls;
	if (*upload_data_size != 0) {
		*upload_data_size = 0;	/* a body is not read */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return plain(c, MHD_HTTP_NOT_FOUND, "only /metrics is here\n");
	if (strcmp(method, "GET") != 0)
		return plain(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
	/* rendered into a buffer of its own: a slow reader holds no lock */
	text = metrics_render(&len);
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; version=0.0.4; charset=utf-8");
	return answer(r, c, MHD_HTTP_OK);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("metrics: %s", line);
}

/* A listening socket for "HOST:PORT", "[V6]:PORT" or "/path". */
static int
listen_on(const char *addr, char **unix_path, char *err, size_t errlen)
{
	int fd, one = 1;

	if (addr[0] == '/') {
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		if (strlen(addr) >= sizeof(a.sun_path)) {
			snprintf(err, errlen, "metrics socket path %s is too "
			    "long", addr);
			return -1;
		}
		memcpy(a.sun_path, addr, strlen(addr) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return -1;
		}
		/* a socket left by a previous run; nothing else is removed */
		{
			struct stat sb;

			if (lstat(addr, &sb) == 0 && S_ISSOCK(sb.st_mode))
				unlink(addr);
		}
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    listen(fd, 16) < 0) {
			snprintf(err, errlen, "metrics: cannot listen on %s: "
			    "%s", addr, strerror(errno));
			close(fd);
			return -1;
		}
		*unix_path = xstrdup(addr);
		return fd;
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *ai;
		char host[128];
		const char *colon = strrchr(addr, ':'), *h = addr;
		size_t hl;
		int rc;

		if (colon == NULL || colon == addr || colon[1] == '\0') {
			snprintf(err, errlen, "metrics listen '%s': give "
			    "HOST:PORT (127.0.0.1:9464) or a socket path",
			    addr);
			return -1;
		}
		hl = (size_t)(colon - addr);
		if (h[0] == '[' && colon[-1] == ']') {
			h++;
			hl -= 2;
		}
		if (hl >= sizeof(host)) {
			snprintf(err, errlen, "metrics listen '%s': host too "
			    "long", addr);
			return -1;
		}
		memcpy(host, h, hl);
		host[hl] = '\0';
		rc = getaddrinfo(host, colon + 1, &hints, &ai);
		if (rc != 0) {
			snprintf(err, errlen, "metrics listen '%s': %s (give "
			    "a numeric address)", addr, gai_strerror(rc));
			return -1;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
			    sizeof(one));
		if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, 16) < 0) {
			snprintf(err, errlen, "metrics: cannot listen on %s: "
			    "%s", addr, strerror(errno));
			if (fd >= 0)
				close(fd);
			freeaddrinfo(ai);
			return -1;
		}
		freeaddrinfo(ai);
		return fd;
	}
}

struct metrics_server *
metrics_server_start(const char *addr, char *err, size_t errlen)
{
	struct metrics_server *s = xcalloc(1, sizeof(*s));
	int fd = listen_on(addr, &s->unix_path, err, errlen);

	if (fd < 0) {
		free(s);
		return NULL;
	}
	s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	    MHD_OPTION_END);
	if (s->mhd == NULL) {
		snprintf(err, errlen, "metrics: libmicrohttpd would not start "
		    "on %s", addr);
		close(fd);
		if (s->unix_path)
			unlink(s->unix_path);
		free(s->unix_path);
		free(s);
		return NULL;
	}
	log_info("metrics: serving GET /metrics on %s", addr);
	return s;
}

void
metrics_server_stop(struct metrics_server *s)
{
	if (s == NULL)
		return;
	MHD_stop_daemon(s->mhd);
	if (s->unix_path) {
		unlink(s->unix_path);
		free(s->unix_path);
	}
	free(s);
}
