/*
 * generate.h - the generateContent request and reply, as the Gemini API
 * (genai) and Vertex AI (vertex) both speak them: a text part, the
 * photo and the references as inline JPEG, the IMAGE response modality
 * and an aspect ratio the image models accept; an image part back.
 */
#ifndef FIRESYNC_GENERATE_H
#define FIRESYNC_GENERATE_H

#include "hosted.h"

/* What went, for the call's log line. */
struct generate_sent {
	size_t photo_bytes;
	bool original;
	uint32_t photo_w, photo_h;
	size_t n_refs;
	const char *ratio;
};

/* The nearest aspect ratio the image models accept to "W:H", or NULL. */
const char *generate_ratio(const char *ratio);
/* The request's body into b; 0, or -1 with err. */
int generate_request(const char *system_prompt,
    const struct firesync_request *req, struct buf *b,
    struct generate_sent *sent, char *err, size_t errlen);
/* The sent summary as words for the log. */
void generate_sent_words(const struct generate_sent *s, char *out,
    size_t len);
/*
 * Read a 200 reply: the first image part of the first candidate into
 * res (memory from the host), or the reason there is none (err, the
 * log, what the host is told).  FIRESYNC_OK or FIRESYNC_ERROR.
 */
int generate_reply(struct hosted_call *c, const char *body, size_t len,
    struct firesync_result *res, char *err, size_t errlen);
/*
 * A reply that is not 200: the guest's message, the log line and what the
 * host is told.  key_advice: what to check when the credentials are
 * refused.
 */
void generate_error(struct hosted_call *c, const char *key_advice,
    struct firesync_result *res, char *err, size_t errlen);

#endif
