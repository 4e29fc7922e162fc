/*  =========================================================================
    stress_reliability_crash - the long version of test_reliability_crash:
    1,000 crash cycles and 50 server restarts (SHMIPC_LONG_TESTS=ON)
    =========================================================================
*/

#define S_STORM_CYCLES  1000
#define S_RESTARTS      50

#include "test_reliability_crash.c"
