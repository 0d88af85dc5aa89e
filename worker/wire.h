/*
 * wire.h - the messages between firesyncd (or firesync-transform) and its
 * worker processes.
 *
 * One SOCK_SEQPACKET socketpair per worker; each message is one fixed-size
 * struct, checked for exact size, magic and type on receipt (anything else
 * ends the conversation).  Image bytes never travel through the socket:
 * they sit in a memfd whose descriptor rides along with the message
 * (SCM_RIGHTS).
 *
 *   worker -> host  WIRE_HELLO   once, after loading plugins
 *   host -> worker  WIRE_JOB     + memfd: the capture, the references,
 *                                the frame
 *   worker -> host  WIRE_RESULT  + memfd: the PNG, then the renditions
 *                                (status OK only)
 *
 * A CPU worker runs one job at a time.  A hosted-call worker (started
 * with --calls N, loading only remote plugins) takes up to N jobs at
 * once, each on a thread of its own, and answers each as it ends: a
 * result carries its job's tag.  A worker exits when its socket closes.
 */
#ifndef FIRESYNC_WIRE_H
#define FIRESYNC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC	0x46535731u	/* "FSW1" */
#define WIRE_MAX_REFS	8
#define WIRE_MAX_MODELS	64
#define WIRE_NAME_LEN	64		/* plugin and model names, with NUL */
#define WIRE_ID_LEN	1536		/* Firestore ids are <= 1500 bytes */
#define WIRE_PROMPT_LEN	8192
#define WIRE_FD		3		/* the worker's end of the socket */

enum wire_type {
	WIRE_HELLO = 1,
	WIRE_JOB = 2,
	WIRE_RESULT = 3,
};

enum wire_status {
	WIRE_OK = 0,
	WIRE_NO_PLUGIN,		/* no plugin serves the model */
	WIRE_BAD_INPUT,		/* the capture or a parameter is unusable */
	WIRE_TOO_LARGE,		/* over the pixel limit */
	WIRE_PLUGIN_ERROR,	/* the plugin returned an error */
	WIRE_BAD_RESULT,	/* the plugin returned something unusable */
	WIRE_CANCELLED,		/* the plugin gave up at the deadline */
	WIRE_INTERNAL,		/* the worker itself failed */
};

struct wire_header {
	uint32_t magic;
	uint32_t type;
	uint32_t size;		/* sizeof the whole message */
	uint32_t reserved;
};

#define WIRE_MODEL_REMOTE 0x1	/* its plugin's calls wait on a remote
				   service: run them on hosted workers */

struct wire_hello {
	struct wire_header h;
	uint32_t n_models;
	uint32_t n_refused;	/* plugin files refused */
	char model[WIRE_MAX_MODELS][WIRE_NAME_LEN];
	char plugin[WIRE_MAX_MODELS][WIRE_NAME_LEN];	/* serving model[i] */
	uint32_t flags[WIRE_MAX_MODELS];	/* WIRE_MODEL_* */
	uint32_t calls[WIRE_MAX_MODELS];	/* remote: the plugin's calls
						   at once, daemon-wide */
	uint32_t model_calls[WIRE_MAX_MODELS];	/* remote: this model's own
						   limit (calls.MODEL), or 0 */
	uint32_t retries[WIRE_MAX_MODELS];	/* remote: retries of a call
						   the service turned away */
	char fallback[WIRE_MAX_MODELS][WIRE_NAME_LEN];	/* remote: the
						   model to run instead, or "" */
};

#define WIRE_JOB_AI	0x1	/* run the model; otherwise passthrough */

#define WIRE_MAX_RENDITIONS	6
#define WIRE_RENDITION_NAME	32

enum wire_format {
	WIRE_FORMAT_JPEG = 1, WIRE_FORMAT_PNG = 2, WIRE_FORMAT_WEBP = 3
};

