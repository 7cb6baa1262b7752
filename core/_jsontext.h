/* The text of JSON strings as orjson writes and Python decodes it: one ASCII byte's escape, and the
 * length of one valid UTF-8 character.
 *
 * Why shared: the C writers and readers of JSON strings must match orjson and Python's strict UTF-8 byte
 * for byte (the wire encoding of raw lines, core/_wirelines.h; parsed chunks, core/_chunkjson.h; the
 * intake's records, collectors/intake/_intakefast.c), each tested against them. They differ in how they
 * walk a string, not in how one byte is escaped or one character is checked, or how the plain bytes
 * before the next one to look at are skipped.
 */
#ifndef LOGWEAVE_JSONTEXT_H
#define LOGWEAVE_JSONTEXT_H

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* A quote, a backslash or a control byte `c`, escaped at `w`: the short forms JSON has (\" \\ \b \t \n
 * \f \r), else \u00xx in lower-case hex. Returns the end of what it wrote (2 or 6 bytes). */
static inline char *json_escape_ascii(char *w, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    *w++ = '\\';
    switch (c) {
    case '"': *w++ = '"'; break;
    case '\\': *w++ = '\\'; break;
    case '\b': *w++ = 'b'; break;
    case '\t': *w++ = 't'; break;
    case '\n': *w++ = 'n'; break;
    case '\f': *w++ = 'f'; break;
    case '\r': *w++ = 'r'; break;
    default:
        *w++ = 'u'; *w++ = '0'; *w++ = '0'; *w++ = hex[c >> 4]; *w++ = hex[c & 15];
    }
    return w;
}

/* The length of the valid UTF-8 character at p (a byte of 0x80 and above), or 0: no overlong forms, no
 * surrogates, nothing above U+10FFFF, not cut short by `end`. */
static inline int utf8_length(const char *p, const char *end) {
    unsigned char c = (unsigned char)*p;
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (end - p <= n) return 0;
    unsigned char c1 = (unsigned char)p[1];
    if (c1 < lo || c1 > hi) return 0;
    for (int k = 2; k <= n; k++) {
        if (((unsigned char)p[k] & 0xC0) != 0x80) return 0;
    }
    return n + 1;
}

/* Whether any of the 8 bytes of `w` is '"', '\\' or below 0x20. No such byte is missed; the byte loop after
 * it decides what the byte is, so the answer never depends on this test alone. */
static inline int word_stops(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"'), slash = w ^ (ones * '\\');
    uint64_t has_quote = (quote - ones) & ~quote & highs, has_slash = (slash - ones) & ~slash & highs;
    uint64_t has_control = (w - ones * 0x20) & ~w & highs;
    return (has_quote | has_slash | has_control) != 0;
}

/* The first byte at or after p that is not printable ASCII or is '"' or '\\' (end if none). */
static inline const char *skip_plain(const char *p, const char *end) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        /* signed: below 0x20 is a control character or a byte of 0x80 and above */
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                                    _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(stop);
        if (mask != 0) return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#else
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (word_stops(w) || (w & 0x8080808080808080ULL)) break;
        p += 8;
    }
#endif
    while (p < end && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' && *p != '\\') p++;
    return p;
}

#endif
