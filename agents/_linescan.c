/* The parse stage's per-line loop in C: the common line costs no Python bytecode.
 *
 * Why: the Python loop (orjson.loads per line, then dict lookups, time and level handling, hashing
 * to a partition) cost ~2.4 us per line and was the largest single item in the worker's profile.
 * This scans each line once, validating it as strict JSON without building a dict, picks out the
 * trace id, time, level and service, and writes the parsed entry straight into its partition's list.
 *
 * It only answers when it is sure to give the Python reference's answer (agents/line_parser.py,
 * LineParser.parse_line): any line it does not fully understand - an escape in a field it needs, a
 * missing first field name with aliases configured, a value other than a string (or an integer time
 * or level, as pino and bunyan write them), a number orjson might turn into infinity, deep nesting,
 * an unusual time - goes to the Python `slow` callback, in input order,
 * which either returns the parsed entry or records a dead letter and returns None. The differential
 * test tests/unit/agents/test_linescan.py holds the two paths equal on generated lines.
 *
 * Per line it costs ~0.35 us on the benchmark's 250-byte lines (0.7 before #19): strings are skipped
 * sixteen bytes at a time, a key is compared only with the field names sharing its first byte, and a
 * trace id or service repeating the previous line's reuses its str (and a repeated trace its partition).
 *
 * The same module holds the parse stage's read of a raw record's bytes (`split_raw`, `join_parsed`:
 * _rawsplit.h, which shares this scan) and the drain's splice of sink records (_sinksplice.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>
#include <limits.h>

#include "../core/_chunkjson.h"

#define MAX_DEPTH 64
#define MAX_NAMES 16
#define MAX_WATCH 32
#define MAX_TRACE 256
#define N_FIELDS 4
enum { F_TRACE, F_TIME, F_LEVEL, F_SERVICE };
enum { K_NONE, K_STRING, K_INT, K_OTHER }; /* K_INT: a JSON integer of at most 18 digits */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32_of(const char *data, Py_ssize_t len) { /* = zlib.crc32 */
    uint32_t c = 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < len; i++) c = crc_table[(c ^ (unsigned char)data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

typedef struct {
    const char *p, *end;
} Cursor;

static void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Bytes a JSON string cannot hold as they stand: the closing quote, a backslash, control characters. */
static unsigned char string_stop[256];

static void string_stop_init(void) {
    for (int ch = 0; ch < 0x20; ch++) string_stop[ch] = 1;
    string_stop['"'] = string_stop['\\'] = 1;
}

/* c->p at the opening quote; on success c->p is after the closing quote. Surrogate escapes are
 * left to orjson (it rejects unpaired ones), so they count as "not sure". Plain runs are skipped eight
 * bytes at a time. */
static int scan_string(Cursor *c, int *escaped) {
    const char *p = c->p + 1;
    *escaped = 0;
    while (p < c->end) {
#if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'), control = _mm_set1_epi8(0x1F);
        while (c->end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            /* unsigned: a byte of 0x80 and above is part of a character, not a stop */
            unsigned mask = (unsigned)_mm_movemask_epi8(_mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                _mm_cmpeq_epi8(_mm_min_epu8(v, control), v)));
            if (mask != 0) {
                p += __builtin_ctz(mask);
                break;
            }
            p += 16;
        }
#endif
        while (c->end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (word_stops(w)) break;
            p += 8;
        }
        while (p < c->end && !string_stop[(unsigned char)*p]) p++;
        if (p >= c->end) break;
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') {
            c->p = p + 1;
            return 0;
        }
        if (ch < 0x20) return -1;
        /* a backslash */
        *escaped = 1;
        if (p + 1 >= c->end) return -1;
        char e = p[1];
        if (e == 'u') {
            unsigned v;
            if (p + 6 > c->end || hex4(p + 2, &v) < 0 || (v >= 0xD800 && v <= 0xDFFF)) return -1;
            p += 6;
            continue;
        }
        if (!strchr("\"\\/bfnrt", e) || e == 0) return -1;
        p += 2;
    }
    return -1;
}

