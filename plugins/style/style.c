/*
 * style.c - the "style" model: a painterly look driven by the experience.
 *
 * With reference images (aiPhotoConfig.referenceImageUrls that resolve to
 * files in our storage) the photo takes on their colours: the mean and
 * spread of L*, a*, b* are moved to the references' (Reinhard et al. 2001,
 * in CIELAB), through a 33^3 colour lookup table so per-pixel work stays
 * cheap.  Then the medium the prompt names, each in a file of its own:
 *
 *   "oil painting" (default)  curved brush strokes of three sizes along
 *                             the image's structure (oil.c)
 *   "watercolor"              washes on textured paper, wet edges,
 *                             granulation, a faint drawing (watercolor.c)
 *   "pencil sketch"           graphite lines from a colour dodge of the
 *                             luma, on clean paper (pencil.c)
 *
 * [plugin.style] keys: default-preset (oil|watercolor|pencil), transfer
 * (0..1, how far colours move to the references; default 0.85), brush
 * (the oil's finest stroke radius as a fraction of the short side;
 * default 0.0035).
 */
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "firesync/plugin.h"
#include "style.h"

enum preset { OIL, WATERCOLOR, PENCIL };

struct style {
	const struct firesync_host *host;
	enum preset preset;
	float transfer;
	float brush;
};

static const struct firesync_host *host;

static bool
contains(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = text; p && *p; p++)
		if (strncasecmp(p, word, n) == 0)
			return true;
	return false;
}

static int
parse_preset(const char *v, enum preset *out)
{
	if (strcasecmp(v, "oil") == 0)
		*out = OIL;
	else if (strcasecmp(v, "watercolor") == 0 ||
	    strcasecmp(v, "watercolour") == 0)
		*out = WATERCOLOR;
	else if (strcasecmp(v, "pencil") == 0)
		*out = PENCIL;
	else
		return -1;
	return 0;
}

