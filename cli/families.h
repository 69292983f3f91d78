/*
 * The CLI's command families: each file's entry points and its flag/usage table. Only
 * cli.c (the dispatcher) and the family files include this; a family never calls back
 * into cli.c. Entry points return the process exit code (see cli.c); argv[1] is the
 * top-level verb, and the `start` variants parse flags from argv[start].
 */
#ifndef CS_CLI_FAMILIES_H
#define CS_CLI_FAMILIES_H

#include "cli/cli_internal.h"

/* operator.c: operator init|unseal|seal (and the dispatch of every `operator`
 * subcommand), status. */
extern const struct cs_cli_family cs_cli_operator_family;
int cs_cli_operator(struct cli *c, int argc, char **argv);
int cs_cli_status(struct cli *c, int argc, char **argv, int start);

/* operator_keys.c: operator rotate, operator key-status (common flags only). */
int cs_cli_operator_rotate(struct cli *c, int argc, char **argv, int start);
int cs_cli_operator_key_status(struct cli *c, int argc, char **argv, int start);

/* keys.c: operator rekey, operator generate-root. */
extern const struct cs_cli_family cs_cli_keys_family;
int cs_cli_operator_rekey(struct cli *c, int argc, char **argv, int start);
int cs_cli_operator_generate_root(struct cli *c, int argc, char **argv, int start);
/* -pgp-keys / -root-token-pgp-key (key files) into a sys/init or rekey body. 0, or -1
 * after printing (an exit-1 error). Used by operator init too. */
int cs_cli_pgp_flags(struct cli *c, cJSON *body);

/* raft.c: operator raft ... (argv[2] is "raft") and operator step-down. */
extern const struct cs_cli_family cs_cli_raft_family;
int cs_cli_operator_raft(struct cli *c, int argc, char **argv, int start);
int cs_cli_step_down(struct cli *c, int argc, char **argv, int start);

/* read_write.c: read, write, list, delete, login, path-help. */
extern const struct cs_cli_family cs_cli_read_write_family;
int cs_cli_read(struct cli *c, int argc, char **argv, int start);
int cs_cli_write(struct cli *c, int argc, char **argv, int start);
int cs_cli_list(struct cli *c, int argc, char **argv, int start);
int cs_cli_delete(struct cli *c, int argc, char **argv, int start);
int cs_cli_login(struct cli *c, int argc, char **argv);
int cs_cli_path_help(struct cli *c, int argc, char **argv, int start);

/* mounts.c: secrets, auth and audit (enable, disable, list; auth tune). */
extern const struct cs_cli_family cs_cli_mounts_family;
int cs_cli_secrets(struct cli *c, int argc, char **argv);
int cs_cli_auth(struct cli *c, int argc, char **argv);
int cs_cli_audit(struct cli *c, int argc, char **argv);

/* kv.c, policy.c, token.c: argv[1] is "kv", "policy" or "token". */
extern const struct cs_cli_family cs_cli_kv_family;
extern const struct cs_cli_family cs_cli_policy_family;
extern const struct cs_cli_family cs_cli_token_family;
int cs_cli_kv(struct cli *c, int argc, char **argv);
int cs_cli_policy(struct cli *c, int argc, char **argv);
int cs_cli_token(struct cli *c, int argc, char **argv);

#endif