static int scan_number(Cursor *c) {
    const char *p = c->p;
    if (p < c->end && *p == '-') p++;
    if (p >= c->end) return -1;
    const char *digits = p;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < c->end && *p >= '0' && *p <= '9') p++;
    else return -1;
    if (p - digits > 250) return -1; /* orjson may overflow it to infinity: let it decide */
    if (p < c->end && *p == '.') {
        p++;
        const char *frac = p;
        while (p < c->end && *p >= '0' && *p <= '9') p++;
        if (p == frac) return -1;
    }
    if (p < c->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < c->end && (*p == '+' || *p == '-')) p++;
        const char *exp = p;
        while (p < c->end && *p >= '0' && *p <= '9') p++;
        if (p == exp || p - exp > 2) return -1;
        if ((p - exp) + (exp - digits) > 250) return -1;
    }
    c->p = p;
    return 0;
}

static int scan_value(Cursor *c, int depth);

static int scan_container(Cursor *c, int depth, char close) {
    if (depth > MAX_DEPTH) return -1;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            int escaped;
            if (c->p >= c->end || *c->p != '"' || scan_string(c, &escaped) < 0) return -1;
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':') return -1;
            c->p++;
        }
        if (scan_value(c, depth + 1) < 0) return -1;
        skip_ws(c);
        if (c->p >= c->end) return -1;
        if (*c->p == ',') {
            c->p++;
            skip_ws(c);
            continue;
        }
        if (*c->p == close) {
            c->p++;
            return 0;
        }
        return -1;
    }
}

static int literal(Cursor *c, const char *word, size_t len) {
    if ((size_t)(c->end - c->p) < len || memcmp(c->p, word, len) != 0) return -1;
    c->p += len;
    return 0;
}

static int scan_value(Cursor *c, int depth) {
    skip_ws(c);
    if (c->p >= c->end) return -1;
    int escaped;
    switch (*c->p) {
        case '{': return scan_container(c, depth, '}');
        case '[': return scan_container(c, depth, ']');
        case '"': return scan_string(c, &escaped);
        case 't': return literal(c, "true", 4);
        case 'f': return literal(c, "false", 5);
        case 'n': return literal(c, "null", 4);
        default: return scan_number(c);
    }
}

typedef struct {
    const char *name[MAX_NAMES];
    Py_ssize_t len[MAX_NAMES];
    int count;
    /* Watched keys: with the first name absent, one of these at the top level may make the reference
     * find the field elsewhere (`service` for `service.name`, Serilog's `@mt` for an implied level). */
    const char *watch[MAX_WATCH];
    Py_ssize_t watch_len[MAX_WATCH];
    int watch_count;
} Names;

typedef struct {
    int alias;  /* index of the name that matched, -1 if none */
    int kind;   /* K_STRING (unescaped), K_INT, K_OTHER */
    int dup;
    int watched; /* a watched key is present */
    const char *start;
    Py_ssize_t len;
} Found;

/* Every field name and watched key, grouped by first byte: a key is compared only with the names that
 * start as it does (a few, instead of all of them). Within a group the names keep their order. */
typedef struct {
    const char *name;
    Py_ssize_t len;
    int field;
    int index; /* the alias's place in its field's names, or -1 for a watched key */
} Candidate;

typedef struct {
    uint16_t start[257]; /* the candidates starting with byte b are at [start[b], start[b + 1]) */
    Candidate candidate[N_FIELDS * (MAX_NAMES + MAX_WATCH)];
} KeyIndex;

static unsigned char first_byte(const char *name, Py_ssize_t len) { return len > 0 ? (unsigned char)name[0] : 0; }

static void key_index_build(KeyIndex *index, Names names[N_FIELDS]) {
    memset(index->start, 0, sizeof index->start);
    for (int f = 0; f < N_FIELDS; f++) {
        for (int i = 0; i < names[f].watch_count; i++)
            index->start[first_byte(names[f].watch[i], names[f].watch_len[i]) + 1]++;
        for (int i = 0; i < names[f].count; i++) index->start[first_byte(names[f].name[i], names[f].len[i]) + 1]++;
    }
    for (int b = 0; b < 256; b++) index->start[b + 1] += index->start[b];
    uint16_t next[256];
    memcpy(next, index->start, sizeof next);
    for (int f = 0; f < N_FIELDS; f++) {
        for (int i = 0; i < names[f].watch_count; i++)
            index->candidate[next[first_byte(names[f].watch[i], names[f].watch_len[i])]++] =
                (Candidate){names[f].watch[i], names[f].watch_len[i], f, -1};
        for (int i = 0; i < names[f].count; i++)
            index->candidate[next[first_byte(names[f].name[i], names[f].len[i])]++] =
                (Candidate){names[f].name[i], names[f].len[i], f, i};
    }
}

