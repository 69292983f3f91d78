#include "lib/util.h"

#include "lib/err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Small draws (request ids, nonces, token ids: a few to a few dozen bytes, several per
 * request) come from a per-thread block of OpenSSL DRBG output: each RAND_bytes call
 * costs locking and a fork check (a getpid system call) whatever its size, which was ~8%
 * of a transit encryption. Bytes leave the block once, and are wiped from it as they
 * leave; a forked child discards its copy (pthread_atfork) so parent and child never hand
 * out the same bytes. Large draws go straight to RAND_bytes.
 */
#define RAND_BLOCK 512
#define RAND_SMALL 64
static _Thread_local struct {
	unsigned char b[RAND_BLOCK];
	size_t left; /* unread bytes at the end of b */
} rand_block;
static pthread_once_t rand_once = PTHREAD_ONCE_INIT;

static void rand_forget(void)
{
	OPENSSL_cleanse(rand_block.b, sizeof rand_block.b);
	rand_block.left = 0;
}

static void rand_init(void)
{
	if (pthread_atfork(NULL, NULL, rand_forget) != 0)
		abort();
}

void cs_random(void *out, size_t n)
{
	if (n > RAND_SMALL) {
		if (RAND_bytes(out, (int)n) != 1)
			abort();
		return;
	}
	pthread_once(&rand_once, rand_init);
	if (rand_block.left < n) {
		if (RAND_bytes(rand_block.b, RAND_BLOCK) != 1)
			abort();
		rand_block.left = RAND_BLOCK;
	}
	unsigned char *p = rand_block.b + (RAND_BLOCK - rand_block.left);
	memcpy(out, p, n);
	OPENSSL_cleanse(p, n);
	rand_block.left -= n;
}

void cs_random_base62(char *out, size_t n)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t i = 0;
	while (i < n) {
		uint8_t r[32];
		cs_random(r, sizeof r);
		for (size_t j = 0; j < sizeof r && i < n; j++)
			if (r[j] < 248) /* 248 = 4*62: reject to avoid modulo bias */
				out[i++] = alphabet[r[j] % 62];
	}
	out[n] = '\0';
}

void cs_uuid(char out[37])
{
	uint8_t b[16];
	cs_random(b, sizeof b);
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

bool cs_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	if (alen != blen)
		return false;
	return CRYPTO_memcmp(a, b, alen) == 0;
}

