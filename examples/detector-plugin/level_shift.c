/* Example faultline detector plugin: a level-shift detector in plain C.
 *
 * It keeps a fast and a slow exponentially weighted mean and the slow variance; a point is
 * anomalous when the fast mean has moved more than k slow standard deviations from the slow
 * mean. Parameters: fast (alpha of the fast mean, default 0.3), slow (default 0.01), k (default 4).
 * Build out of tree: cmake -S . -B build -DFAULTLINE_INCLUDE_DIR=<faultline>/detectors/include */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultline/detectors/plugin_abi.h"

struct level_shift {
	double fast_alpha, slow_alpha, k;
	double fast, slow, var;
	uint64_t n;
};

static int parse(const char *text, double lo, double hi, double *out)
{
	char *end = NULL;
	double v = strtod(text, &end);
	if (end == text || *end != '\0' || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

static void *ls_create(const fl_param *params, size_t n, const char **error)
{
	static __thread char message[160];
	struct level_shift s = {.fast_alpha = 0.3, .slow_alpha = 0.01, .k = 4.0};
	for (size_t i = 0; i < n; i++) {
		double *slot = strcmp(params[i].name, "fast") == 0   ? &s.fast_alpha
			       : strcmp(params[i].name, "slow") == 0 ? &s.slow_alpha
			       : strcmp(params[i].name, "k") == 0    ? &s.k
								     : NULL;
		if (!slot) {
			snprintf(message, sizeof(message), "unknown parameter '%s' (known: fast, slow, k)",
				 params[i].name);
			*error = message;
			return NULL;
		}
		if (parse(params[i].value, 1e-6, slot == &s.k ? 100.0 : 1.0, slot) != 0) {
			snprintf(message, sizeof(message), "parameter %s='%s': expected a number in (0, %s]",
				 params[i].name, params[i].value, slot == &s.k ? "100" : "1");
			*error = message;
			return NULL;
		}
	}
	struct level_shift *p = malloc(sizeof(*p));
	if (!p) {
		*error = "out of memory";
		return NULL;
	}
	*p = s;
	return p;
}

static void ls_destroy(void *instance) { free(instance); }

static int ls_observe(void *instance, int64_t time_s, double x, fl_verdict *out)
{
	struct level_shift *s = instance;
	(void)time_s;
	memset(out, 0, sizeof(*out));
	if (s->n == 0)
		s->fast = s->slow = x;
	s->fast += s->fast_alpha * (x - s->fast);
	if (s->n >= 30) {
		/* Judge against the slow model as it was before this point. */
		double sd = sqrt(s->var) + 1e-12;
		double z = fabs(s->fast - s->slow) / sd;
		out->score = z / (z + s->k);
		out->anomalous = z > s->k;
		out->direction = !out->anomalous ? FL_DIRECTION_NONE
				 : s->fast > s->slow ? FL_DIRECTION_UP
						     : FL_DIRECTION_DOWN;
		out->has_band = 1;
		out->expected = s->slow;
		out->lower = s->slow - s->k * sd;
		out->upper = s->slow + s->k * sd;
	}
	double diff = x - s->slow;
	s->slow += s->slow_alpha * diff;
	s->var = (1 - s->slow_alpha) * (s->var + s->slow_alpha * diff * diff);
	s->n++;
	return 0;
}

static size_t ls_save(void *instance, uint8_t *buf, size_t cap)
{
	if (cap >= sizeof(struct level_shift))
		memcpy(buf, instance, sizeof(struct level_shift));
	return sizeof(struct level_shift);
}

static int ls_restore(void *instance, const uint8_t *buf, size_t len, const char **error)
{
	if (len != sizeof(struct level_shift)) {
		*error = "state has the wrong size";
		return -1;
	}
	memcpy(instance, buf, len);
	return 0;
}

static const fl_detector_plugin kPlugin = {
	.abi_major = FAULTLINE_DETECTOR_ABI_MAJOR,
	.abi_minor = FAULTLINE_DETECTOR_ABI_MINOR,
	.name = "level_shift",
	.description = "fast vs slow EWMA level shift: fast (0.3), slow (0.01), k (4)",
	.create = ls_create,
	.destroy = ls_destroy,
	.observe = ls_observe,
	.save_state = ls_save,
	.restore_state = ls_restore,
};

FAULTLINE_PLUGIN_EXPORT const fl_detector_plugin *faultline_detector_plugin(void) { return &kPlugin; }
