/*
 * tp_acl - a list of address ranges (CIDRs) and whether an address is in
 * one: who may read the health and metrics endpoints.
 *
 * The list is comma-separated: "127.0.0.0/8,::1,10.1.2.3" (an address
 * without /len is that address only).  IPv4 addresses also match in their
 * IPv4-mapped IPv6 form (::ffff:127.0.0.1), as a dual-stack socket reports
 * them.  Leaf module: no logging.
 */
#ifndef TP_ACL_H
#define TP_ACL_H

#include <stddef.h>

typedef struct tp_acl tp_acl;

/* Parse list (NULL or "": an empty list, which allows nobody).  NULL with
 * err set on a bad entry.  Free with tp_acl_free(). */
tp_acl *tp_acl_parse(const char *list, char *err, size_t errlen);
void tp_acl_free(tp_acl *a);

/* 1 when addr (text, as REMOTE_ADDR has it; NULL allowed) is in a range. */
int tp_acl_allows(const tp_acl *a, const char *addr);

#endif
