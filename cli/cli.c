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
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/cli_internal.h"
#include "cli/client.h"
#include "cli/format.h"
#include "lib/buf.h"
#include "lib/util.h"

#ifndef CUSTOS_VERSION
#define CUSTOS_VERSION "0.0.0-dev"
#endif
#ifndef CUSTOS_BUILD_DATE
#define CUSTOS_BUILD_DATE "unknown"
#endif

#define DEFAULT_ADDR          CS_CLI_DEFAULT_ADDR
#define DEFAULT_KEY_SHARES    5
#define DEFAULT_KEY_THRESHOLD 3
/* Largest input accepted from stdin or a file for `write` values. */
#define MAX_INPUT (32u * 1024 * 1024)

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
	int code;
	if (strcmp(verb, "operator") == 0)
		code = cs_cli_operator(&c, argc, argv);
	else if (strcmp(verb, "status") == 0)
		code = cs_cli_status(&c, argc, argv, 2);
	else if (strcmp(verb, "read") == 0)
		code = cs_cli_read(&c, argc, argv, 2);
	else if (strcmp(verb, "write") == 0)
		code = cs_cli_write(&c, argc, argv, 2);
	else if (strcmp(verb, "list") == 0)
		code = cs_cli_list(&c, argc, argv, 2);
	else if (strcmp(verb, "delete") == 0)
		code = cs_cli_delete(&c, argc, argv, 2);
	else if (strcmp(verb, "secrets") == 0)
		code = cs_cli_secrets(&c, argc, argv);
	else if (strcmp(verb, "auth") == 0)
		code = cs_cli_auth(&c, argc, argv);
	else if (strcmp(verb, "audit") == 0)
		code = cs_cli_audit(&c, argc, argv);
	else if (strcmp(verb, "kv") == 0)
		code = cs_cli_kv(&c, argc, argv);
	else if (strcmp(verb, "policy") == 0)
		code = cs_cli_policy(&c, argc, argv);
	else if (strcmp(verb, "token") == 0)
		code = cs_cli_token(&c, argc, argv);
	else if (strcmp(verb, "login") == 0)
		code = cs_cli_login(&c, argc, argv);
	else {
		fprintf(stderr, "Unknown command: %s\n\n", verb);
		fputs(usage_main, stderr);
		code = 127;
	}
	fflush(stdout);
	cs_cli_free(&c);
	return code;
}
