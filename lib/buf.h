/*
 * Growable byte buffer. Always NUL-terminated after data[len] so it can be used as a C
 * string. Allocation failure aborts (sizes here are small and server-controlled; sizes
 * driven by input are checked by the caller before appending).
 */
#ifndef CS_LIB_BUF_H
#define CS_LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct cs_buf {
	char *data; /* NULL until the first append */
	size_t len;
	size_t cap;
};

#define CS_BUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void cs_buf_reserve(struct cs_buf *b, size_t extra);
void cs_buf_append(struct cs_buf *b, const void *p, size_t n);
void cs_buf_puts(struct cs_buf *b, const char *s);
void cs_buf_putc(struct cs_buf *b, char c);
void cs_buf_printf(struct cs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cs_buf_vprintf(struct cs_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void cs_buf_put_u8(struct cs_buf *b, uint8_t v);
void cs_buf_put_u32(struct cs_buf *b, uint32_t v); /* little endian */
void cs_buf_put_u64(struct cs_buf *b, uint64_t v); /* little endian */
/* Drop the first n bytes (for consumed input). */
void cs_buf_consume(struct cs_buf *b, size_t n);
void cs_buf_reset(struct cs_buf *b); /* len = 0, keeps memory */
void cs_buf_free(struct cs_buf *b);
/* Zeroise the whole capacity, then free: for buffers that held plaintext. */
void cs_buf_free_secure(struct cs_buf *b);
/* Hand the memory to the caller (NUL-terminated); b is reset to empty. */
char *cs_buf_steal(struct cs_buf *b, size_t *len);

/* Bounded little-endian reader over a byte range; sets `err` instead of overrunning. */
struct cs_reader {
	const uint8_t *p;
	size_t left;
	int err;
};
uint8_t cs_read_u8(struct cs_reader *r);
uint32_t cs_read_u32(struct cs_reader *r);
uint64_t cs_read_u64(struct cs_reader *r);
/* Returns a pointer into the input (not copied), or NULL and sets err. */
const uint8_t *cs_read_bytes(struct cs_reader *r, size_t n);

#endif