/* Scan a line that starts with '{' and ends with '}'. 0: valid, fields recorded; -1: not sure. */
static int scan_line(const char *buf, Py_ssize_t size, const KeyIndex *index, Found found[N_FIELDS]) {
    Cursor c = {buf + 1, buf + size};
    for (int f = 0; f < N_FIELDS; f++) found[f].alias = -1, found[f].dup = 0, found[f].watched = 0;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') return c.p + 1 == c.end ? 0 : -1;
    for (;;) {
        int escaped;
        if (c.p >= c.end || *c.p != '"') return -1;
        const char *key = c.p + 1;
        if (scan_string(&c, &escaped) < 0 || escaped) return -1; /* an escaped key may spell a field name */
        Py_ssize_t key_len = c.p - 1 - key;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') return -1;
        c.p++;
        skip_ws(&c);
        const char *value = c.p;
        int kind = K_OTHER, value_escaped = 0;
        if (c.p < c.end && *c.p == '"') {
            if (scan_string(&c, &value_escaped) < 0) return -1;
            kind = value_escaped ? K_OTHER : K_STRING;
        } else {
            if (scan_value(&c, 1) < 0) return -1;
            const char *digit = value + (*value == '-');
            Py_ssize_t n = c.p - digit;
            if (n >= 1 && n <= 18) {
                kind = K_INT;
                for (Py_ssize_t i = 0; i < n; i++)
                    if (digit[i] < '0' || digit[i] > '9') kind = K_OTHER;
            }
        }
        unsigned char first = first_byte(key, key_len);
        for (int k = index->start[first]; k < index->start[first + 1]; k++) {
            const Candidate *name = &index->candidate[k];
            if (name->len != key_len || memcmp(name->name, key, (size_t)key_len) != 0) continue;
            Found *field = &found[name->field];
            int i = name->index;
            if (i < 0) {
                field->watched = 1;
                continue;
            }
            if (field->alias == i) field->dup = 1;
            if (field->alias < 0 || i < field->alias || field->alias == i) {
                field->alias = i;
                field->kind = kind;
                field->start = kind == K_STRING ? value + 1 : value;
                field->len = kind == K_STRING ? (c.p - 1) - (value + 1) : c.p - value;
            }
        }
        skip_ws(&c);
        if (c.p >= c.end) return -1;
        if (*c.p == ',') {
            c.p++;
            skip_ws(&c);
            continue;
        }
        if (*c.p == '}' && c.p + 1 == c.end) return 0;
        return -1;
    }
}

/* K_STRING or K_INT: the first name's value in start and len; K_NONE: absent everywhere; -1: not sure. */
static int resolve(const Found *found, const char **start, Py_ssize_t *len) {
    if (found->dup) return -1;
    if (found->alias == 0) {
        if (found->kind != K_STRING && found->kind != K_INT) return -1;
        *start = found->start;
        *len = found->len;
        return found->kind;
    }
    if (found->alias > 0 || found->watched) return -1;
    return K_NONE;
}

static long long int_value(const char *p, Py_ssize_t n) { /* at most 18 digits: no overflow */
    long long v = 0;
    int negative = *p == '-';
    for (Py_ssize_t i = negative; i < n; i++) v = v * 10 + (p[i] - '0');
    return negative ? -v : v;
}

/* An integer epoch time to ns as app/timeparse.py does: `unit` ns per unit, or 0 to guess it from the
 * magnitude (seconds below 1e11, milliseconds below 1e14, else nanoseconds). -1 past int64. */
