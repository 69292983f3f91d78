/*
 * `seal` stanzas of the server configuration (Vault's), parsed into typed parameters:
 *
 *   seal "transit" {
 *     address = "https://10.0.0.9:8200"  token = "s.xxx"  key_name = "autounseal"
 *     mount_path = "transit/"  namespace = ""  disable_renewal = "false"
 *     tls_ca_cert = "/path/ca.pem"  tls_client_cert = "..."  tls_client_key = "..."
 *     tls_server_name = "seal.example"  tls_skip_verify = "false"
 *   }
 *   seal "pkcs11" {
 *     lib = "/usr/lib/softhsm/libsofthsm2.so"  slot = "0" | token_label = "custos"
 *     pin = "1234"  key_label = "custos-root"  mechanism = "CKM_AES_GCM" (or
 *     "CKM_RSA_PKCS_OAEP", or their numbers 0x1087 / 0x0009)  generate_key = "true"
 *   }
 *   seal "shamir" { disabled = "true" }     # only meaningful for a migration
 *
 * Every stanza accepts `disabled` (the old seal of a migration: used to unseal, never to
 * seal). Values may be strings, numbers or booleans, as Vault accepts. Unknown keys are
 * errors. At most two stanzas, at most one enabled (Vault's rule).
 *
 * The environment variables Vault reads override the file (Vault's precedence), applied
 * by cs_seal_params_apply_env when the seal is built, not at parse time:
 *   transit: VAULT_ADDR, VAULT_TOKEN, VAULT_TRANSIT_SEAL_KEY_NAME,
 *            VAULT_TRANSIT_SEAL_MOUNT_PATH, VAULT_NAMESPACE,
 *            VAULT_TRANSIT_SEAL_DISABLE_RENEWAL, VAULT_CACERT, VAULT_CLIENT_CERT,
 *            VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME, VAULT_SKIP_VERIFY
 *   pkcs11:  VAULT_HSM_LIB, VAULT_HSM_SLOT, VAULT_HSM_TOKEN_LABEL, VAULT_HSM_PIN,
 *            VAULT_HSM_KEY_LABEL, VAULT_HSM_MECHANISM, VAULT_HSM_GENERATE_KEY
 *            (and the BAO_HSM_* spellings OpenBao reads)
 * Secrets (token, pin, client key) are wiped when the parameters are freed.
 */
#ifndef CS_SERVER_SEAL_CONFIG_H
#define CS_SERVER_SEAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct cs_hcl_node;

#define CS_MAX_SEAL_STANZAS 2

enum cs_seal_kind { CS_SEAL_SHAMIR = 0, CS_SEAL_TRANSIT, CS_SEAL_PKCS11 };

/* PKCS#11 mechanisms the pkcs11 seal supports (their CKM_* values). */
#define CS_CKM_RSA_PKCS_OAEP 0x00000009UL
#define CS_CKM_AES_GCM       0x00001087UL

struct cs_seal_params {
	enum cs_seal_kind kind;
	bool disabled;
	int line; /* of the stanza, for later messages */
	/* transit */
	char *address, *token, *key_name, *mount_path, *namespace_;
	char *tls_ca_cert, *tls_client_cert, *tls_client_key, *tls_server_name;
	bool tls_skip_verify, disable_renewal;
	/* pkcs11 */
	char *lib, *token_label, *pin, *key_label;
	long slot; /* -1: none given */
	unsigned long mechanism;
	bool generate_key;
};

/* "shamir", "transit", "pkcs11". */
const char *cs_seal_kind_name(enum cs_seal_kind k);
/* The kind named by `s`; -1 when none. */
int cs_seal_kind_parse(const char *s);

void cs_seal_params_init(struct cs_seal_params *p, enum cs_seal_kind kind);
/*
 * One stanza's body (an HCL object) into *p (initialised here). 0, or CS_EINVAL with
 * "reason" in errmsg and the offending line in *errline. Checks keys and value types
 * only; what must be present is checked by cs_seal_params_check once the environment
 * was applied.
 */
int cs_seal_params_parse(const char *type, const struct cs_hcl_node *body, struct cs_seal_params *p,
			 char *errmsg, size_t errlen, int *errline);
/* Override from the environment (Vault's variables above); getenv_fn is getenv outside
 * tests. 0, or CS_EINVAL with errmsg for an unusable value (VAULT_HSM_SLOT=x). */
int cs_seal_params_apply_env(struct cs_seal_params *p, const char *(*getenv_fn)(const char *),
			     char *errmsg, size_t errlen);
/* What the seal needs before it can be built (address and key_name; lib, pin,
 * key_label, slot or token_label). Also applies defaults (mount_path "transit/"). */
int cs_seal_params_check(struct cs_seal_params *p, char *errmsg, size_t errlen);
/* A deep copy (secrets included). */
void cs_seal_params_copy(struct cs_seal_params *dst, const struct cs_seal_params *src);
void cs_seal_params_free(struct cs_seal_params *p);

#endif
