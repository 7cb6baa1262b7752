/* The text of JSON strings as orjson writes and Python decodes it: one ASCII byte's escape, and the
 * length of one valid UTF-8 character.
 *
 * Why shared: the C writers and readers of JSON strings must match orjson and Python's strict UTF-8 byte
 * for byte (the wire encoding of raw lines, core/_wirelines.h; parsed chunks, core/_chunkjson.h; the
 * intake's records, collectors/intake/_intakefast.c), each tested against them. They differ in how they
 * walk a string, not in how one byte is escaped or one character is checked.
 */
#ifndef LOGWEAVE_JSONTEXT_H
#define LOGWEAVE_JSONTEXT_H

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

#endif