static int epoch_ns(long long value, long long unit, int64_t *out) {
    long long magnitude = value < 0 ? -value : value;
    if (unit == 0) unit = magnitude < 100000000000LL ? 1000000000LL : magnitude < 100000000000000LL ? 1000000LL : 1;
    long long product;
    if (__builtin_mul_overflow(value, unit, &product)) return -1;
    *out = product;
    return 0;
}

/* pino / bunyan numeric levels, as normalize_level: min(max(value // 10 - 1, 0), 5). */
static const char *const LEVEL_BY_RANK[] = {"trace", "debug", "info", "warn", "error", "fatal"};

static int level_rank(long long value) {
    long long tens = value >= 0 ? value / 10 : -((-value + 9) / 10); /* floor division */
    long long rank = tens - 1;
    return rank < 0 ? 0 : rank > 5 ? 5 : (int)rank;
}

static int digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* RFC 3339 `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+hh:mm|-hh:mm)` to UTC ns, as app/timeparse.py does. */
static int rfc3339_ns(const char *s, Py_ssize_t n, int64_t *out) {
    int year, month, day, hour, minute, second;
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return -1;
    if (digits(s, 4, &year) || digits(s + 5, 2, &month) || digits(s + 8, 2, &day) || digits(s + 11, 2, &hour) ||
        digits(s + 14, 2, &minute) || digits(s + 17, 2, &second))
        return -1;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) return -1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap)) return -1;
    Py_ssize_t i = 19;
    int64_t nanos = 0;
    if (s[i] == '.') {
        Py_ssize_t j = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        Py_ssize_t count = i - j;
        if (count < 1 || count > 9) return -1;
        for (Py_ssize_t k = 0; k < 9; k++) nanos = nanos * 10 + (k < count ? s[j + k] - '0' : 0);
    }
    int64_t offset = 0;
    if (i == n - 1 && s[i] == 'Z') {
        offset = 0;
    } else if (i == n - 6 && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om)) return -1;
        offset = (int64_t)(oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    } else {
        return -1;
    }
    int64_t secs = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 + hour * 3600 + minute * 60 + second;
    secs -= offset;
    if (secs < -9223372035LL || secs > 9223372035LL) return -1; /* ns past int64: Python's ints take it */
    *out = secs * 1000000000LL + nanos;
    return 0;
}

/* `count` names of `seq` into `name`/`len`, between `min` and `max` of them. The names point into the str
 * objects of `*owner`, which the caller keeps until it is done with them (a generator's strings live only in
 * the list PySequence_Fast builds). */
static int load_list(PyObject *seq, const char **name, Py_ssize_t *len, int *count, Py_ssize_t min, Py_ssize_t max,
                     PyObject **owner) {
    PyObject *fast = PySequence_Fast(seq, "field names must be a sequence");
    if (!fast) return -1;
    Py_ssize_t size = PySequence_Fast_GET_SIZE(fast);
    if (size < min || size > max) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "between %zd and %zd field names (or watched keys) are supported", min, max);
        return -1;
    }
    *count = (int)size;
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        const char *text = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &len[i]) : NULL;
        if (!text) {
            Py_DECREF(fast);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "field names must be str");
            return -1;
        }
        name[i] = text;
    }
    *owner = fast;
    return 0;
}

/* What the previous lines of one `split` call gave, for the next line that repeats it (a stream's lines
 * mostly share a service, and a trace's lines are often adjacent): the same str objects are reused
 * instead of decoded again, and a repeated partition key finds its partition's list without a CRC. */
typedef struct {
    PyObject *trace, *service; /* strong references, or NULL */
    PyObject *key;             /* strong reference: the last partition key placed, or NULL */
    PyObject *target;          /* borrowed from the output dict, which keeps it: `key`'s partition list */
} Repeats;

static void repeats_clear(Repeats *r) {
    Py_CLEAR(r->trace);
    Py_CLEAR(r->service);
    Py_CLEAR(r->key);
    r->target = NULL;
}

/* A new reference to the str of UTF-8 `value` (ASCII with `ascii`): `*last` when it spells the same,
 * else a newly decoded str, which becomes `*last`. NULL with an exception set when decoding fails. */