/* A copy of the result in another size and format. */
struct wire_rendition {
	char name[WIRE_RENDITION_NAME];	/* [a-z0-9_-], for the file name */
	uint32_t width;			/* WxH exactly (cropped to its shape,
					   turned to the result's orientation),
					   or with height 0 the longest side at
					   most width (never enlarged) */
	uint32_t height;
	uint32_t format;		/* enum wire_format */
	uint32_t quality;		/* JPEG and WebP, 1-100 */
	uint32_t dpi;			/* written in the file; 0: none */
	uint32_t reserved;
};

struct wire_job {
	struct wire_header h;
	uint32_t flags;
	uint32_t n_refs;
	uint32_t tag;				/* echoed in the result */
	uint32_t reserved;
	uint64_t input_len;			/* at offset 0 of the memfd */
	uint64_t ref_len[WIRE_MAX_REFS];	/* then each reference */
	int64_t timeout_ms;
	uint64_t max_pixels;
	char model[WIRE_NAME_LEN];
	char aspect_ratio[32];
	char session_id[WIRE_ID_LEN];
	char event_id[WIRE_ID_LEN];
	char prompt[WIRE_PROMPT_LEN];
	/* after the model: the event's frame (a PNG with alpha, after the
	 * references in the memfd; 0: none) composited over the result, a
	 * cap on the result's pixels (0: none), and the renditions */
	uint64_t frame_len;
	uint64_t max_result_pixels;
	uint32_t n_renditions;
	uint32_t reserved2;
	struct wire_rendition renditions[WIRE_MAX_RENDITIONS];
};

enum wire_frame {
	WIRE_FRAME_NONE = 0,		/* no frame was given */
	WIRE_FRAME_APPLIED,
	WIRE_FRAME_FAILED,		/* unusable: frame_note says why; the
					   result went out without it */
};

struct wire_result {
	struct wire_header h;
	int32_t status;			/* enum wire_status */
	uint32_t tag;			/* the job's */
	uint64_t output_len;		/* PNG bytes in the memfd */
	char plugin[WIRE_NAME_LEN];	/* who produced it, or "" */
	char message[512];		/* why not, for the guest */
	/* a remote plugin's word on the service (FIRESYNC_SERVICE_*), its
	 * Retry-After, and the tokens it reported */
	uint32_t service;
	uint32_t reserved;
	int64_t retry_after_ms;
	uint64_t input_tokens;
	uint64_t output_tokens;
	/* the job's renditions, after the PNG in the memfd, in order */
	uint64_t rendition_len[WIRE_MAX_RENDITIONS];
	uint32_t framed;		/* enum wire_frame */
	uint32_t reserved2;
	char frame_note[256];
};

/*
 * Send msg (size bytes, header filled by the caller) with fd attached if
 * fd >= 0.  Returns 0 or -errno.
 */
int wire_send(int sock, const void *msg, uint32_t size, int fd);
/*
 * Receive one message of exactly size bytes and the given type, and an
 * attached descriptor into *fd (-1 if none; pass fd NULL to refuse one).
 * Every descriptor that arrived is accounted for: more than one (or one
 * refused) closes them all and is a malformed message.  Returns 0, -EPIPE
 * on end of stream, -EPROTO on a malformed message, or -errno.
 */
int wire_recv(int sock, void *msg, uint32_t size, uint32_t type, int *fd);
void wire_header_init(struct wire_header *h, uint32_t type, uint32_t size);

/* A memfd holding the bytes of parts, sealed against shrinking, growing
 * and writing (and further seal changes); -errno on failure. */
int wire_memfd(const char *name, const void *const *parts,
    const uint64_t *lens, int n);

/*
 * Read a peer's buffer of len bytes (1..max) from fd with pread, after
 * checking it is sealed (wire_memfd) and exactly that long: a peer that
 * kept a handle cannot shrink it under the reader.  0 with *out (malloc'd),
 * or -errno with err.
 */
int wire_read_sealed(int fd, uint64_t len, uint64_t max, uint8_t **out,
    char *err, size_t errlen);

#endif
