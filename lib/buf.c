#include "lib/buf.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cs_buf_reserve(struct cs_buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		abort();
	b->data = p;
	b->cap = cap;
}

void cs_buf_append(struct cs_buf *b, const void *p, size_t n)
{
	cs_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void cs_buf_puts(struct cs_buf *b, const char *s)
{
	cs_buf_append(b, s, strlen(s));
}

void cs_buf_putc(struct cs_buf *b, char c)
{
	cs_buf_append(b, &c, 1);
}

void cs_buf_vprintf(struct cs_buf *b, const char *fmt, va_list ap)
{
	/* Format straight into the free space; only a long result needs a second pass. */
	cs_buf_reserve(b, 63);
	size_t room = b->cap - b->len;
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(b->data + b->len, room, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->data[b->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		cs_buf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	}
	b->len += (size_t)n;
}

void cs_buf_printf(struct cs_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cs_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void cs_buf_put_u8(struct cs_buf *b, uint8_t v)
{
	cs_buf_append(b, &v, 1);
}

void cs_buf_put_u32(struct cs_buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	cs_buf_append(b, x, 4);
}

void cs_buf_put_u64(struct cs_buf *b, uint64_t v)
{
	cs_buf_put_u32(b, (uint32_t)v);
	cs_buf_put_u32(b, (uint32_t)(v >> 32));
}

void cs_buf_consume(struct cs_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

void cs_buf_reset(struct cs_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void cs_buf_free(struct cs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void cs_buf_free_secure(struct cs_buf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	cs_buf_free(b);
}

char *cs_buf_steal(struct cs_buf *b, size_t *len)
{
	if (!b->data)
		cs_buf_reserve(b, 0), b->data[0] = '\0';
	char *p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

const uint8_t *cs_read_bytes(struct cs_reader *r, size_t n)
{
	if (r->err || r->left < n) {
		r->err = 1;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

uint8_t cs_read_u8(struct cs_reader *r)
{
	const uint8_t *p = cs_read_bytes(r, 1);
	return p ? p[0] : 0;
}

uint32_t cs_read_u32(struct cs_reader *r)
{
	const uint8_t *p = cs_read_bytes(r, 4);
	if (!p)
		return 0;
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t cs_read_u64(struct cs_reader *r)
{
	uint64_t lo = cs_read_u32(r);
	uint64_t hi = cs_read_u32(r);
	return lo | hi << 32;
}