static PyObject *repeated_str(PyObject **last, const char *value, Py_ssize_t len, int ascii) {
    if (*last) {
        Py_ssize_t last_len;
        const char *bytes = PyUnicode_AsUTF8AndSize(*last, &last_len);
        if (bytes && last_len == len && memcmp(bytes, value, (size_t)len) == 0) {
            Py_INCREF(*last);
            return *last;
        }
        if (!bytes) PyErr_Clear();
    }
    PyObject *fresh = ascii ? PyUnicode_DecodeASCII(value, len, NULL) : PyUnicode_DecodeUTF8(value, len, NULL);
    if (!fresh) return NULL;
    Py_INCREF(fresh);
    Py_XSETREF(*last, fresh);
    return fresh;
}

/* Append `entry` to its partition's list in `out` (partition of trace id, or of stream id if untraced). */
static int place(PyObject *out, PyObject *entry, PyObject *sid, long partitions, Repeats *repeats) {
    PyObject *trace = PyList_GET_ITEM(entry, 4);
    PyObject *key = (PyUnicode_Check(trace) && PyUnicode_GET_LENGTH(trace) > 0) ? trace : sid;
    if (key == repeats->key && repeats->target) return PyList_Append(repeats->target, entry);
    Py_ssize_t len;
    const char *bytes = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &len) : NULL;
    if (!bytes) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "trace id and stream id must be str");
        return -1;
    }
    PyObject *part = PyLong_FromUnsignedLong(crc32_of(bytes, len) % (unsigned long)partitions);
    if (!part) return -1;
    PyObject *target = PyDict_GetItemWithError(out, part);
    if (!target) {
        if (PyErr_Occurred() || !(target = PyList_New(0)) || PyDict_SetItem(out, part, target) < 0) {
            Py_XDECREF(target);
            Py_DECREF(part);
            return -1;
        }
        Py_DECREF(target); /* the dict holds it */
    }
    Py_DECREF(part);
    Py_INCREF(key);
    Py_XSETREF(repeats->key, key);
    repeats->target = target;
    return PyList_Append(target, entry);
}

/* The last level spelling read, and its level name (owned): a stream's lines mostly share a level or two. */
typedef struct {
    char text[32];
    Py_ssize_t len;
    PyObject *level;
} LevelSeen;

/* What the scan read of one line, for its parsed entry. The trace and service point into the line. */
typedef struct {
    long long time_ns; /* when `timed`; else the caller's (the line's source time, else the collection time) */
    int timed;
    const char *trace, *service;
    Py_ssize_t trace_len, service_len; /* service_len -1: no service (the entry's is "") */
    PyObject *level;                   /* borrowed from `levels` or the LevelSeen; NULL: no level ("") */
} LineFields;

/* The fields of the JSON line buf[0, size) (its first byte '{', its last '}'), as the reference reads them:
 * 1 sure, in *out; 0 not sure (the reference takes the line); -1 an error is set. */
