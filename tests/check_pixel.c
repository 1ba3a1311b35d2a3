/* tp_pixel: the exact response bytes. */
#include <string.h>

#include "tp_check.h"
#include "tp_pixel.h"

static const unsigned char expected_bmp[60] = {
    0x42, 0x4d, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x36, 0x00,
    0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00,
    0x00, 0x00, 0x27, 0x00, 0x00, 0x00, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
};

static const char head[] =
    "Status: 200 OK\r\n"
    "Content-Type: image/bmp\r\n"
    "Content-Length: 60\r\n"
    "Cache-Control: no-cache, no-store, must-revalidate, private\r\n"
    "Pragma: no-cache\r\n"
    "Expires: 0\r\n"
    "X-Request-Id: 0f8fad5b-d9cb-469f-a165-70867728950e\r\n"
    "\r\n";

#define ID "0f8fad5b-d9cb-469f-a165-70867728950e"

START_TEST(get_and_post)
{
    char buf[512];
    long n = tp_pixel_response(TP_METHOD_GET, ID, buf, sizeof(buf));
    ck_assert_int_eq(n, (long)(sizeof(head) - 1 + 60));
    ck_assert_int_eq(memcmp(buf, head, sizeof(head) - 1), 0);
    ck_assert_int_eq(memcmp(buf + sizeof(head) - 1, expected_bmp, 60), 0);
    ck_assert_int_eq(tp_pixel_response(TP_METHOD_POST, ID, buf, sizeof(buf)), n);
}
END_TEST

START_TEST(head_has_no_body)
{
    char buf[512];
    long n = tp_pixel_response(TP_METHOD_HEAD, ID, buf, sizeof(buf));
    ck_assert_int_eq(n, (long)(sizeof(head) - 1));
    ck_assert_int_eq(memcmp(buf, head, sizeof(head) - 1), 0);
}
END_TEST

START_TEST(other_is_405)
{
    char buf[512];
    long n = tp_pixel_response(TP_METHOD_OTHER, NULL, buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf,
        "Status: 405 Method Not Allowed\r\n"
        "Allow: GET, HEAD, POST\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 19\r\n"
        "Cache-Control: no-cache, no-store, must-revalidate, private\r\n"
        "Pragma: no-cache\r\n"
        "Expires: 0\r\n"
        "\r\n"
        "method not allowed\n");
}
END_TEST

START_TEST(methods)
{
    ck_assert_int_eq(tp_pixel_method("GET"), TP_METHOD_GET);
    ck_assert_int_eq(tp_pixel_method("HEAD"), TP_METHOD_HEAD);
    ck_assert_int_eq(tp_pixel_method("POST"), TP_METHOD_POST);
    ck_assert_int_eq(tp_pixel_method("PUT"), TP_METHOD_OTHER);
    ck_assert_int_eq(tp_pixel_method("get"), TP_METHOD_OTHER);
    ck_assert_int_eq(tp_pixel_method(""), TP_METHOD_OTHER);
    ck_assert_int_eq(tp_pixel_method(NULL), TP_METHOD_OTHER);
}
END_TEST

START_TEST(buffer_too_small)
{
    char buf[100];
    ck_assert_int_eq(tp_pixel_response(TP_METHOD_GET, ID, buf, sizeof(buf)), -1);
    ck_assert_int_eq(tp_pixel_response(TP_METHOD_OTHER, ID, buf, 10), -1);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("pixel");
    TCase *tc = tcase_create("response");
    tcase_add_test(tc, get_and_post);
    tcase_add_test(tc, head_has_no_body);
    tcase_add_test(tc, other_is_405);
    tcase_add_test(tc, methods);
    tcase_add_test(tc, buffer_too_small);
    suite_add_tcase(s, tc);
    return s;
}

TP_CHECK_MAIN(make_suite)
