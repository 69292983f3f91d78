/*
 * The client side of the `custos` binary: Vault's CLI verbs and flags against a custos
 * (or Vault) server over HTTP(S) with libcurl.
 *
 *   custos operator init [-key-shares=5] [-key-threshold=3] [-format=json]
 *   custos operator unseal [-reset] [KEY]      (prompts for the key on a terminal)
 *   custos operator seal
 *   custos status                              (exit 2 when sealed, 1 on error)
 *   custos read|write|list|delete PATH [k=v ...] [-field=NAME]
 *   custos secrets enable|disable|list ...
 *
 * Environment: VAULT_ADDR / CUSTOS_ADDR (default https://127.0.0.1:8200), VAULT_TOKEN /
 * CUSTOS_TOKEN (else ~/.vault-token), VAULT_CACERT / CUSTOS_CACERT,
 * VAULT_SKIP_VERIFY / CUSTOS_SKIP_VERIFY, VAULT_FORMAT / CUSTOS_FORMAT.
 */
#ifndef CS_CLI_CLI_H
#define CS_CLI_CLI_H

/* Run one CLI command; argv[0] is the program name, argv[1] the verb. Returns the
 * process exit status (0 ok, 1 error, 2 usage error / sealed for `status`). */
int cs_cli_main(int argc, char **argv);

#endif
