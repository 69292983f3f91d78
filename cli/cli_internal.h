/*
 * What every CLI command family shares: the flag struct and flag/usage tables, flag
 * parsing and the common start of a command (args.c), client set-up, output helpers and
 * input readers (common.c). Not a public interface: only cli/ files include it.
 *
 * Dependencies run one way: cli.c (entry point) -> the families (families.h: kv.c,
 * token.c, policy.c, operator.c, operator_keys.c, keys.c, raft.c, mounts.c,
 * read_write.c) -> args.c, common.c -> client.c, format.c. args.c finds a command's
 * flags through the family tables cs_cli_main stores in struct cli, so it needs no
 * family. Everything runs on the one CLI thread; nothing here calls back.
 */
#ifndef CS_CLI_CLI_INTERNAL_H
#define CS_CLI_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli/client.h"
#include "lib/buf.h"
#include "lib/util.h"

#define CS_CLI_DEFAULT_ADDR "https://127.0.0.1:8200"

/* Every flag of every command lands in this one struct; a command reads the ones its
 * flag-table rows allow. Strings are borrowed from argv; cJSON members are owned and
 * freed by cs_cli_free. */
struct cli {
	/* HTTP and output flags shared by every command. */
	const char *address, *ca_cert, *ca_path, *namespace, *format, *field;
	bool tls_skip_verify, tls_skip_verify_set, non_interactive;
	/* operator init/unseal, read/write/list/delete, secrets/auth/audit. */
	long key_shares, key_threshold, recovery_shares, recovery_threshold, version;
	bool init_status, reset, migrate, force, detailed, local, seal_wrap, force_no_cache;
	const char *path, *description;
	cJSON *options; /* -options=k=v, repeatable */

	/* Mount configuration (secrets enable, auth enable/tune). */
	int64_t default_lease_ttl, max_lease_ttl;
	bool default_lease_ttl_set, max_lease_ttl_set;
	const char *listing_visibility; /* NULL unless given, like -token-type below */

	/* kv (kv.c). */
	const char *mount, *method;
	long cas, max_versions;
	bool cas_set, max_versions_set, cas_required, cas_required_set;
	int64_t delete_version_after;
	bool delete_version_after_set;
	cJSON *versions, *remove_data, *custom_metadata;

	/* token (token.c). */
	cJSON *policies, *metadata;
	int64_t ttl, explicit_max_ttl, period, increment;
	long use_limit;
	bool renewable, renewable_set, orphan, no_default_policy, accessor, self;
	const char *display_name, *token_type, *role, *id, *entity_alias, *mode;

	/* login (read_write.c). */
	bool no_store, no_print, token_only;

	/* operator raft / step-down (raft.c). */
	const char *leader_ca_cert, *leader_client_cert, *leader_client_key;
	bool retry, non_voter;
	bool cleanup_dead_servers, cleanup_dead_servers_set;
	int64_t last_contact_threshold, dead_server_last_contact_threshold;
	int64_t server_stabilization_time;
	long max_trailing_logs, min_quorum;

	/* operator rekey / generate-root (keys.c). */
	bool k_init, k_cancel, k_status, k_verify, k_backup, k_backup_delete, k_backup_retrieve;
	bool k_generate_otp;
	const char *k_nonce, *k_target, *k_pgp_keys, *k_decode, *k_otp, *k_pgp_key;
	const char *k_root_pgp_key; /* operator init */

	/* Runtime. */
	const char *fmt; /* "table" or "json" once resolved */
	char *token_owned;
	struct cs_client client;
	bool client_ready;
	/* The command families' flag and usage tables, set by cs_cli_main (cli.c) before
	 * it runs a command; args.c searches them. */
	const struct cs_cli_family *const *families;
	size_t n_families;
};

/* F_LIST appends to a cJSON array (repeatable flag); F_KV sets a key of a cJSON object
 * (repeatable k=v flag); F_DUR parses a Vault duration into int64_t seconds. */
enum flag_kind { F_STR, F_BOOL, F_INT, F_KV, F_LIST, F_DUR };

/* Which commands accept a flag: one bit per command. Numbers are stable (the order the
 * commands were added), not grouped by family. */
