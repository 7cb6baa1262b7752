/* Raw line entries written in their wire encoding, byte for byte as orjson writes them: the output
 * buffer, the JSON string escaper (with Python's strict UTF-8 check) and integers.
 *
 * Why shared: the file collector's CRI scan (collectors/files/_filescan.c) and the pod collector's block
 * scan (collectors/pods/_podscan.c) both write lines straight into `WireLines` (core/models.py), so a
 * record costs no object per line and no encoding of its lines; each holds its own tests against
 * orjson (tests/unit/collectors/files/test_filescan.py, tests/unit/collectors/pods/test_podscan.py).
 * Include after <Python.h>.
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

/* `text` (`n` bytes) as the body of a JSON string, escaped as orjson escapes it (`"`, `\`, and the
 * control characters: \b \t \n \f \r by name, the others as \u00XX; everything else as it is, UTF-8
 * included), appended to `out` (room for 6 bytes per input byte reserved by the caller). Returns the
 * number of characters (code points), or -1 if `text` is not valid UTF-8 as Python's strict decoder
 * has it (no overlong forms, no surrogates, nothing past U+10FFFF). */
static Py_ssize_t escape_utf8(const unsigned char *text, Py_ssize_t n, Out *out) {
    char *w = out->data + out->used;
    const char *p = (const char *)text, *end = p + n;
    Py_ssize_t chars = 0;
    while (p < end) {
        const char *stop = skip_plain(p, end); /* a JSON log line has a quote every few bytes */
        memcpy(w, p, (size_t)(stop - p));
        w += stop - p;
        chars += stop - p;
        p = stop;
        if (p == end) break;
        unsigned char c = (unsigned char)*p;
        if (c >= 0x80) {
            int length = utf8_length(p, end);
            if (!length) return -1;
            memcpy(w, p, (size_t)length);
            w += length;
            p += length;
        } else {
            w = json_escape_ascii(w, c);
            p++;
        }
        chars++;
    }
    out->used = w - out->data;
    return chars;
}

static const char DIGIT_PAIRS[201] = /* "00" to "99" */
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* `value` in decimal, as orjson writes an integer, appended to `out` (room reserved by the caller). */
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
