/*
 * LIST pagination for every route (OpenBao's `after` and `limit`): the request side
 * parses the two parameters once for any LIST, the response side trims whatever "keys"
 * array a handler answered with, so every LIST honours them whether its handler walks
 * storage page-wise (cs_view_list_page) or builds its names otherwise.
 */
#ifndef CS_SERVER_LIST_PAGE_H
#define CS_SERVER_LIST_PAGE_H

#include "server/backend.h"

/* For a LIST: take `after` (a string) and `limit` (a non-negative integer, or a string of
 * digits; 0 or "" is no limit) out of req->data into req->list_after / req->list_limit.
 * A route that declares a field of either name keeps it as its own parameter (sys/leases'
 * Vault `limit`, "none" or a count). A bad value is CS_EINVAL with Vault's message shape.
 * Other operations: nothing. */
int cs_list_page_parse(struct cs_request *req);
/* The route declares a field `name` ("after", "limit") of its own, which paging leaves
 * alone (`custos server -list-routes` shows them as list_own_params). */
bool cs_list_page_route_owns(const struct cs_path *p, const char *name);
/* For a LIST with a page asked for: sort the response's data.keys in byte order, keep the
 * names strictly after list_after, at most list_limit of them, and drop the key_info
 * members of the names that went. Idempotent, so a handler that already paged costs one
 * pass over its page. */
void cs_list_page_trim(struct cs_request *req);

#endif