#define CMD(n)      (UINT64_C(1) << (n))
#define C_INIT      CMD(0)
#define C_UNSEAL    CMD(1)
#define C_SEAL      CMD(2)
#define C_STATUS    CMD(3)
#define C_READ      CMD(4)
#define C_WRITE     CMD(5)
#define C_LIST      CMD(6)
#define C_DELETE    CMD(7)
#define C_SENABLE   CMD(8)
#define C_SDISABLE  CMD(9)
#define C_SLIST     CMD(10)
#define C_KGET      CMD(11)
#define C_KPUT      CMD(12)
#define C_KPATCH    CMD(13)
#define C_KDELETE   CMD(14)
#define C_KUNDELETE CMD(15)
#define C_KDESTROY  CMD(16)
#define C_KLIST     CMD(17)
#define C_KMGET     CMD(18)
#define C_KMPUT     CMD(19)
#define C_KMDELETE  CMD(20)
#define C_PWRITE    CMD(21)
#define C_PREAD     CMD(22)
#define C_PLIST     CMD(23)
#define C_PDELETE   CMD(24)
#define C_PFMT      CMD(25)
#define C_TCREATE   CMD(26)
#define C_TLOOKUP   CMD(27)
#define C_TRENEW    CMD(28)
#define C_TREVOKE   CMD(29)
#define C_TCAPS     CMD(30)
#define C_LOGIN     CMD(31)
#define C_AENABLE   CMD(32)
#define C_ADISABLE  CMD(33)
#define C_ALIST     CMD(34)
#define C_ATUNE     CMD(35)
#define C_DENABLE   CMD(36) /* audit devices */
#define C_DDISABLE  CMD(37)
#define C_DLIST     CMD(38)
#define C_RJOIN     CMD(39) /* operator raft ... (raft.c) */
#define C_RPEERS    CMD(40)
#define C_RREMOVE   CMD(41)
#define C_RAPSTATE  CMD(42)
#define C_RAPGET    CMD(43)
#define C_RAPSET    CMD(44)
#define C_RSSAVE    CMD(45)
#define C_RSRESTORE CMD(46)
#define C_RSINSPECT CMD(47)
#define C_STEPDOWN  CMD(48)
/* operator rotate / key-status (operator_keys.c), rekey / generate-root (keys.c); high
 * bits so parallel additions do not collide. */
#define C_OROTATE    CMD(58)
#define C_OKEYSTATUS CMD(59)
#define C_REKEY      CMD(60)
#define C_GENROOT    CMD(61)
#define C_PATHHELP   CMD(62)
#define C_ALL        UINT64_MAX

struct flag {
	const char *name;
	enum flag_kind kind;
	size_t off;
	uint64_t cmds;
	size_t set_off; /* offset of a "was set" bool, or 0 */
};

#define OFF(f) offsetof(struct cli, f)

/* Per-command help text, looked up by command bit. */
struct usage {
	uint64_t cmd;
	const char *text;
};

/* One command family's flag rows and usage texts (each family file defines one, see
 * families.h). flags may be NULL when the family takes only the common flags. */
struct cs_cli_family {
	const struct flag *flags;
	size_t n_flags;
	const struct usage *usages;
	size_t n_usages;
};
#define CS_CLI_FAMILY(f, u)                                                                        \
	{                                                                                          \
		(f), CS_ARRAY_LEN(f), (u), CS_ARRAY_LEN(u)                                         \
	}

/* A subcommand: run(c, argc, argv, index of its first flag). */
struct cs_cli_sub {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv, int start);
};
/* Run the subcommand named argv[depth]; -h prints usage (exit 0), anything else prints
 * it on stderr (exit 1). */
int cs_cli_dispatch(struct cli *c, int argc, char **argv, int depth, const struct cs_cli_sub *subs,
		    size_t n, const char *usage);

/*
 * Common start of every command: parse flags for `cmd` from argv[start], resolve the
 * output format. Returns the index of the first positional argument, or a negative
 * value with *code set to the exit code (0 after -h, 1 on a flag error).
 */
