/* logfmt's common case in C: a line's pairs (`parse_logfmt`'s rules, agents/parsers/logfmt.py) and its record's
 * JSON text as orjson writes it. Included by agents/parsers/_logfmt.c (raw lines as Python objects) and by
 * agents/_rawsplit.h (a raw record's bytes); every function is static. The lines taken are printable ASCII
 * without a backslash, so keys and values hold no quote, backslash or control character and the JSON
 * needs no escape (the callers check the line before read_record).
 */
#ifndef LOGWEAVE_LOGFMT_H
#define LOGWEAVE_LOGFMT_H

#include <string.h>

#define MAX_PAIRS 128
#define MAX_RENAMED 8

typedef struct {
    const char *key, *value; /* value NULL: a bare key, written `true` */
    Py_ssize_t key_len, value_len;
} Pair;

typedef struct {
    Pair pairs[MAX_PAIRS];
    int count, assigned; /* assigned: some pair had `=` */
    const char *renamed[MAX_RENAMED]; /* keys the chain renames (canonical names): a line holding one goes to Python */
    Py_ssize_t renamed_len[MAX_RENAMED];
    int renamed_count;
} Record;

/* Adds a pair; 0 when the line must go to Python (a repeated or renamed key, too many pairs). */
static int add(Record *r, const char *key, Py_ssize_t key_len, const char *value, Py_ssize_t value_len) {
    for (int i = 0; i < r->count; i++)
        if (r->pairs[i].key_len == key_len && memcmp(r->pairs[i].key, key, (size_t)key_len) == 0) return 0;
    for (int i = 0; i < r->renamed_count; i++)
        if (r->renamed_len[i] == key_len && memcmp(r->renamed[i], key, (size_t)key_len) == 0) return 0;
    if (r->count == MAX_PAIRS) return 0;
    r->pairs[r->count++] = (Pair){key, value, key_len, value_len};
    if (value) r->assigned = 1;
    return 1;
}

/* The bare tokens of [p, end), split at spaces as `str.split(" ")`; 0: not logfmt, or for Python. */
static int bare_tokens(Record *r, const char *p, const char *end) {
    while (p < end) {
        const char *space = memchr(p, ' ', (size_t)(end - p));
        const char *stop = space ? space : end;
        if (stop > p) {
            const char *equals = memchr(p, '=', (size_t)(stop - p));
            if (equals == p) return 0; /* `=value`: no key */
            int added = equals ? add(r, p, equals - p, equals + 1, stop - equals - 1) : add(r, p, stop - p, NULL, 0);
            if (!added) return 0;
        }
        p = stop + 1;
    }
    return 1;
}

/* `parse_logfmt`'s common case over [s, s + n) (printable ASCII, no backslash); 0: not logfmt, or for Python. */
static int read_record(Record *r, const char *s, Py_ssize_t n) {
    const char *p = s, *end = s + n;
    r->count = r->assigned = 0;
    for (;;) {
        const char *quote = memchr(p, '"', (size_t)(end - p));
        if (!quote) return bare_tokens(r, p, end) && r->assigned; /* the last segment */
        /* a quoted value follows: the segment's last token (after its last space) must be `key=` */
        const char *token = quote;
        while (token > p && token[-1] != ' ') token--;
        Py_ssize_t key_len = quote - token - 1;
        if (key_len < 1 || quote[-1] != '=' || memchr(token, '=', (size_t)key_len) != NULL) return 0;
        if (!bare_tokens(r, p, token)) return 0;
        const char *close = memchr(quote + 1, '"', (size_t)(end - quote - 1));
        if (!close) return 0; /* a quote without its end */
        if (!add(r, token, key_len, quote + 1, close - quote - 1)) return 0;
        r->assigned = 1;
        p = close + 1;
    }
}

/* The length of the record's JSON text. */
static Py_ssize_t record_json_len(const Record *r) {
    Py_ssize_t size = 2 + (r->count - 1);
    for (int i = 0; i < r->count; i++)
        size += r->pairs[i].key_len + 3 + (r->pairs[i].value ? r->pairs[i].value_len + 2 : 4);
    return size;
}

/* Writes the record's JSON text (record_json_len bytes) at `out`. */
static void record_json_write(const Record *r, char *out) {
    *out++ = '{';
    for (int i = 0; i < r->count; i++) {
        const Pair *pair = &r->pairs[i];
        if (i) *out++ = ',';
        *out++ = '"';
        memcpy(out, pair->key, (size_t)pair->key_len);
        out += pair->key_len;
        *out++ = '"';
        *out++ = ':';
        if (pair->value) {
            *out++ = '"';
            memcpy(out, pair->value, (size_t)pair->value_len);
            out += pair->value_len;
            *out++ = '"';
        } else {
            memcpy(out, "true", 4);
            out += 4;
        }
    }
    *out = '}';
}

/* The line [s, s + n) less the trailing "\r", "\n" and " " the chain strips: its length when read_record may
 * take it (not empty, printable ASCII, no backslash), else -1. */
static Py_ssize_t logfmt_common(const char *s, Py_ssize_t n) {
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    if (n == 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '\\') return -1;
    return n;
}

#endif
