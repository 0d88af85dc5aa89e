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
 * What the call that was made got: the image of a 200 reply, or why
 * not (the transport, or a reply that is not 200, with key_advice, what
 * to check when the credentials are refused).  FIRESYNC_OK or another
 * FIRESYNC_* code, with err, the log and what the host is told.
 */
int generate_answer(struct hosted_call *c, const char *key_advice,
    struct firesync_result *res, char *err, size_t errlen);

#endif