static int line_fields(const char *buf, Py_ssize_t size, const KeyIndex *index, PyObject *levels, int rfc_fast,
                       long long epoch_unit, LevelSeen *seen, LineFields *out) {
    Found found[N_FIELDS];
    if (scan_line(buf, size, index, found) < 0) return 0;
    const char *value[N_FIELDS] = {0};
    Py_ssize_t value_len[N_FIELDS] = {0};
    int present[N_FIELDS];
    for (int f = 0; f < N_FIELDS; f++) {
        present[f] = resolve(&found[f], &value[f], &value_len[f]);
        if (present[f] < 0) return 0;
    }
    if (present[F_TRACE] != K_STRING || value_len[F_TRACE] < 1 || value_len[F_TRACE] > MAX_TRACE) return 0;
    if (present[F_SERVICE] == K_INT) return 0;
    for (Py_ssize_t i = 0; i < value_len[F_TRACE]; i++)
        if ((unsigned char)value[F_TRACE][i] < 0x20 || (unsigned char)value[F_TRACE][i] > 0x7E) return 0;
    out->timed = present[F_TIME] != K_NONE;
    if (present[F_TIME] == K_STRING) {
        int64_t parsed;
        if (!rfc_fast || rfc3339_ns(value[F_TIME], value_len[F_TIME], &parsed) < 0) return 0;
        out->time_ns = parsed;
    } else if (present[F_TIME] == K_INT) {
        int64_t parsed;
        if (epoch_unit < 0 || epoch_ns(int_value(value[F_TIME], value_len[F_TIME]), epoch_unit, &parsed) < 0) return 0;
        out->time_ns = parsed;
    }
    out->level = NULL;
    if (present[F_LEVEL] == K_INT) {
        out->level = PyDict_GetItemString(levels, LEVEL_BY_RANK[level_rank(int_value(value[F_LEVEL], value_len[F_LEVEL]))]);
        if (!out->level) return 0;
    } else if (present[F_LEVEL]) {
        Py_ssize_t n = value_len[F_LEVEL];
        if (seen->level != NULL && seen->len == n && memcmp(seen->text, value[F_LEVEL], (size_t)n) == 0) {
            out->level = seen->level;
        } else {
            PyObject *raw_level = PyUnicode_DecodeUTF8(value[F_LEVEL], n, NULL);
            if (!raw_level) {
                PyErr_Clear();
                return 0;
            }
            PyObject *level = PyDict_GetItemWithError(levels, raw_level);
            Py_DECREF(raw_level);
            if (!level) {
                PyErr_Clear();
                return 0; /* not an exact level name: the reference normalizes it */
            }
            if (n <= (Py_ssize_t)sizeof seen->text) {
                Py_INCREF(level);
                Py_XSETREF(seen->level, level);
                memcpy(seen->text, value[F_LEVEL], (size_t)n);
                seen->len = n;
            }
            out->level = level;
        }
    }
    out->trace = value[F_TRACE];
    out->trace_len = value_len[F_TRACE];
    out->service = present[F_SERVICE] ? value[F_SERVICE] : NULL;
    out->service_len = present[F_SERVICE] ? value_len[F_SERVICE] : -1;
    return 1;
}

