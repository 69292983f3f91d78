/*
 * libFuzzer target for join challenge/answer decoding on the joining node (server/ha_join.c):
 * the bodies a node gets back from whatever answered at its join target — the challenge
 * reply (challenge + seal_config) and the answer reply (the cluster TLS keyring with the
 * CA certificate and key in PEM). The leader's side of the exchange (the unauthenticated
 * sys/storage/raft/bootstrap/challenge and /answer handlers) is reached through the HTTP
 * target, whose corpus has requests for both.
 *
 * Input: byte 0 selects the decoder (even: challenge, odd: answer); the rest is the body.
 * Challenge: got_challenge() must refuse the body (back to no join) or take it; a taken
 * challenge is then opened with a fixed key-encryption key the way unsealing does
 * (cs_ha_join_unsealed), which must fail cleanly (the body was not sealed by that key).
 * Answer: the JSON reply through answer_load() (CA certificate, this node's certificate,
 * which must fit the node's own join key, raft id and the CA), refused or loaded; and
 * its "tls_keyring" through cs_cluster_keyring_decode(), the decoder of the stored cluster
 * keyring (storage/cluster_keyring.c).
 * The harness resets the join state after each input.
 *
 * ha_join.c is included rather than linked so its static decoders are reachable without an
 * exported fuzz entry point (the library's ha_join.o is then never pulled in). Only the
 * cs_ha state the decoders touch is set up: no loop, no raft, no thread. A change to those
 * functions' signatures in ha_join.c must be mirrored here.
 */
#include "server/ha_join.c"
#include "storage/cluster_keyring.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cs_core fcore;
static struct cs_config fcfg;
static struct cs_ha *fha;
static EVP_PKEY *fkey; /* the joining node's key: answer_load takes a reference */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	cs_log_set_level(CS_LOG_ERROR);
	cs_config_init(&fcfg);
	fcfg.n_listeners = 1;
	static char node_id[] = "node-2";
	fcfg.node_id = node_id;
	fcore.cfg = &fcfg;
	if (cs_cluster_tls_gen_key(&fkey) != 0)
		abort();
	fha = calloc(1, sizeof *fha);
	fha->core = &fcore;
	pthread_mutex_init(&fha->mu, NULL);
	fcore.ha = fha;
	static char url[] = "https://127.0.0.1:1";
	fha->targets[0].url = url;
	fha->n_targets = 1;
	return 0;
}

static void challenge(const char *body)
{
	fha->phase = JOIN_SEEKING;
	got_challenge(fha, body);
	if (fha->phase == JOIN_CHALLENGED) {
		uint8_t kek[CS_KEY_LEN];
		memset(kek, 0x5a, sizeof kek);
		char err[256];
		if (cs_ha_join_unsealed(&fcore, kek, err, sizeof err) != CS_EINVAL)
			abort(); /* no input here is sealed under this key */
	} else if (fha->phase != JOIN_NONE) {
		abort();
	}
	pthread_mutex_lock(&fha->mu);
	result_set(fha, NULL);
	pthread_mutex_unlock(&fha->mu);
	if (fha->kek) {
		cs_secmem_free(fha->kek, CS_KEY_LEN);
		fha->kek = NULL;
	}
	fha->phase = JOIN_NONE;
	fcore.initialized = false;
	fcore.seal.shares = fcore.seal.threshold = 0;
}

static void answer(const char *body)
{
	cJSON *j = cJSON_Parse(body);
	const cJSON *kr = cJSON_GetObjectItemCaseSensitive(data_of(j), "tls_keyring");
	int lrc = kr ? cs_cluster_keyring_decode(kr, &fha->ca) : -1;
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "cs_cluster_keyring_decode: %d\n", lrc);
	if (lrc == 0 && (!fha->ca.cert || !fha->ca.key))
		abort();
	cs_cluster_cred_free(&fha->ca);
	memset(&fha->ca, 0, sizeof fha->ca);

	if (!fha->join_key) {
		EVP_PKEY_up_ref(fkey);
		fha->join_key = fkey;
	}
	int arc = answer_load(fha, data_of(j));
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "answer_load: %d\n", arc);
	if (arc == 0 && (!fha->ca.cert || !fha->minted.cert || fha->join_key))
		abort();
	cs_json_delete_wiped(j);
	cs_cluster_cred_free(&fha->ca);
	memset(&fha->ca, 0, sizeof fha->ca);
	cs_cluster_cred_free(&fha->minted);
	memset(&fha->minted, 0, sizeof fha->minted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	char *body = malloc(size);
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	if (data[0] % 2 == 0)
		challenge(body);
	else
		answer(body);
	free(body);
	return 0;
}
