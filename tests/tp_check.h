/* Shared main() for the Check unit tests: TAP on stdout for automake's
 * tap-driver, nothing else. */
#ifndef TP_CHECK_H
#define TP_CHECK_H

#include <check.h>
#include <stdlib.h>

#define TP_CHECK_MAIN(make_suite)                              \
    int main(void)                                             \
    {                                                          \
        SRunner *sr = srunner_create(make_suite());            \
        int failed;                                            \
        srunner_set_tap(sr, "-");                              \
        srunner_run_all(sr, CK_SILENT);                        \
        failed = srunner_ntests_failed(sr);                    \
        srunner_free(sr);                                      \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;           \
    }

#endif