/* The parsed entry for a line the scan understood, or NULL with *sure = 0 to ask the reference. */
static PyObject *fast_entry(PyObject *raw, const KeyIndex *index, PyObject *levels, Py_ssize_t max_bytes,
                            long long fallback_ns, PyObject *sid, int rfc_fast, long long epoch_unit, PyObject *zero,
                            PyObject *empty, Repeats *repeats, LevelSeen *seen, int *sure) {
    *sure = 0;
    if (!PyList_CheckExact(raw) || PyList_GET_SIZE(raw) != 5) return NULL;
    PyObject *pos = PyList_GET_ITEM(raw, 0), *text = PyList_GET_ITEM(raw, 1), *stream = PyList_GET_ITEM(raw, 2);
    PyObject *source_ns = PyList_GET_ITEM(raw, 3), *flags = PyList_GET_ITEM(raw, 4);
    if (!PyLong_CheckExact(pos) || !PyUnicode_CheckExact(text) || !PyLong_CheckExact(source_ns) ||
        !PyLong_CheckExact(flags))
        return NULL;
    int overflow;
    if (PyLong_AsLongLongAndOverflow(flags, &overflow) != 0 || overflow) return NULL; /* base64, truncated */
    Py_ssize_t size;
    const char *buf = PyUnicode_AsUTF8AndSize(text, &size);
    if (!buf) {
        PyErr_Clear(); /* lone surrogates: the reference reports them */
        return NULL;
    }
    if (size < 2 || size > max_bytes || buf[0] != '{' || buf[size - 1] != '}') return NULL;
    LineFields got;
    int known = line_fields(buf, size, index, levels, rfc_fast, epoch_unit, seen, &got);
    if (known <= 0) {
        *sure = known < 0;
        return NULL;
    }
    if (!got.timed) {
        long long source = PyLong_AsLongLongAndOverflow(source_ns, &overflow);
        if (overflow || (source == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return NULL;
        }
        got.time_ns = source ? source : fallback_ns;
    }
    PyObject *level = got.level ? got.level : empty;
    Py_INCREF(level);
    PyObject *service = got.service_len >= 0 ? repeated_str(&repeats->service, got.service, got.service_len, 0)
                                             : (Py_INCREF(empty), empty);
    PyObject *trace = repeated_str(&repeats->trace, got.trace, got.trace_len, 1);
    PyObject *when = PyLong_FromLongLong(got.time_ns);
    PyObject *entry = PyList_New(9);
    if (!service || !trace || !when || !entry) {
        Py_XDECREF(service), Py_XDECREF(trace), Py_XDECREF(when), Py_XDECREF(entry), Py_DECREF(level);
        *sure = 1; /* out of memory: a real error */
        return NULL;
    }
    Py_INCREF(zero), Py_INCREF(sid), Py_INCREF(pos), Py_INCREF(text), Py_INCREF(stream);
    PyList_SET_ITEM(entry, 0, zero);
    PyList_SET_ITEM(entry, 1, sid);
    PyList_SET_ITEM(entry, 2, pos);
    PyList_SET_ITEM(entry, 3, when);
    PyList_SET_ITEM(entry, 4, trace);
    PyList_SET_ITEM(entry, 5, level);
    PyList_SET_ITEM(entry, 6, service);
    PyList_SET_ITEM(entry, 7, text);
    PyList_SET_ITEM(entry, 8, stream);
    *sure = 1;
    return entry;
}

PyDoc_STRVAR(split_doc,
"split(lines, fields, levels, partitions, max_bytes, fallback_ns, sid, rfc_fast, epoch_unit, slow) -> dict\n\n"
"Parsed entries of raw `lines` grouped by destination partition, in input order. `fields` holds the\n"
"trace, time, level and service field names, then optionally a list of watched keys for each (keys\n"
"whose presence, with the first name absent, leaves the line to `slow`); `levels` maps exact level\n"
"spellings to level names.\n"
"`epoch_unit`: ns per unit of an integer time, 0 to guess it from the magnitude, -1 for no integer times.\n"
"Lines the scan is not sure of go to `slow(raw_line)`, which returns the parsed entry or None.");

/* The field names of a `fields` argument, indexed for the scan; the names point into `owners`. */
typedef struct {
    Names names[N_FIELDS];
    PyObject *owners[2 * N_FIELDS];
    PyObject *seq;
    KeyIndex index;
} FieldSpec;

static void field_spec_free(FieldSpec *spec) {
    for (int f = 0; f < 2 * N_FIELDS; f++) Py_CLEAR(spec->owners[f]);
    Py_CLEAR(spec->seq);
}

/* 0 loaded, -1 an error is set (and nothing held). */
static int field_spec_load(FieldSpec *spec, PyObject *fields) {
    memset(spec->owners, 0, sizeof spec->owners);
    spec->seq = PySequence_Fast(fields, "fields must be a sequence of 4 name lists");
    if (!spec->seq) return -1;
    Py_ssize_t lists = PySequence_Fast_GET_SIZE(spec->seq);
    if (lists != N_FIELDS && lists != 2 * N_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "fields must hold 4 name lists: trace, time, level, service "
                                          "(then optionally their 4 watched-key lists)");
        goto fail;
    }
    for (int f = 0; f < N_FIELDS; f++) {
        Names *n = &spec->names[f];
        n->watch_count = 0;
        if (load_list(PySequence_Fast_GET_ITEM(spec->seq, f), n->name, n->len, &n->count, 1, MAX_NAMES,
                      &spec->owners[f]) < 0 ||
            (lists > N_FIELDS && load_list(PySequence_Fast_GET_ITEM(spec->seq, N_FIELDS + f), n->watch, n->watch_len,
                                           &n->watch_count, 0, MAX_WATCH, &spec->owners[N_FIELDS + f]) < 0))
            goto fail;
        /* 4 lists only: every dotted prefix of a name is watched (`a` and `a.b` for `a.b.c`) */
        if (lists == N_FIELDS)
            for (int i = 0; i < n->count; i++)
                for (Py_ssize_t k = 0; k < n->len[i]; k++)
                    if (n->name[i][k] == '.') {
                        if (n->watch_count == MAX_WATCH) {
                            PyErr_Format(PyExc_ValueError, "at most %d dotted prefixes per field", MAX_WATCH);
                            goto fail;
                        }
                        n->watch[n->watch_count] = n->name[i];
                        n->watch_len[n->watch_count++] = k;
                    }
    }
    key_index_build(&spec->index, spec->names);
    return 0;
fail:
    field_spec_free(spec);
    return -1;
}

