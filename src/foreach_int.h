/*
 * foreach_int.h -- what the for-each engine (foreach.c) shows to its tests.
 */
#ifndef RS_FOREACH_INT_H
#define RS_FOREACH_INT_H

#include "common.h"

/* Test hook: the most bytes that records waiting in a reorder window (input order) took at
 * once, in any run of this process since the last reset; with reset, starts counting anew.
 * Thread-safe. */
size_t rs__foreach_test_held_peak(bool reset);

#endif
