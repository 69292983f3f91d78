/*
 * HCL (version 1, as Vault's config and policy files use it) and JSON, parsed into one
 * tree with line numbers so that callers can report "file:line: reason".
 *
 * Accepted syntax:
 *   key = value            key: value            "quoted key" = value
 *   block "label" "label2" { ... }   ==  block = { label = { label2 = { ... } } }
 *   values: "string" with \" \\ \n \t \uXXXX escapes, numbers (int/float, negative),
 *           true/false, [list, ...], { object }, heredoc <<EOT ... EOT (and <<-EOT)
 *   separators: newlines or commas; trailing commas allowed in lists and objects
 *   comments: # ..., // ..., / * ... * /
 *   A document whose first non-blank character is '{' is a JSON object; it parses into
 *   the same tree (JSON is accepted wherever HCL is, as Vault does).
 *
 * Repeated keys are kept as separate members, in document order (so two `listener`
 * blocks are two members named "listener"). A block with a label nests one object per
 * label. The tree is owned by the caller: free it with cs_hcl_free.
 */
#ifndef CS_LIB_HCL_H
#define CS_LIB_HCL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

enum cs_hcl_type {
	CS_HCL_OBJECT,
	CS_HCL_LIST,
	CS_HCL_STRING,
	CS_HCL_NUMBER,
	CS_HCL_BOOL,
	CS_HCL_NULL
};

struct cs_hcl_node {
	enum cs_hcl_type type;
	int line;                  /* 1-based line where the value (or member key) starts */
	char *key;                 /* member name when the parent is an object, else NULL */
	char *str;                 /* STRING: value (NUL-terminated); NUMBER: source text */
	double num;                /* NUMBER */
	bool is_int;               /* NUMBER written without fraction/exponent */
	bool b;                    /* BOOL */
	struct cs_hcl_node *child; /* OBJECT/LIST: first member or element */
	struct cs_hcl_node *next;  /* next sibling */
};

/*
 * Parse `len` bytes of HCL or JSON. Returns the root OBJECT, or NULL with
 * "line N: reason" written to errmsg (always NUL-terminated).
 */
struct cs_hcl_node *cs_hcl_parse(const char *text, size_t len, char *errmsg, size_t errlen);
void cs_hcl_free(struct cs_hcl_node *n);
/* First member of an object with this key, or NULL. */
const struct cs_hcl_node *cs_hcl_get(const struct cs_hcl_node *obj, const char *key);
/* Type name for messages: "object", "list", "string", "number", "bool", "null". */
const char *cs_hcl_type_name(enum cs_hcl_type t);
/*
 * Convert to cJSON (for policies and API bodies). Repeated object keys merge the way
 * Vault's HCL decoder does: when both values are objects their members merge
 * recursively, otherwise the later value wins. Returns NULL only on allocation failure.
 */
cJSON *cs_hcl_to_json(const struct cs_hcl_node *n);

#endif