static PyObject *split(PyObject *self, PyObject *args) {
    PyObject *lines, *fields, *levels, *sid, *slow;
    long partitions;
    Py_ssize_t max_bytes;
    long long fallback_ns, epoch_unit;
    int rfc_fast;
    if (!PyArg_ParseTuple(args, "O!OO!lnLUpLO", &PyList_Type, &lines, &fields, &PyDict_Type, &levels, &partitions,
                          &max_bytes, &fallback_ns, &sid, &rfc_fast, &epoch_unit, &slow))
        return NULL;
    if (partitions < 1) {
        PyErr_SetString(PyExc_ValueError, "partitions must be at least 1");
        return NULL;
    }
    FieldSpec spec;
    if (field_spec_load(&spec, fields) < 0) return NULL;
    Repeats repeats = {NULL, NULL, NULL, NULL};
    LevelSeen seen = {{0}, 0, NULL};
    PyObject *out = PyDict_New(), *zero = PyLong_FromLong(0), *empty = PyUnicode_New(0, 0);
    if (!out || !zero || !empty) goto fail;
    Py_ssize_t count = PyList_GET_SIZE(lines);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *raw = PyList_GET_ITEM(lines, i);
        Py_INCREF(raw); /* `slow` may run arbitrary code */
        int sure;
        PyObject *entry = fast_entry(raw, &spec.index, levels, max_bytes, fallback_ns, sid, rfc_fast, epoch_unit, zero,
                                     empty, &repeats, &seen, &sure);
        if (!entry && sure) {
            Py_DECREF(raw);
            goto fail;
        }
        if (!entry) {
            entry = PyObject_CallOneArg(slow, raw);
            if (!entry) {
                Py_DECREF(raw);
                goto fail;
            }
            if (PyList_GET_SIZE(lines) != count) { /* before the next read of `lines`: its items may be freed */
                PyErr_SetString(PyExc_RuntimeError, "lines changed during split");
                Py_DECREF(entry);
                Py_DECREF(raw);
                goto fail;
            }
            if (entry == Py_None) {
                Py_DECREF(entry);
                Py_DECREF(raw);
                continue;
            }
            if (!PyList_Check(entry) || PyList_GET_SIZE(entry) != 9) {
                PyErr_SetString(PyExc_TypeError, "slow() must return a parsed entry of 9 fields or None");
                Py_DECREF(entry);
                Py_DECREF(raw);
                goto fail;
            }
        }
        Py_DECREF(raw);
        int placed = place(out, entry, sid, partitions, &repeats);
        Py_DECREF(entry);
        if (placed < 0) goto fail;
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    field_spec_free(&spec);
    repeats_clear(&repeats);
    Py_XDECREF(seen.level);
    Py_XDECREF(zero);
    Py_XDECREF(empty);
    return out;
}

#include "_sinksplice.h"
#include "_rawsplit.h"

static PyMethodDef methods[] = {
    {"split", split, METH_VARARGS, split_doc},
    {"sink_lines", sink_lines, METH_VARARGS, sink_lines_doc},
    {"chunk_layout", chunk_layout, METH_VARARGS, chunk_layout_doc},
    {"sink_lines_raw", sink_lines_raw, METH_VARARGS, sink_lines_raw_doc},
    {"pack_lines_raw", pack_lines_raw, METH_VARARGS, pack_lines_raw_doc},
    {"split_raw", split_raw, METH_VARARGS, split_raw_doc},
    {"logfmt_json", logfmt_json, METH_VARARGS, logfmt_json_doc},
    {"join_parsed", join_parsed, METH_VARARGS, join_parsed_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_linescan",
                                    "The parse stage's per-line loop in C (see agents/line_parser.py).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__linescan(void) {
    crc_init();
    string_stop_init();
    for (int f = 0; f < SL_FIELDS; f++) {
        if ((sink_line_attrs[f] = PyUnicode_InternFromString(sink_line_names[f])) == NULL) return NULL;
    }
    chunkjson_init();
    return PyModule_Create(&module);
}