int cs_cli_begin(struct cli *c, uint64_t cmd, int argc, char **argv, int start, int *code);
/* "Not enough/Too many arguments (expected <what>, got N)" when n is outside
 * [min, max]. Returns true (after printing) when the count is wrong. */
bool cs_cli_bad_nargs(int n, int min, int max, const char *what);
/* cs_cli_begin, then cs_cli_bad_nargs(min, max, what) (exit 1), then
 * cs_cli_make_client (exit 2): the start of most commands. Same return convention. */
int cs_cli_start(struct cli *c, uint64_t cmd, int argc, char **argv, int start, int min, int max,
		 const char *what, int *code);
/* Build the HTTP client from flags and environment (token from VAULT_TOKEN or
 * ~/.vault-token). Returns 0, or 1 after printing the problem. */
int cs_cli_make_client(struct cli *c);
/* Free everything cs_cli_begin/cs_cli_make_client attached to c. */
void cs_cli_free(struct cli *c);
bool cs_cli_is_json(const struct cli *c);

/* Print a buffer plus newline to f, then wipe and free it. */
void cs_cli_emit(FILE *f, struct cs_buf *b);
/* Go's json.MarshalIndent of v on stdout (keys sorted below the top level). */
void cs_cli_print_json(const cJSON *v, bool sort_top);
/* "<prefix>: <API error text>" on stderr; fmt may be NULL for the bare text. */
void cs_cli_api_error(const struct cs_client_resp *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Vault's OutputSecret (table with warnings on stderr, or the JSON api.Secret). */
int cs_cli_output_secret(struct cli *c, const cJSON *secret);
/* Vault's PrintRawField on a secret (secret=true) or a plain object. Exit code. */
int cs_cli_print_field(struct cli *c, const cJSON *obj, const char *field, bool secret,
		       const char *type_name);
/* A 404 body that still carries data or warnings (borrowed from r), else NULL. */
const cJSON *cs_cli_secret_from_404(const struct cs_client_resp *r);
/* Shared end of a write: Success! line for an empty answer, else the secret. */
int cs_cli_finish_write(struct cli *c, struct cs_client_resp *r, const char *success,
			const char *path);
/* LIST path and print the keys like `vault list`. Exit code. */
int cs_cli_list_path(struct cli *c, const char *path);

/* Vault's sanitizePath (trim '/' and spaces); malloc'd. */
char *cs_cli_sanitize_path(const char *s);
/* Trimmed malloc'd copy of n bytes. */
char *cs_cli_trim_dup(const char *s, size_t n);
/* kv-builder K=V parsing (see common.c). Returns 0 or -1 with the reason in err. */
int cs_cli_parse_kv(cJSON *obj, int argc, char **argv, struct cs_buf *err);
/* K=V arguments (cs_cli_parse_kv) into a new object, or NULL after printing "Failed to
 * parse K=V data: ..." (an exit-1 error). */
cJSON *cs_cli_kv_data(int argc, char **argv);
/* Append all of f to out (at most 32 MiB). Returns 0, EFBIG or EIO. */
int cs_cli_read_stream(FILE *f, struct cs_buf *out);
/* One line from stdin, echo off on a terminal. Returns 0 or -1 on EOF/error. */
int cs_cli_read_secret_line(char *buf, size_t cap, bool tty);

/* getenv(a) if set and non-empty, else getenv(b) likewise, else NULL. */
const char *cs_cli_env2(const char *a, const char *b);
/* -field was given (and is not empty). */
bool cs_cli_has_field(const struct cli *c);
/* One API call; false (after "<what>: <API error>" on stderr, or the bare error when
 * what is NULL) unless it answered 2xx/3xx. The caller
 * frees *r either way. */
bool cs_cli_call(struct cli *c, const char *method, const char *path, const char *query,
		 const cJSON *body, struct cs_client_resp *r, const char *what);
/* A delete-type request whose failure reads "Error deleting WHAT: <API error>". */
bool cs_cli_call_delete(struct cli *c, const char *method, const char *path, const cJSON *body,
			const char *what_path, struct cs_client_resp *r);

static inline const cJSON *cs_cli_get(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

#endif
