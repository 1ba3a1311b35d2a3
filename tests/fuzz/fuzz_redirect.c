/*
 * fuzz_redirect - tp_redirect_target and tp_acl_allows on any bytes.
 *
 * Properties:
 *  - a target is accepted only as printable ASCII without space or
 *    backslash (nothing that could end the Location header or be read
 *    differently by a browser), starting with http:// or https://, at most
 *    a little longer than TP_REDIRECT_MAX_URL, whose host libcurl reads back
 *    as one the allow-list matches, and without userinfo;
 *  - a refusal has a reason and no target;
 *  - the input as an address never crashes tp_acl_allows.
 */
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_acl.h"
#include "tp_redirect.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void check_accepted(const tp_redirect_allow *a, const char *t)
{
    CURLU *u = curl_url();
    char *host = NULL, *user = NULL;
    size_t i, len = strlen(t);

    CHECK(len <= TP_REDIRECT_MAX_URL + 16);
    CHECK(strncmp(t, "http://", 7) == 0 || strncmp(t, "https://", 8) == 0);
    for (i = 0; i < len; i++)
        CHECK(t[i] > 0x20 && t[i] < 0x7f && t[i] != '\\');
    CHECK(u && curl_url_set(u, CURLUPART_URL, t, 0) == CURLUE_OK);
    CHECK(curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK);
    CHECK(tp_redirect_host_allowed(a, host, strlen(host)));
    CHECK(curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_OK);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tp_redirect_allow *allow;
    static tp_acl *acl;
    char *qs = malloc(size + 1), *target = NULL, err[256];
    tp_redirect_why why;

    if (!allow) {
        allow = tp_redirect_allow_parse("example.com,*.example.org", err, sizeof(err));
        acl = tp_acl_parse("127.0.0.0/8,::1,10.0.0.0/8,2001:db8::/32", err, sizeof(err));
        CHECK(allow && acl);
    }
    if (!qs)
        return 0;
    memcpy(qs, data, size);
    qs[size] = '\0';
    why = tp_redirect_target(allow, qs, &target);
    CHECK(why < TP_REDIRECT_NWHY);
    CHECK((why == TP_REDIRECT_OK) == (target != NULL));
    if (target)
        check_accepted(allow, target);
    (void)tp_acl_allows(acl, qs);
    free(target);
    free(qs);
    return 0;
}
