/* Reading and writing parsed chunks as orjson writes them, shared by the C loops that take a chunk's bytes
 * without decoding it: the drain's splice (agents/_linescan.c) and the group stage's fold
 * (tables/_tracefold.c). A string here is "canonical" when it is exactly what orjson.dumps writes for its
 * value (its escapes, valid UTF-8); anything else makes the caller hand the chunk to orjson.
 *
 * Included by each extension (every function is static): `chunkjson_init` fills the character table
 * once, from the module's init.
 */
#ifndef LOGWEAVE_CHUNKJSON_H
#define LOGWEAVE_CHUNKJSON_H

#include <Python.h>
#include <limits.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <string.h>

#include "_jsontext.h"

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static inline int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra) cap *= 2;
    char *grown = PyMem_Realloc(b->data, (size_t)cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static unsigned char plain_ascii[256]; /* printable ASCII but `"` and `\`: copied as they stand */

/* The byte a two-byte escape `\e` stands for, among those orjson writes (\" \\ \b \t \n \f \r), else -1. */
static inline int short_escape(char e) {
    switch (e) {
    case '"': return '"';
    case '\\': return '\\';
    case 'b': return '\b';
    case 't': return '\t';
    case 'n': return '\n';
    case 'f': return '\f';
    case 'r': return '\r';
    default: return -1;
    }
}

/* Skips plain ASCII and the two-byte escapes orjson writes (\" \\ \b \t \n \f \r) sixteen bytes at a time,
 * every stop of a block taken from one mask; stops at the closing quote, any other escape, a control
 * character or a byte of 0x80 and above (the caller decides what they are), or where fewer than 16 bytes
 * remain. Log lines are JSON themselves, so their texts hold an escaped quote every few bytes. */
static inline const char *skip_simple(const char *p, const char *end, int *escaped) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i slashes = _mm_cmpeq_epi8(v, slash);
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), slashes), _mm_cmplt_epi8(v, space)));
        unsigned lone = (unsigned)_mm_movemask_epi8(slashes);
        if (lone != 0 && (lone & ((lone >> 1) | 0x8000u)) == 0) {
            /* Backslashes, none next to another and none last: each escapes the byte after it, so the whole block
             * is decided at once: its first stop that is not an escaped byte, and whether every escape before it
             * is one of the short ones orjson writes. Anything else takes the loop below. */
            __m128i simple = _mm_or_si128(
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, _mm_set1_epi8('b'))),
                             _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('t')), _mm_cmpeq_epi8(v, _mm_set1_epi8('n')))),
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('f')), _mm_cmpeq_epi8(v, _mm_set1_epi8('r'))));
            unsigned escaped_at = lone << 1;
            unsigned stop = mask & ~lone & ~escaped_at;
            unsigned before = stop != 0 ? (stop & (0u - stop)) - 1 : 0xFFFFu;
            if ((escaped_at & ~(unsigned)_mm_movemask_epi8(simple) & before) == 0) {
                if (lone & before) *escaped = 1;
                if (stop != 0) return p + __builtin_ctz(stop);
                p += 16;
                continue;
            }
        }
        int next = 16;
        while (mask != 0) {
            int i = __builtin_ctz(mask);
            if (p[i] != '\\' || p + i + 1 >= end) return p + i;
            if (short_escape(p[i + 1]) < 0) return p + i;
            *escaped = 1;
            if (i == 15) { /* the escaped byte opens the next block */
                next = 17;
                break;
            }
            mask &= ~((1u << (i + 2)) - 1); /* the backslash and the byte it escapes */
        }
        p += next;
    }
#else
    (void)end;
    (void)escaped;
#endif
    return p;
}

/* The control character a `\u00XX` escape at p (its backslash) stands for, or -1 when orjson would not write
 * it so: orjson writes \u00XX, in lower-case hex, only for control characters without a short form. */
static inline int control_escape(const char *p, const char *end) {
    if (end - p < 6 || p[1] != 'u' || p[2] != '0' || p[3] != '0' || (p[4] != '0' && p[4] != '1')) return -1;
    char h = p[5];
    int v = (p[4] - '0') << 4;
    if (h >= '0' && h <= '9') v |= h - '0';
    else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
    else return -1;
    return v == '\b' || v == '\t' || v == '\n' || v == '\f' || v == '\r' ? -1 : v;
}

/* A JSON string at p (the opening quote) in exactly orjson's escaping, with valid UTF-8; returns the
 * position after the closing quote (NULL if not so) and whether it holds an escape. */