static int
style_init(const struct firesync_host *h, const struct firesync_config *c,
    void **state, char *err, size_t errlen)
{
	struct style *s;
	const char *v;

	host = h;
	s = h->alloc(sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	s->host = h;
	s->preset = OIL;
	s->transfer = 0.85f;
	s->brush = 0.0035f;
	if ((v = h->config_get(c, "default-preset")) != NULL &&
	    parse_preset(v, &s->preset) < 0) {
		snprintf(err, errlen, "[plugin.style] default-preset = %s: "
		    "expected oil, watercolor or pencil", v);
		h->free(s);
		return FIRESYNC_ERROR;
	}
	if ((v = h->config_get(c, "transfer")) != NULL) {
		char *end;

		s->transfer = strtof(v, &end);
		if (end == v || *end || !(s->transfer >= 0 &&
		    s->transfer <= 1)) {
			snprintf(err, errlen, "[plugin.style] transfer = %s: "
			    "expected 0 to 1", v);
			h->free(s);
			return FIRESYNC_ERROR;
		}
	}
	if ((v = h->config_get(c, "brush")) != NULL) {
		char *end;

		s->brush = strtof(v, &end);
		if (end == v || *end || !(s->brush > 0 && s->brush <= 0.05f)) {
			snprintf(err, errlen, "[plugin.style] brush = %s: "
			    "expected a fraction above 0, up to 0.05", v);
			h->free(s);
			return FIRESYNC_ERROR;
		}
	}
	*state = s;
	return FIRESYNC_OK;
}

static enum preset
preset_of(const struct style *s, const char *prompt)
{
	if (contains(prompt, "watercolo"))
		return WATERCOLOR;
	if (contains(prompt, "pencil") || contains(prompt, "sketch") ||
	    contains(prompt, "charcoal"))
		return PENCIL;
	if (contains(prompt, "oil") || contains(prompt, "paint"))
		return OIL;
	return s->preset;
}

/* Move the photo's Lab statistics toward the references'. */
static int
colour_transfer(struct fimg *f, const struct firesync_request *req,
    float amount)
{
	float sm[3], ss[3], tm[3] = { 0, 0, 0 }, ts[3] = { 0, 0, 0 };
	struct lut3d lut;
	int n = 33;

	lab_stats(&req->image, 40000, sm, ss);
	for (size_t i = 0; i < req->n_references; i++) {
		float m[3], sd[3];

		lab_stats(&req->references[i], 40000, m, sd);
		for (int c = 0; c < 3; c++) {
			tm[c] += m[c] / (float)req->n_references;
			ts[c] += sd[c] / (float)req->n_references;
		}
	}
	if (lut3d_alloc(&lut, n) < 0)
		return -1;
	for (int r = 0; r < n; r++)
		for (int g = 0; g < n; g++)
			for (int b = 0; b < n; b++) {
				float rgb[3] = { r * 255.0f / (n - 1),
				    g * 255.0f / (n - 1), b * 255.0f / (n - 1) };
				float lab[3], out[3];
				float *v = lut.v + 3 * (((size_t)r * n + g) * n + b);

				srgb_to_lab(rgb, lab);
				for (int c = 0; c < 3; c++) {
					float moved = (lab[c] - sm[c]) *
					    (ts[c] / ss[c]) + tm[c];

					lab[c] += amount * (moved - lab[c]);
				}
				lab[0] = clampf(lab[0], 0, 100);
				lab_to_srgb(lab, out);
				v[0] = out[0];
				v[1] = out[1];
				v[2] = out[2];
			}
	lut3d_apply(&lut, f);
	lut3d_free(&lut);
	return 0;
}

/* Pencil: the luma at full size (through the colour transfer when there
 * are references), drawn on, and written out grey. */
static int
style_pencil(struct style *s, const struct firesync_request *req,
    struct firesync_result *res)
{
	const struct firesync_image *im = &req->image;
	int w = (int)im->width, h = (int)im->height, rc = 0;
	float *lum;

	if (req->n_references > 0 && s->transfer > 0) {
		struct fimg f;

		if (fimg_from_image(&f, im) < 0)
			return -1;
		rc = colour_transfer(&f, req, s->transfer);
		lum = rc == 0 ? luma_plane(&f) : NULL;
		fimg_free(&f);
	} else {
		lum = luma_image(im);
	}
	if (lum == NULL)
		return -1;
	if (s->host->cancelled())
		rc = 1;
	if (rc == 0)
		rc = pencil_draw(lum, w, h, s->host->cancelled);
	if (rc == 0 && grey_to_result(lum, im, s->host, res) < 0)
		rc = -1;
	free(lum);
	return rc;
}

/* Oil and watercolour paint at their working resolution, straight from
 * and back to the photo's size. */
static int
style_paint(struct style *s, enum preset preset,
    const struct firesync_request *req, struct firesync_result *res)
{
	const struct firesync_image *im = &req->image;
	int w, h, rc = 0;
	struct fimg f;

	work_size((int)im->width, (int)im->height, preset == OIL ?
	    OIL_WORK_SHORT : WATERCOLOR_WORK_SHORT, &w, &h);
	if (fimg_from_image_scaled(&f, im, w, h) < 0)
		return -1;
	if (req->n_references > 0 && s->transfer > 0)
		rc = colour_transfer(&f, req, s->transfer);
	if (rc == 0 && s->host->cancelled())
		rc = 1;
	if (rc == 0)
		rc = preset == OIL ? oil_paint(&f, s->brush, s->host->cancelled) :
		    watercolor_paint(&f, s->host->cancelled);
	if (rc == 0 && fimg_to_result_scaled(&f, NULL, im, s->host, res) < 0)
		rc = -1;
	fimg_free(&f);
	return rc;
}

static int
style_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	struct style *s = state;
	enum preset preset = preset_of(s, req->prompt);
	int rc;

	if (req->image.channels < 3) {
		snprintf(err, errlen, "expected an RGB image");
		return FIRESYNC_ERROR;
	}
	rc = preset == PENCIL ? style_pencil(s, req, res) :
	    style_paint(s, preset, req, res);
	if (rc > 0)
		return FIRESYNC_CANCELLED;
	if (rc < 0) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	s->host->log(FIRESYNC_LOG_DEBUG, "%s, %zu reference(s)",
	    preset == OIL ? "oil" : preset == WATERCOLOR ? "watercolor" :
	    "pencil", req->n_references);
	return FIRESYNC_OK;
}

static void
style_fini(void *state)
{
	struct style *s = state;

	if (s)
		s->host->free(s);
}

static const char *const models[] = { "style", NULL };

const struct firesync_plugin firesync_plugin = {
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
	.abi_minor = FIRESYNC_PLUGIN_ABI_MINOR,
	.struct_size = sizeof(struct firesync_plugin),
	.name = "style",
	.version = PACKAGE_VERSION,
	.vendor = "firesync",
	.license = "MIT",
	.models = models,
	.init = style_init,
	.transform = style_transform,
	.fini = style_fini,
};