void cs_zero(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

void cs_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long cs_hex_decode(const char *in, size_t len, uint8_t *out)
{
	if (len % 2)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(len / 2);
}

char *cs_b64_encode(const uint8_t *in, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (!out)
		abort();
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

char *cs_b64url_encode(const uint8_t *in, size_t n)
{
	char *s = cs_b64_encode(in, n);
	size_t len = strlen(s);
	while (len && s[len - 1] == '=')
		s[--len] = '\0';
	for (char *c = s; *c; c++)
		*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	return s;
}

uint8_t *cs_b64url_decode(const char *in, size_t len, size_t *outlen)
{
	char *t = malloc(len + 1);
	if (!t)
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_')) {
			free(t);
			return NULL;
		}
		t[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	uint8_t *out = cs_b64_decode(t, len, outlen);
	cs_zero(t, len);
	free(t);
	if (out)
		out[*outlen] = 0; /* cs_b64_decode leaves a spare byte */
	return out;
}

uint8_t *cs_b64_decode(const char *in, size_t len, size_t *outlen)
{
	/* EVP_DecodeBlock needs a multiple of 4: re-pad unpadded input. */
	size_t padded = (len + 3) / 4 * 4;
	if (len % 4 == 1)
		return NULL;
	char *tmp = malloc(padded + 1);
	uint8_t *out = malloc(padded / 4 * 3 + 1);
	if (!tmp || !out)
		abort();
	memcpy(tmp, in, len);
	for (size_t i = len; i < padded; i++)
		tmp[i] = '=';
	size_t data_len = len;
	while (data_len > 0 && len - data_len < 2 && in[data_len - 1] == '=')
		data_len--;
	/* Padding only completes a final group: "==" alone or "AA=A" are not base64. */
	bool bad = (len - data_len > 0 && (len % 4 != 0 || data_len % 4 < 2));
	for (size_t i = 0; i < data_len && !bad; i++) {
		char c = in[i];
		bad = !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '+' || c == '/');
	}
	if (bad) {
		cs_zero(tmp, padded);
		free(tmp);
		free(out);
		return NULL;
	}
	int n = padded ? EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded) : 0;
	if (n < 0) {
		cs_zero(tmp, padded);
		free(tmp);
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts padding bytes as zeros: subtract them. */
	size_t pad = 0;
	while (pad < 2 && padded > pad && tmp[padded - 1 - pad] == '=')
		pad++;
	cs_zero(tmp, padded);
	free(tmp);
	*outlen = (size_t)n - pad;
	return out;
}

int cs_parse_duration(const char *s, int64_t *secs)
{
	if (!s || !*s)
		return CS_EINVAL;
	char *end;
	errno = 0;
	long long whole = strtoll(s, &end, 10);
	if (*end == '\0' && errno == 0) {
		if (whole < 0)
			return CS_EINVAL;
		*secs = whole;
		return 0;
	}
	/* Go duration: sequence of <decimal><unit>. */
	double total = 0;
	const char *p = s;
	while (*p) {
		/* Digits and '.' only: strtod would also take " 1", "+1", "1e3", "0x1", "nan". */
		size_t digits = strspn(p, "0123456789.");
		if (digits == 0)
			return CS_EINVAL;
		errno = 0;
		double v = strtod(p, &end);
		if (end != p + digits || errno || !(v >= 0))
			return CS_EINVAL;
		p = end;
		double mult;
		if (strncmp(p, "ns", 2) == 0)
			mult = 1e-9, p += 2;
		else if (strncmp(p, "us", 2) == 0 || strncmp(p, "\xc2\xb5s", 3) == 0)
			mult = 1e-6, p += (*p == 'u' ? 2 : 3);
		else if (strncmp(p, "ms", 2) == 0)
			mult = 1e-3, p += 2;
		else if (*p == 's')
			mult = 1, p++;
		else if (*p == 'm')
			mult = 60, p++;
		else if (*p == 'h')
			mult = 3600, p++;
		else if (*p == 'd')
			mult = 86400, p++;
		else
			return CS_EINVAL;
		total += v * mult;
	}
	if (total > 9.2e18)
		return CS_EINVAL;
	*secs = (int64_t)total;
	return 0;
}

void cs_format_duration(int64_t secs, char *out, size_t outlen)
{
	if (secs <= 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	int64_t h = secs / 3600, m = (secs % 3600) / 60, s = secs % 60;
	if (h)
		snprintf(out, outlen, "%lldh%lldm%llds", (long long)h, (long long)m, (long long)s);
	else if (m)
		snprintf(out, outlen, "%lldm%llds", (long long)m, (long long)s);
	else
		snprintf(out, outlen, "%llds", (long long)s);
}

int64_t cs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

uint64_t cs_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cs_format_time(int64_t ns, char *out, size_t outlen)
{
	time_t sec = (time_t)(ns / 1000000000LL);
	long frac = (long)(ns % 1000000000LL);
	if (frac < 0) {
		frac += 1000000000L;
		sec--;
	}
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

int cs_parse_bool(const char *s, bool *out)
{
	static const char *t[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *f[] = {"0", "f", "F", "FALSE", "false", "False"};
	for (size_t i = 0; i < CS_ARRAY_LEN(t); i++) {
		if (strcmp(s, t[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, f[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return CS_EINVAL;
}

int cs_read_file(const char *path, char **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return e;
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		abort();
	for (;;) {
		if (n + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*data = buf;
	if (len)
		*len = n;
	return 0;
}

int cs_mkdir_p(const char *path, unsigned mode)
{
	char tmp[4096];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof tmp)
		return ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST)
			return errno;
		*p = '/';
	}
	if (mkdir(tmp, (mode_t)mode) != 0) {
		struct stat st;
		if (errno != EEXIST)
			return errno;
		if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
			return ENOTDIR;
	}
	return 0;
}

static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
	hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!hmac_alg)
		abort();
}

void cs_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, uint8_t out[32])
{
	pthread_once(&hmac_once, hmac_fetch);
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end()};
	size_t outl = 0;
	if (!ctx || EVP_MAC_init(ctx, key, key_len, params) != 1 ||
	    EVP_MAC_update(ctx, data, len) != 1 || EVP_MAC_final(ctx, out, &outl, 32) != 1 ||
	    outl != 32)
		abort(); /* only on allocation failure: a wrong MAC would be worse */
	EVP_MAC_CTX_free(ctx);
}
