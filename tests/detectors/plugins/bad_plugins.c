/* Deliberately broken plugins for the loader's tests, selected by -DBAD_<KIND>. */
#include <math.h>
#include <stdlib.h>

#include "faultline/detectors/plugin_abi.h"

static void *create(const fl_param *p, size_t n, const char **e) { (void)p, (void)n, (void)e; return malloc(1); }
static void destroy(void *i) { free(i); }
static int observe(void *i, int64_t t, double v, fl_verdict *out)
{
	(void)i, (void)v;
	out->anomalous = 0;
	out->direction = 0;
	out->has_band = 0;
	out->score = t == 2 ? NAN : t == 3 ? 2.0 : 0.5; /* garbage at t=2 and t=3 */
	return 0;
}

#if defined(BAD_WRONG_ABI)
static const fl_detector_plugin kTable = {99, 0, "wrong_abi", NULL, create, destroy, observe, NULL, NULL};
#elif defined(BAD_NO_OBSERVE)
static const fl_detector_plugin kTable = {FAULTLINE_DETECTOR_ABI_MAJOR, 0, "no_observe", NULL, create, destroy, NULL, NULL, NULL};
#else
static const fl_detector_plugin kTable = {FAULTLINE_DETECTOR_ABI_MAJOR, 0, "garbage", NULL, create, destroy, observe, NULL, NULL};
#endif

#if defined(BAD_NO_SYMBOL)
const fl_detector_plugin *some_other_name(void) { return &kTable; }
#else
const fl_detector_plugin *faultline_detector_plugin(void) { return &kTable; }
#endif
