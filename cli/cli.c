/*
 * The CLI verbs (see cli.h): Vault's command names, flags, output and exit codes, so
 * scripts written for `vault` work against `custos` unchanged.
 *
 * Flow of every command: parse flags with Go's flag-package rules (flags first, -flag,
 * --flag, -flag=value, -flag value, booleans only as -flag or -flag=bool, "--" ends
 * flags, parsing stops at the first positional argument) → check the positional
 * arguments → build the client from flags and environment → one or two API calls →
 * print (table or JSON) → exit code.
 *
 * Exit codes follow the Vault CLI's commands: 0 success; 1 for flag/argument errors,
 * unreadable input and output problems (and any error in `status`, where 2 means
 * sealed); 2 for errors reported by the server or while reaching it ("Error reading
 * ...", "No value found at ..."); 127 for an unknown top-level command.
 *
 * This file is only the entry point: it picks the family for argv[1] (see families.h
 * for which file holds which verbs) and hands it the families' flag tables. Flag
 * parsing lives in args.c, shared helpers in common.c (both behind cli_internal.h).
 */
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_internal.h"
#include "cli/families.h"

#ifndef CUSTOS_VERSION
#define CUSTOS_VERSION "0.0.0-dev"
#endif
#ifndef CUSTOS_BUILD_DATE
#define CUSTOS_BUILD_DATE "unknown"
#endif

#define DEFAULT_ADDR CS_CLI_DEFAULT_ADDR

/* ------------------------------------------------------------------ usage */

static const char usage_main[] =
    "Usage: custos <command> [args]\n"
    "\n"
    "Common commands:\n"
    "    read        Read data and retrieves secrets\n"
    "    write       Write data, configuration, and secrets\n"
    "    delete      Delete secrets and configuration\n"
    "    list        List data or secrets\n"
    "    login       Authenticate locally\n"
    "    status      Print seal and HA status\n"
    "\n"
    "Other commands:\n"
    "    audit       Interact with audit devices\n"
    "    auth        Interact with auth methods\n"
    "    kv          Interact with custos's Key-Value storage\n"
    "    operator    Perform operator-specific tasks (init, unseal, seal, raft)\n"
    "    path-help   Retrieve API help for paths\n"
    "    policy      Interact with policies\n"
    "    secrets     Interact with secrets engines (enable, disable, list)\n"
    "    server      Start a custos server\n"
    "    token       Interact with tokens\n"
    "    version     Prints the custos version\n"
    "\n"
    "Environment: CUSTOS_ADDR or VAULT_ADDR (default " DEFAULT_ADDR "),\n"
    "CUSTOS_TOKEN or VAULT_TOKEN (else ~/.vault-token), CUSTOS_CACERT or VAULT_CACERT,\n"
    "CUSTOS_SKIP_VERIFY or VAULT_SKIP_VERIFY, CUSTOS_FORMAT or VAULT_FORMAT.\n";

/* ------------------------------------------------------------------ entry point */

/* Every family's flag and usage table; args.c searches them in this order after the
 * HTTP/output flags. A command's rows live in exactly one family. */
static const struct cs_cli_family *const families[] = {
    &cs_cli_operator_family, &cs_cli_read_write_family, &cs_cli_mounts_family, &cs_cli_kv_family,
    &cs_cli_policy_family,   &cs_cli_token_family,      &cs_cli_raft_family,   &cs_cli_keys_family,
};

/* Top-level verbs: a single command (run, flags from argv[2]) or a group that picks
 * its subcommand from argv[2] (run_group). */
static const struct {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv, int start);
	int (*run_group)(struct cli *c, int argc, char **argv);
} verbs[] = {
    {"operator", NULL, cs_cli_operator}, {"status", cs_cli_status, NULL},
    {"read", cs_cli_read, NULL},         {"write", cs_cli_write, NULL},
    {"list", cs_cli_list, NULL},         {"delete", cs_cli_delete, NULL},
    {"secrets", NULL, cs_cli_secrets},   {"auth", NULL, cs_cli_auth},
    {"audit", NULL, cs_cli_audit},       {"kv", NULL, cs_cli_kv},
    {"policy", NULL, cs_cli_policy},     {"token", NULL, cs_cli_token},
    {"login", NULL, cs_cli_login},       {"path-help", cs_cli_path_help, NULL},
};

int cs_cli_main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_main, stderr);
		return 127;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "version") == 0 || strcmp(verb, "-version") == 0 ||
	    strcmp(verb, "--version") == 0 || strcmp(verb, "-v") == 0) {
		printf("custos v%s, built %s\n", CUSTOS_VERSION, CUSTOS_BUILD_DATE);
		return 0;
	}
	if (strcmp(verb, "help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "-help") == 0 ||
	    strcmp(verb, "--help") == 0) {
		fputs(usage_main, stdout);
		return 0;
	}

	struct cli c;
	memset(&c, 0, sizeof c);
	c.families = families;
	c.n_families = CS_ARRAY_LEN(families);
	int code = -1;
	for (size_t i = 0; i < CS_ARRAY_LEN(verbs); i++) {
		if (strcmp(verb, verbs[i].name) != 0)
			continue;
		code = verbs[i].run ? verbs[i].run(&c, argc, argv, 2)
				    : verbs[i].run_group(&c, argc, argv);
		break;
	}
	if (code < 0) {
		fprintf(stderr, "Unknown command: %s\n\n", verb);
		fputs(usage_main, stderr);
		code = 127;
	}
	fflush(stdout);
	cs_cli_free(&c);
	return code;
}