static inline const char *canonical_string(const char *p, const char *end, int *escaped) {
    if (p >= end || *p != '"') return NULL;
    p++;
    *escaped = 0;
    while (p < end) {
        p = skip_plain(skip_simple(p, end, escaped), end);
        if (p >= end) return NULL;
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            *escaped = 1;
            if (p + 1 >= end) return NULL;
            if (short_escape(p[1]) >= 0) {
                p += 2;
                continue;
            }
            if (control_escape(p, end) < 0) return NULL;
            p += 6;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        int n = utf8_length(p, end);
        if (n == 0) return NULL;
        p += n;
    }
    return NULL;
}

/* `canonical_string` and `unescape_into` in one pass: the string at p (its opening quote), checked to be in
 * orjson's exact escaping with valid UTF-8, has its content unescaped onto the end of `out`; returns the
 * position after the closing quote, or NULL when it is not canonical or (with an error set) memory ran out.
 * Sixteen bytes are checked and copied at a time; a text's bytes are read once. */
static inline const char *canonical_unescape(const char *p, const char *end, Buf *out, int *escaped) {
    if (p >= end || *p != '"') return NULL;
    p++;
    *escaped = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
#endif
    for (;;) {
        if (out->cap - out->len < 32 && buf_reserve(out, 32) < 0) return NULL;
        char *o = out->data + out->len;
#if defined(__SSE2__)
        if (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            unsigned mask = (unsigned)_mm_movemask_epi8(_mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)), _mm_cmplt_epi8(v, space)));
            _mm_storeu_si128((__m128i *)o, v); /* room for 32 was made: the bytes past a stop are overwritten */
            if (mask == 0) {
                p += 16;
                out->len += 16;
                continue;
            }
            int i = __builtin_ctz(mask);
            p += i;
            out->len += i;
            o += i;
        } else
#endif
        {
            if (p >= end) return NULL;
            if (plain_ascii[(unsigned char)*p]) {
                *o = *p++;
                out->len++;
                continue;
            }
        }
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            *escaped = 1;
            if (p + 1 >= end) return NULL;
            int byte = short_escape(p[1]);
            int width = 2;
            if (byte < 0) {
                byte = control_escape(p, end);
                width = 6;
                if (byte < 0) return NULL;
            }
            *o = (char)byte;
            out->len++;
            p += width;
            continue;
        }
        int n = utf8_length(p, end);
        if (n == 0) return NULL;
        memcpy(o, p, (size_t)n);
        out->len += n;
        p += n;
    }
}

/* The content of a canonical string literal [p, end) (quotes excluded) unescaped into b. */
static inline int unescape_into(Buf *b, const char *p, const char *end) {
    if (buf_reserve(b, end - p) < 0) return -1;
    char *out = b->data + b->len;
    while (p < end) {
        const char *slash = memchr(p, '\\', (size_t)(end - p)); /* the run before it is copied as it stands */
        Py_ssize_t run = (slash != NULL ? slash : end) - p;
        memcpy(out, p, (size_t)run);
        out += run;
        p += run;
        if (p >= end) break;
        int byte = short_escape(p[1]); /* the literal is canonical: else a \u00XX of a control character */
        *out++ = (char)(byte >= 0 ? byte : control_escape(p, end));
        p += byte >= 0 ? 2 : 6;
    }
    b->len = out - b->data;
    return 0;
}

/* A canonical JSON integer (no leading zeros, no "-0") within 64 bits; returns the position after it. */
static inline const char *canonical_int(const char *p, const char *end, long long *value) {
    const char *start = p;
    int negative = p < end && *p == '-';
    if (negative) p++;
    if (p >= end || *p < '0' || *p > '9') return NULL;
    if (*p == '0' && (negative || (p + 1 < end && p[1] >= '0' && p[1] <= '9'))) return NULL;
    unsigned long long v = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - digits >= 19) return NULL;
        v = v * 10 + (unsigned long long)(*p - '0');
        p++;
    }
    if (v > (unsigned long long)LLONG_MAX + (negative ? 1u : 0u)) return NULL;
    *value = negative ? (long long)(0ull - v) : (long long)v;
    (void)start;
    return p;
}

static inline int expect(const char **p, const char *end, const char *text, Py_ssize_t n) {
    if (end - *p < n || memcmp(*p, text, (size_t)n) != 0) return 0;
    *p += n;
    return 1;
}

static inline void chunkjson_init(void) {
    for (int c = 0x20; c < 0x80; c++) plain_ascii[c] = c != '"' && c != '\\';
}

