/* Raw line entries written in their wire encoding, byte for byte as orjson writes them: the output
 * buffer, the JSON string escaper (with Python's strict UTF-8 check) and integers.
 *
 * Why shared: the file collector's CRI scan (collectors/files/_filescan.c) and the pod collector's block
 * scan (collectors/pods/_podscan.c) both write lines straight into `WireLines` (core/models.py), so a
 * record costs no object per line and no encoding of its lines; each holds its own tests against
 * orjson (tests/unit/collectors/files/test_filescan.py, tests/unit/collectors/pods/test_podscan.py).
 * Include after <Python.h>; call init_byte_class() once in the module's init.
 */
#ifndef LOGWEAVE_WIRELINES_H
#define LOGWEAVE_WIRELINES_H

#include "_jsontext.h"

#include <stdint.h>
#include <string.h>

/* A growing output buffer, on the stack while it is small. */
#define STACK_OUT 16384 /* a live read's few lines fit on the stack: no allocation per read */

typedef struct {
    char *data;
    Py_ssize_t used, size;
    char *heap; /* data, once it outgrew the stack buffer */
} Out;

static int reserve(Out *out, Py_ssize_t more) {
    if (out->used + more <= out->size) return 1;
    Py_ssize_t size = out->size * 2;
    while (size < out->used + more) size *= 2;
    char *grown = PyMem_Realloc(out->heap, (size_t)size);
    if (grown == NULL) return 0;
    if (out->heap == NULL) memcpy(grown, out->data, (size_t)out->used);
    out->data = out->heap = grown;
    out->size = size;
    return 1;
}

/* What a byte is to the escaper: 0 copied as it is, 1 escaped (`"`, `\`, control characters), 2 the
 * lead of a multi-byte UTF-8 sequence (or not UTF-8 at all). */
static unsigned char byte_class[256];

static void init_byte_class(void) {
    for (int c = 0; c < 256; c++) byte_class[c] = c < 0x20 || c == '"' || c == '\\' ? 1 : c >= 0x80 ? 2 : 0;
}

/* Which of the 8 bytes at `p` are not plain ASCII to copy (below 0x20, `"`, `\`, or 0x80 and up): the high
 * bit of each such byte's place. Each test is the classic "has a zero byte" word trick: exact as a yes or
 * no, and for the first such byte (in memory order); a borrow may also mark a byte after it. */
static inline uint64_t attention(const unsigned char *p) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t x, quote, backslash;
    memcpy(&x, p, 8);
    quote = x ^ (ones * '"');
    backslash = x ^ (ones * '\\');
    return (((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | x) & highs;
}

/* `text` (`n` bytes) as the body of a JSON string, escaped as orjson escapes it (`"`, `\`, and the
 * control characters: \b \t \n \f \r by name, the others as \u00XX; everything else as it is, UTF-8
 * included), appended to `out` (room for 6 bytes per input byte reserved by the caller). Returns the
 * number of characters (code points), or -1 if `text` is not valid UTF-8 as Python's strict decoder
 * has it (no overlong forms, no surrogates, nothing past U+10FFFF). */
static Py_ssize_t escape_utf8(const unsigned char *text, Py_ssize_t n, Out *out) {
    char *w = out->data + out->used;
    Py_ssize_t chars = 0, i = 0;
    while (i < n) {
        Py_ssize_t end = n;
        if (i + 8 <= n) {
            uint64_t marked = attention(text + i);
            memcpy(w, text + i, 8); /* (room for 6 bytes per byte left: what follows the plain ones is rewritten) */
            if (!marked) { /* eight plain bytes at a time */
                w += 8;
                i += 8;
                chars += 8;
                continue;
            }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            int plain = __builtin_ctzll(marked) >> 3; /* the plain bytes before the first marked one: kept */
            w += plain;
            i += plain;
            chars += plain;
            end = i + 1; /* then that byte (or sequence) alone, and eight at a time again */
#else
            end = i + 8; /* byte by byte through these eight (a sequence may reach past them) */
#endif
        }
        while (i < end) {
            unsigned char c = text[i];
            if (byte_class[c] == 0) {
                *w++ = (char)c;
                i++;
            } else if (c >= 0x80) {
                int length = utf8_length((const char *)text + i, (const char *)text + n);
                if (!length) return -1;
                memcpy(w, text + i, (size_t)length);
                w += length;
                i += length;
            } else {
                w = json_escape_ascii(w, c);
                i++;
            }
            chars++;
        }
    }
    out->used = w - out->data;
    return chars;
}

/* `value` in decimal, as orjson writes an integer, appended to `out` (room reserved by the caller). */
static const char DIGIT_PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static void put_int(Out *out, long long value) {
    char digits[24];
    int n = 24; /* written from the end, two digits at a time: positions and timestamps have 19 */
    unsigned long long v = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    while (v >= 100) {
        unsigned pair = (unsigned)(v % 100);
        v /= 100;
        n -= 2;
        memcpy(digits + n, DIGIT_PAIRS + 2 * pair, 2);
    }
    if (v >= 10) {
        n -= 2;
        memcpy(digits + n, DIGIT_PAIRS + 2 * v, 2);
    } else {
        digits[--n] = (char)('0' + v);
    }
    if (value < 0) out->data[out->used++] = '-';
    memcpy(out->data + out->used, digits + n, (size_t)(24 - n));
    out->used += 24 - n;
}

static void put(Out *out, const char *text, Py_ssize_t n) {
    memcpy(out->data + out->used, text, (size_t)n);
    out->used += n;
}

#endif