static inline int put_int(Buf *b, long long v, int base16) { /* decimal (str(v)) or lower-case hex (f"{v:x}", v >= 0) */
    static const char hex[] = "0123456789abcdef";
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char digits[24];
    int n = sizeof digits;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    if (base16) { /* constant bases: shifts and a multiply instead of a division per digit */
        do {
            digits[--n] = hex[u & 15];
            u >>= 4;
        } while (u);
    } else {
        while (u >= 100) { /* two digits per division */
            unsigned pair = (unsigned)(u % 100) * 2;
            u /= 100;
            digits[--n] = pairs[pair + 1];
            digits[--n] = pairs[pair];
        }
        if (u >= 10) {
            digits[--n] = pairs[u * 2 + 1];
            digits[--n] = pairs[u * 2];
        } else {
            digits[--n] = (char)('0' + u);
        }
    }
    if (v < 0) digits[--n] = '-';
    return buf_put(b, digits + n, (Py_ssize_t)sizeof digits - n);
}

/* Appends `s` as orjson encodes a str. 1: written; 0: not a str of valid code points (Python decides);
 * -1: out of memory. */
static inline int put_json_str(Buf *b, PyObject *s) {
    if (!PyUnicode_CheckExact(s)) return 0;
    Py_ssize_t n;
    const unsigned char *u = (const unsigned char *)PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t need = 2;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        need += (c == '"' || c == '\\' || c == '\b' || c == '\t' || c == '\n' || c == '\f' || c == '\r') ? 2
                : c < 0x20                                                                              ? 6
                                                                                                        : 1;
    }
    if (buf_reserve(b, need) < 0) return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        out = json_escape_ascii(out, c);
    }
    *out++ = '"';
    b->len = out - b->data;
    return 1;
}

/* A Python int that fits 64 bits (bool excluded), else 0. */
static inline int exact_int(PyObject *o, long long *out) {
    if (!PyLong_CheckExact(o)) return 0;
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* A parsed line as orjson wrote it in a chunk's `lines`: [src, sid, pos, time_ns, trace, level, service, text,
 * stream], where each field's literal is (quotes included), and the three integers. */
enum { ENTRY_FIELDS = 9, E_SRC = 0, E_SID, E_POS, E_TIME, E_TRACE, E_LEVEL, E_SERVICE, E_TEXT, E_STREAM };
typedef struct {
    const char *at[ENTRY_FIELDS], *after[ENTRY_FIELDS];
    int escaped[ENTRY_FIELDS];
    long long src, pos, time_ns;
} ParsedEntry;

/* Reads the entry at p (its `[`) in orjson's exact form; returns the position after its `]`, or NULL when
 * it is not that (the caller decodes the chunk instead). */
static inline const char *read_entry(const char *p, const char *end, ParsedEntry *e) {
    memset(e->escaped, 0, sizeof e->escaped);
    e->src = e->pos = e->time_ns = 0;
    if (p >= end || *p++ != '[') return NULL;
    for (int f = 0; f < ENTRY_FIELDS; f++) {
        e->at[f] = p;
        if (f == E_SRC || f == E_POS || f == E_TIME)
            p = canonical_int(p, end, f == E_SRC ? &e->src : f == E_POS ? &e->pos : &e->time_ns);
        else
            p = canonical_string(p, end, &e->escaped[f]);
        if (p == NULL || p >= end) return NULL;
        e->after[f] = p;
        if (*p++ != (f == ENTRY_FIELDS - 1 ? ']' : ',')) return NULL;
    }
    return p;
}

/* After an entry, in a `lines` array ending at `end` (after its `]`): 1 another follows (*pp moved past the
 * comma), 0 the array ended, -1 neither. */
static inline int next_entry(const char **pp, const char *end) {
    const char *p = *pp;
    if (p >= end) return -1;
    if (*p == ',') {
        *pp = p + 1;
        return 1;
    }
    return *p == ']' && p + 1 == end ? 0 : -1;
}

typedef struct {
    const char *at; /* the literal in the record, quotes included */
    Py_ssize_t len;
    PyObject *value; /* its str (owned) */
} Literal;

/* The str of a canonical literal, reusing the last one read at this field when the bytes are the same
 * (a trace's lines, one service, one level follow each other). New reference. */
static inline PyObject *literal_str(Literal *last, const char *at, const char *end, int escaped, Buf *scratch) {
    Py_ssize_t len = end - at;
    if (last->value != NULL && last->len == len && memcmp(last->at, at, (size_t)len) == 0) {
        Py_INCREF(last->value);
        return last->value;
    }
    PyObject *value;
    if (escaped) {
        scratch->len = 0;
        if (unescape_into(scratch, at + 1, end - 1) < 0) return NULL;
        value = PyUnicode_DecodeUTF8(scratch->data, scratch->len, NULL);
    } else {
        value = PyUnicode_DecodeUTF8(at + 1, len - 2, NULL);
    }
    if (value == NULL) return NULL;
    Py_XSETREF(last->value, value);
    last->at = at;
    last->len = len;
    Py_INCREF(value);
    return value;
}

#endif
