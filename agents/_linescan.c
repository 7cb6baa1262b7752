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
 * eight bytes at a time, a key is compared only with the field names sharing its first byte, and a
 * trace id or service repeating the previous line's reuses its str (and a repeated trace its partition).
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
    long long time_ns;
    const char *trace, *service;
    Py_ssize_t trace_len, service_len; /* service_len -1: no service (the entry's is "") */
    PyObject *level;                   /* borrowed from `levels` or the LevelSeen; NULL: no level ("") */
} LineFields;

/* The fields of the JSON line buf[0, size) (its first byte '{', its last '}'), as the reference reads them:
 * 1 sure, in *out; 0 not sure (the reference takes the line); -1 an error is set. `default_ns`: the time of a
 * line without one (its source time, else the chunk's collection time). */
static int line_fields(const char *buf, Py_ssize_t size, const KeyIndex *index, PyObject *levels, int rfc_fast,
                       long long epoch_unit, long long default_ns, LevelSeen *seen, LineFields *out) {
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
    if (present[F_TIME] == K_STRING) {
        int64_t parsed;
        if (!rfc_fast || rfc3339_ns(value[F_TIME], value_len[F_TIME], &parsed) < 0) return 0;
        out->time_ns = parsed;
    } else if (present[F_TIME] == K_INT) {
        int64_t parsed;
        if (epoch_unit < 0 || epoch_ns(int_value(value[F_TIME], value_len[F_TIME]), epoch_unit, &parsed) < 0) return 0;
        out->time_ns = parsed;
    } else {
        out->time_ns = default_ns;
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
    long long source = PyLong_AsLongLongAndOverflow(source_ns, &overflow);
    if (overflow || (source == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return NULL;
    }
    LineFields got;
    int known = line_fields(buf, size, index, levels, rfc_fast, epoch_unit, source ? source : fallback_ns, seen, &got);
    if (known <= 0) {
        *sure = known < 0;
        return NULL;
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


/* ---- The drain's per-line splice (agents/drain_runner.py, to_sink_lines) ---------------------------
 *
 * Why: building each delivered document in Python (an f-string of the metadata with five orjson.dumps
 * calls, the splice, a SinkLine) cost more than parsing and grouping the line together. This writes
 * each document straight into its bytes: the original JSON object, then the reserved key holding
 * sid, pos, lid, time_ns, trace, level, service, stream and source, byte for byte what the Python
 * reference (`sink_line`) writes, strings escaped as orjson escapes them. Any line it is not sure of
 * (a field of an unexpected type, an integer outside 64 bits, a negative position, strings with
 * surrogates, text already using the reserved key, text not ending in `}` or with non-ASCII before
 * it) goes to the Python `fallback(line, index)`, which returns that line's SinkLine.
 * tests/unit/agents/test_sink_splice.py holds the two paths equal on hostile lines.
 */

enum { SL_LINE_ID, SL_TRACE_ID, SL_TIME_NS, SL_LEVEL, SL_SERVICE, SL_DOCUMENT, SL_OFFSET, SL_INDEX, SL_ORDERED,
       SL_FIELDS };
static const char *const sink_line_names[SL_FIELDS] = {"line_id", "trace_id", "time_ns", "level", "service",
                                                       "document", "offset", "index", "ordered"};
static PyObject *sink_line_attrs[SL_FIELDS];
static PyTypeObject *slot_type; /* the line type whose slot offsets are in slot_offsets (borrowed, checked by id) */
static Py_ssize_t slot_offsets[SL_FIELDS];

/* Where `type` keeps each SinkLine field: a slots class's member descriptors name the offsets, so a
 * line is filled like `__init__` fills it, without a setattr lookup per field. 0 when the type has
 * no such slots (its lines are then filled by setattr). */
static int find_slots(PyTypeObject *type) {
    if (slot_type == type) return 1;
    slot_type = NULL;
    for (int f = 0; f < SL_FIELDS; f++) {
        PyObject *descr = _PyType_Lookup(type, sink_line_attrs[f]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) return 0;
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY)) return 0;
        slot_offsets[f] = member->offset;
    }
    slot_type = type;
    return 1;
}


/* Appends `s` as orjson encodes a str. 1: written; 0: not a str of valid code points (Python decides);
 * -1: out of memory. */
static int put_json_str(Buf *b, PyObject *s) {
    static const char hex[] = "0123456789abcdef";
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
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\t': *out++ = 't'; break;
        case '\n': *out++ = 'n'; break;
        case '\f': *out++ = 'f'; break;
        case '\r': *out++ = 'r'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    *out++ = '"';
    b->len = out - b->data;
    return 1;
}

static int put_int(Buf *b, long long v, int base16) { /* decimal (str(v)) or lower-case hex (f"{v:x}", v >= 0) */
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

/* A Python int that fits 64 bits (bool excluded), else 0. */
static int exact_int(PyObject *o, long long *out) {
    if (!PyLong_CheckExact(o)) return 0;
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static int ascii_space(unsigned char c) { /* what str.rstrip strips among ASCII characters */
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* The digest of stream `sid` (a str), cached in `digests`; NULL with an exception on error. Borrowed. */
static PyObject *stream_digest_of(PyObject *digests, PyObject *digest_of, PyObject *sid) {
    PyObject *digest = PyDict_GetItemWithError(digests, sid);
    if (digest != NULL || PyErr_Occurred()) return digest;
    PyObject *made = PyObject_CallOneArg(digest_of, sid);
    if (made == NULL) return NULL;
    int stored = PyDict_SetItem(digests, sid, made);
    Py_DECREF(made);
    return stored < 0 ? NULL : PyDict_GetItemWithError(digests, sid);
}

/* Whether `"key"` (the key between quotes) occurs in t: the reserved key may already be in the text.
 * memmem finds the key's candidates (a search of the whole text, not a call per quote), then the quotes
 * around each are checked. */
static int holds_quoted(const char *t, Py_ssize_t tlen, const char *key, Py_ssize_t klen) {
    const char *end = t + tlen;
    if (klen == 0) return memmem(t, (size_t)tlen, "\"\"", 2) != NULL;
    for (const char *p = t; (p = memmem(p, (size_t)(end - p), key, (size_t)klen)) != NULL; p++) {
        if (p > t && p[-1] == '"' && end - p > klen && p[klen] == '"') return 1;
    }
    return 0;
}

/* The SinkLine of line `index` made in C: NULL without exception when the fallback must make it. */
static PyObject *spliced_line(PyObject *line, Py_ssize_t index, PyObject *sources, const char *key, Py_ssize_t klen,
                              PyObject *digests, PyObject *digest_of, PyTypeObject *line_type, PyObject *offset,
                              PyObject *ordered, Buf *meta, Py_ssize_t *document_size) {
    if (!PyList_CheckExact(line) || PyList_GET_SIZE(line) != 9) return NULL;
    PyObject *sid = PyList_GET_ITEM(line, 1), *trace = PyList_GET_ITEM(line, 4), *level = PyList_GET_ITEM(line, 5);
    PyObject *service = PyList_GET_ITEM(line, 6), *text = PyList_GET_ITEM(line, 7);
    PyObject *stream = PyList_GET_ITEM(line, 8), *time_obj = PyList_GET_ITEM(line, 3);
    long long src, pos, time_ns;
    if (!exact_int(PyList_GET_ITEM(line, 0), &src) || src < 0 || src >= PyList_GET_SIZE(sources)) return NULL;
    if (!exact_int(PyList_GET_ITEM(line, 2), &pos) || pos < 0 || !exact_int(time_obj, &time_ns)) return NULL;
    if (!PyUnicode_CheckExact(text) || !PyUnicode_CheckExact(sid)) return NULL;
    PyObject *source = PyList_GET_ITEM(sources, src);
    if (!PyBytes_CheckExact(source)) return NULL;
    Py_ssize_t tlen;
    const char *t = PyUnicode_AsUTF8AndSize(text, &tlen);
    if (t == NULL) {
        PyErr_Clear();
        return NULL;
    }
    /* the reserved key already in the text: the reference re-serializes the object */
    if (holds_quoted(t, tlen, key, klen)) return NULL;
    if (tlen < 2 || t[tlen - 1] != '}') return NULL;
    Py_ssize_t body = tlen - 1;
    while (body > 0 && ascii_space((unsigned char)t[body - 1])) body--;
    if (body == 0 || (unsigned char)t[body - 1] >= 0x80) return NULL; /* maybe Unicode white space: Python's call */
    int comma = t[body - 1] != '{';

    PyObject *digest = stream_digest_of(digests, digest_of, sid);
    if (digest == NULL) return NULL; /* with the exception set: the caller stops */
    Py_ssize_t dlen;
    const char *d = PyUnicode_CheckExact(digest) ? PyUnicode_AsUTF8AndSize(digest, &dlen) : NULL;
    if (d == NULL) {
        PyErr_Clear();
        return NULL;
    }
    meta->len = 0;
    int ok;
    if (buf_put(meta, "{\"sid\":", 7) < 0) return NULL;
    if ((ok = put_json_str(meta, sid)) <= 0) return NULL;
    if (buf_put(meta, ",\"pos\":", 7) < 0 || put_int(meta, pos, 0) < 0) return NULL;
    Py_ssize_t lid_at = meta->len + 8;
    if (buf_put(meta, ",\"lid\":\"", 8) < 0 || buf_put(meta, d, dlen) < 0 || buf_put(meta, "-", 1) < 0 ||
        put_int(meta, pos, 1) < 0)
        return NULL;
    Py_ssize_t lid_end = meta->len;
    if (buf_put(meta, "\",\"time_ns\":", 12) < 0 || put_int(meta, time_ns, 0) < 0) return NULL;
    if (buf_put(meta, ",\"trace\":", 9) < 0 || (ok = put_json_str(meta, trace)) <= 0) return NULL;
    if (buf_put(meta, ",\"level\":", 9) < 0 || (ok = put_json_str(meta, level)) <= 0) return NULL;
    if (buf_put(meta, ",\"service\":", 11) < 0 || (ok = put_json_str(meta, service)) <= 0) return NULL;
    if (buf_put(meta, ",\"stream\":", 10) < 0 || (ok = put_json_str(meta, stream)) <= 0) return NULL;
    if (buf_put(meta, ",\"source\":", 10) < 0 ||
        buf_put(meta, PyBytes_AS_STRING(source), PyBytes_GET_SIZE(source)) < 0 || buf_put(meta, "}", 1) < 0)
        return NULL;

    Py_ssize_t size = body + comma + klen + 3 + meta->len + 1;
    *document_size = size;
    PyObject *document = PyBytes_FromStringAndSize(NULL, size);
    if (document == NULL) return NULL;
    char *out = PyBytes_AS_STRING(document);
    memcpy(out, t, (size_t)body);
    out += body;
    if (comma) *out++ = ',';
    *out++ = '"';
    memcpy(out, key, (size_t)klen);
    out += klen;
    *out++ = '"';
    *out++ = ':';
    memcpy(out, meta->data, (size_t)meta->len);
    out += meta->len;
    *out = '}';

    PyObject *values[SL_FIELDS] = {NULL};
    values[SL_LINE_ID] = PyUnicode_DecodeASCII(meta->data + lid_at, lid_end - lid_at, NULL);
    values[SL_INDEX] = PyLong_FromSsize_t(index);
    PyObject *made = (values[SL_LINE_ID] && values[SL_INDEX]) ? line_type->tp_alloc(line_type, 0) : NULL;
    if (made != NULL) {
        values[SL_TRACE_ID] = trace;
        values[SL_TIME_NS] = time_obj;
        values[SL_LEVEL] = level;
        values[SL_SERVICE] = service;
        values[SL_DOCUMENT] = document;
        values[SL_OFFSET] = offset;
        values[SL_ORDERED] = ordered;
        if (find_slots(line_type)) {
            for (int f = 0; f < SL_FIELDS; f++) {
                PyObject **slot = (PyObject **)((char *)made + slot_offsets[f]);
                Py_INCREF(values[f]);
                Py_XSETREF(*slot, values[f]);
            }
        } else {
            for (int f = 0; f < SL_FIELDS; f++) {
                if (PyObject_SetAttr(made, sink_line_attrs[f], values[f]) < 0) {
                    Py_CLEAR(made);
                    break;
                }
            }
        }
    }
    Py_XDECREF(values[SL_LINE_ID]);
    Py_XDECREF(values[SL_INDEX]);
    Py_DECREF(document);
    if (made == NULL && !PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "cannot build a sink line");
    return made;
}

PyDoc_STRVAR(sink_lines_doc,
             "sink_lines(lines, sources, reserved_key, digests, digest_of, line_type, offset, ordered, fallback)\n"
             "-> (list of line_type, total document bytes): the delivered documents of one parsed chunk.");

static PyObject *sink_lines(PyObject *self, PyObject *args) {
    PyObject *lines, *sources, *key_obj, *digests, *digest_of, *line_type, *offset, *fallback;
    int ordered_flag;
    if (!PyArg_ParseTuple(args, "O!O!UO!OO!O!pO:sink_lines", &PyList_Type, &lines, &PyList_Type, &sources, &key_obj,
                          &PyDict_Type, &digests, &digest_of, &PyType_Type, &line_type, &PyLong_Type, &offset,
                          &ordered_flag, &fallback))
        return NULL;
    Py_ssize_t klen = 0;
    const char *key = PyUnicode_AsUTF8AndSize(key_obj, &klen);
    if (key == NULL) PyErr_Clear(); /* not encodable: every line the Python way */
    PyObject *ordered = ordered_flag ? Py_True : Py_False;
    Py_ssize_t count = PyList_GET_SIZE(lines);
    PyObject *out = PyList_New(count);
    if (out == NULL) return NULL;
    Buf meta = {NULL, 0, 0};
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        Py_INCREF(line); /* the fallback may run Python code that changes the list */
        Py_ssize_t size = 0;
        PyObject *made = key == NULL ? NULL
                                     : spliced_line(line, i, sources, key, klen, digests, digest_of,
                                                    (PyTypeObject *)line_type, offset, ordered, &meta, &size);
        if (made == NULL && !PyErr_Occurred()) {
            PyObject *index = PyLong_FromSsize_t(i);
            made = index ? PyObject_CallFunctionObjArgs(fallback, line, index, NULL) : NULL;
            Py_XDECREF(index);
            PyObject *document = made ? PyObject_GetAttr(made, sink_line_attrs[SL_DOCUMENT]) : NULL;
            if (document != NULL && PyBytes_Check(document)) {
                size = PyBytes_GET_SIZE(document);
            } else if (made != NULL) {
                if (document != NULL) PyErr_SetString(PyExc_TypeError, "a sink line's document must be bytes");
                Py_CLEAR(made);
            }
            Py_XDECREF(document);
        }
        Py_DECREF(line);
        if (made == NULL) goto fail;
        total += size;
        PyList_SET_ITEM(out, i, made);
        if (PyList_GET_SIZE(lines) != count) {
            PyErr_SetString(PyExc_RuntimeError, "the chunk's lines changed during sink_lines");
            goto fail;
        }
    }
    PyMem_Free(meta.data);
    return Py_BuildValue("(Nn)", out, total);
fail:
    PyMem_Free(meta.data);
    Py_DECREF(out);
    return NULL;
}


/* ---- The same splice reading the sink record's bytes (the group stage's encoding passed through) ------
 *
 * A sink record is a parsed chunk as orjson wrote it: `{"v":1,"t":"parsed","srcs":[…],"lines":[…]}`
 * (and `"unordered":true`), every string in orjson's escaping. `chunk_layout` finds the parts; then
 * `sink_lines_raw` reads each line straight from the bytes: its strings are copied into the document's
 * metadata as they stand (they are already what orjson.dumps would write), the text is unescaped once
 * into the document, and no Python list, int or str is made for what the document alone needs. Any
 * record not exactly of that shape (other key order, white space, a string escaped otherwise than
 * orjson escapes, invalid UTF-8, a field of another type, an integer beyond 64 bits, a negative
 * position, a text the splice is not sure of) answers None, and the caller decodes it with orjson and
 * splices it through `sink_lines` and its Python reference instead.
 */


PyDoc_STRVAR(chunk_layout_doc, "chunk_layout(data) -> (srcs_start, srcs_end, lines_start, lines_end, unordered, ct)\n"
                               "or None: where the parts of a parsed chunk written by orjson are (lines_end: after its\n"
                               "`]`), and its collection time `ct` (None when absent).");

/* The record's fields after the lines are `"unordered":true` (unordered chunks) and `"ct":<int>` (the
 * collection time: the group stage routes by the rules in effect then; the drain does not need it), in
 * that order, each optional: the group stage forwards logs.parsed records as it received them. */
static PyObject *chunk_layout(PyObject *self, PyObject *args) {
    static const char head[] = "{\"v\":1,\"t\":\"parsed\",\"srcs\":";
    static const char tail[] = ",\"unordered\":true";
    static const char ct_key[] = ",\"ct\":";
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:chunk_layout", &view)) return NULL;
    const char *base = view.buf, *p = base, *end = base + view.len;
    PyObject *out = NULL;
    Py_ssize_t head_len = (Py_ssize_t)sizeof head - 1, tail_len = (Py_ssize_t)sizeof tail - 1;
    Py_ssize_t ct_len = (Py_ssize_t)sizeof ct_key - 1;
    if (expect(&p, end, head, head_len) && p < end && *p == '[') {
        Cursor c = {p, end};
        if (scan_value(&c, 0) == 0) {
            const char *srcs_end = c.p;
            p = c.p;
            if (expect(&p, end, ",\"lines\":", 9) && p < end && *p == '[' && end - p >= 3 && end[-1] == '}') {
                const char *stop = end - 1; /* where the fields after the lines end */
                const char *digit = stop;
                long long ct = 0;
                int has_ct = 0;
                while (digit > p && digit[-1] >= '0' && digit[-1] <= '9') digit--;
                if (digit < stop && digit > p && digit[-1] == '-') digit--;
                if (digit < stop && digit - p > ct_len && memcmp(digit - ct_len, ct_key, (size_t)ct_len) == 0 &&
                    canonical_int(digit, stop, &ct) == stop) {
                    stop = digit - ct_len;
                    has_ct = 1;
                }
                int unordered = stop - p > tail_len && memcmp(stop - tail_len, tail, (size_t)tail_len) == 0;
                const char *lines_end = unordered ? stop - tail_len : stop; /* after the lines' `]` */
                PyObject *ct_value = has_ct ? PyLong_FromLongLong(ct) : Py_NewRef(Py_None);
                if (ct_value != NULL && lines_end - p >= 2 && lines_end[-1] == ']')
                    out = Py_BuildValue("(nnnnOO)", head_len, (Py_ssize_t)(srcs_end - base), (Py_ssize_t)(p - base),
                                        (Py_ssize_t)(lines_end - base), unordered ? Py_True : Py_False, ct_value);
                Py_XDECREF(ct_value);
            }
        }
    }
    PyBuffer_Release(&view);
    if (out == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return out;
}


/* One line of a sink record as read: where its fields are in the record, and its document. */
typedef struct {
    ParsedEntry e;
    Py_ssize_t lid_at, lid_end; /* the line id, from the document's start */
    Py_ssize_t size;            /* the document's bytes */
} RawLine;

/* What reading one record's lines keeps from line to line: buffers, and the digest of the last stream. */
typedef struct {
    Buf doc, scratch; /* one document (for sink_lines_raw), unescaping room */
    Literal sid_seen;
    PyObject *digest; /* of sid_seen (owned) */
    const char *key;
    Py_ssize_t klen;
    PyObject *sources, *digests, *digest_of;
} RawReader;

static void raw_reader_free(RawReader *r) {
    Py_XDECREF(r->digest);
    Py_XDECREF(r->sid_seen.value);
    PyMem_Free(r->doc.data);
    PyMem_Free(r->scratch.data);
}

/* Reads the line at *pp (its `[`), leaves *pp after its `]` and appends the line's document to `out`: the
 * text unescaped, then the reserved key and the metadata object, written where they end up (no copy).
 * 1: read; 0: not sure (the record goes the reference way); -1: an error is set. */
static int raw_line(RawReader *r, const char **pp, const char *end, RawLine *l, Buf *out) {
    const char *p = read_entry(*pp, end, &l->e);
    if (p == NULL) return 0;
    if (l->e.src < 0 || l->e.src >= PyList_GET_SIZE(r->sources) || l->e.pos < 0) return 0;
    const char *const *at = l->e.at, *const *after = l->e.after;
    Py_ssize_t sid_len = after[1] - at[1];
    if (r->digest == NULL || r->sid_seen.len != sid_len || memcmp(r->sid_seen.at, at[1], (size_t)sid_len) != 0) {
        PyObject *sid = literal_str(&r->sid_seen, at[1], after[1], l->e.escaped[1], &r->scratch);
        if (sid == NULL) return -1;
        PyObject *found = stream_digest_of(r->digests, r->digest_of, sid);
        Py_DECREF(sid);
        if (found == NULL) return -1;
        Py_INCREF(found);
        Py_XSETREF(r->digest, found);
    }
    Py_ssize_t dlen;
    const char *d = PyUnicode_CheckExact(r->digest) ? PyUnicode_AsUTF8AndSize(r->digest, &dlen) : NULL;
    if (d == NULL) {
        PyErr_Clear();
        return 0;
    }

    /* the text, unescaped: what the reference splices into */
    Py_ssize_t start = out->len;
    if (unescape_into(out, at[7] + 1, after[7] - 1) < 0) return -1;
    const char *t = out->data + start, *key = r->key;
    Py_ssize_t tlen = out->len - start, klen = r->klen;
    int sure = tlen >= 2 && t[tlen - 1] == '}' && !holds_quoted(t, tlen, key, klen);
    Py_ssize_t body = tlen - 1;
    while (sure && body > 0 && ascii_space((unsigned char)t[body - 1])) body--;
    if (!sure || body == 0 || (unsigned char)t[body - 1] >= 0x80) {
        out->len = start;
        return 0;
    }
    int comma = t[body - 1] != '{';
    out->len = start + body;
    if ((comma && buf_put(out, ",", 1) < 0) || buf_put(out, "\"", 1) < 0 || buf_put(out, key, klen) < 0 ||
        buf_put(out, "\":{\"sid\":", 9) < 0 || buf_put(out, at[1], sid_len) < 0 || buf_put(out, ",\"pos\":", 7) < 0 ||
        buf_put(out, at[2], after[2] - at[2]) < 0 || buf_put(out, ",\"lid\":\"", 8) < 0)
        return -1;
    l->lid_at = out->len - start;
    if (buf_put(out, d, dlen) < 0 || buf_put(out, "-", 1) < 0 || put_int(out, l->e.pos, 1) < 0) return -1;
    l->lid_end = out->len - start;
    if (buf_put(out, "\",\"time_ns\":", 12) < 0 || buf_put(out, at[3], after[3] - at[3]) < 0 ||
        buf_put(out, ",\"trace\":", 9) < 0 || buf_put(out, at[4], after[4] - at[4]) < 0 ||
        buf_put(out, ",\"level\":", 9) < 0 || buf_put(out, at[5], after[5] - at[5]) < 0 ||
        buf_put(out, ",\"service\":", 11) < 0 || buf_put(out, at[6], after[6] - at[6]) < 0 ||
        buf_put(out, ",\"stream\":", 10) < 0 || buf_put(out, at[8], after[8] - at[8]) < 0 ||
        buf_put(out, ",\"source\":", 10) < 0)
        return -1;
    PyObject *source = PyList_GET_ITEM(r->sources, l->e.src);
    if (buf_put(out, PyBytes_AS_STRING(source), PyBytes_GET_SIZE(source)) < 0 || buf_put(out, "}}", 2) < 0)
        return -1;
    l->size = out->len - start;
    *pp = p;
    return 1;
}

/* Readies `r` for a record's lines; 0 when the record must go the reference way (no exception set). */
static int raw_reader_init(RawReader *r, PyObject *key_obj, PyObject *sources, PyObject *digests, PyObject *digest_of,
                           Py_buffer *view, Py_ssize_t lines_start, Py_ssize_t lines_end) {
    memset(r, 0, sizeof *r);
    r->sources = sources;
    r->digests = digests;
    r->digest_of = digest_of;
    r->key = PyUnicode_AsUTF8AndSize(key_obj, &r->klen);
    if (r->key == NULL || lines_start < 0 || lines_end > view->len || lines_end - lines_start < 2) {
        PyErr_Clear();
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sources); i++) {
        if (!PyBytes_CheckExact(PyList_GET_ITEM(sources, i))) return 0;
    }
    return 1;
}

PyDoc_STRVAR(sink_lines_raw_doc,
             "sink_lines_raw(data, lines_start, lines_end, sources, reserved_key, digests, digest_of, line_type,\n"
             "offset, ordered) -> (list of line_type, total document bytes), or None when the record must be\n"
             "decoded and spliced the reference way.");

static PyObject *sink_lines_raw(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t lines_start, lines_end;
    PyObject *sources, *key_obj, *digests, *digest_of, *line_type, *offset;
    int ordered_flag;
    if (!PyArg_ParseTuple(args, "y*nnO!UO!OO!O!p:sink_lines_raw", &view, &lines_start, &lines_end, &PyList_Type,
                          &sources, &key_obj, &PyDict_Type, &digests, &digest_of, &PyType_Type, &line_type,
                          &PyLong_Type, &offset, &ordered_flag))
        return NULL;
    PyObject *out = NULL, *result = NULL;
    RawReader r;
    Literal trace_seen = {NULL, 0, NULL}, level_seen = {NULL, 0, NULL}, service_seen = {NULL, 0, NULL};
    PyTypeObject *type = (PyTypeObject *)line_type;
    PyObject *ordered = ordered_flag ? Py_True : Py_False;
    if (!raw_reader_init(&r, key_obj, sources, digests, digest_of, &view, lines_start, lines_end)) goto unsure;
    if (!find_slots(type)) {
        PyErr_Clear();
        goto unsure;
    }
    const char *p = (const char *)view.buf + lines_start, *end = (const char *)view.buf + lines_end;
    Py_ssize_t total = 0;
    if ((out = PyList_New(0)) == NULL) goto done;
    if (*p++ != '[') goto unsure;
    if (*p == ']') {
        if (p + 1 != end) goto unsure;
        goto finished;
    }
    for (Py_ssize_t index = 0;; index++) {
        RawLine l;
        r.doc.len = 0;
        int got = raw_line(&r, &p, end, &l, &r.doc);
        if (got < 0) goto done;
        if (got == 0) goto unsure;
        PyObject *values[SL_FIELDS] = {NULL};
        values[SL_DOCUMENT] = PyBytes_FromStringAndSize(r.doc.data, l.size);
        values[SL_LINE_ID] = PyUnicode_DecodeASCII(r.doc.data + l.lid_at, l.lid_end - l.lid_at, NULL);
        values[SL_TRACE_ID] = literal_str(&trace_seen, l.e.at[E_TRACE], l.e.after[E_TRACE], l.e.escaped[E_TRACE], &r.scratch);
        values[SL_TIME_NS] = PyLong_FromLongLong(l.e.time_ns);
        values[SL_LEVEL] = literal_str(&level_seen, l.e.at[E_LEVEL], l.e.after[E_LEVEL], l.e.escaped[E_LEVEL], &r.scratch);
        values[SL_SERVICE] = literal_str(&service_seen, l.e.at[E_SERVICE], l.e.after[E_SERVICE], l.e.escaped[E_SERVICE], &r.scratch);
        values[SL_OFFSET] = Py_NewRef(offset);
        values[SL_INDEX] = PyLong_FromSsize_t(index);
        values[SL_ORDERED] = Py_NewRef(ordered);
        PyObject *made = NULL;
        int complete = 1;
        for (int f = 0; f < SL_FIELDS; f++) complete &= values[f] != NULL;
        if (complete) made = type->tp_alloc(type, 0);
        if (made != NULL) {
            /* It holds only str, int, bytes and bool, and the drain never stores a container in it: it
             * cannot be part of a cycle, so the collector need not visit it (CPython untracks tuples of
             * atoms the same way). */
            if (PyObject_GC_IsTracked(made)) PyObject_GC_UnTrack(made);
            for (int f = 0; f < SL_FIELDS; f++) { /* the slots take the references */
                PyObject **slot = (PyObject **)((char *)made + slot_offsets[f]);
                Py_XSETREF(*slot, values[f]);
                values[f] = NULL;
            }
        }
        for (int f = 0; f < SL_FIELDS; f++) Py_XDECREF(values[f]);
        if (made == NULL) goto done;
        int appended = PyList_Append(out, made);
        Py_DECREF(made);
        if (appended < 0) goto done;
        total += l.size;
        int next = next_entry(&p, end);
        if (next < 0) goto unsure;
        if (next == 0) break;
    }
finished:
    result = Py_BuildValue("(On)", out, total);
    goto done;
unsure:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(out);
    Py_XDECREF(trace_seen.value);
    Py_XDECREF(level_seen.value);
    Py_XDECREF(service_seen.value);
    raw_reader_free(&r);
    PyBuffer_Release(&view);
    return result;
}

/* ---- The file sink's form of a sink record: one buffer of documents and a table, no object per line ----
 *
 * Why: the file sink appends documents; a SinkLine per line (a str line id, an int index, a bytes
 * document and the rest) cost more than the splice itself, and the sink then joined the documents again.
 * This writes the record's documents straight into one buffer, each followed by a newline, and per line
 * one table entry of three native int64 (PACK_ENTRY): where its document ends in the buffer, its stream
 * position, and its stream's index in `streams` (the digests, in order of first use), which is what the
 * appending sinks' positions and stream marks need, and beside it each line's event time (int64), which
 * the object-store sinks name objects by and bound (sinks/packed.py reads the table; its Python reference
 * `pack_sink_lines` builds the same from the reference's SinkLines, and tests/unit/agents/test_sink_pack.py
 * holds the two equal).
 */

PyDoc_STRVAR(pack_lines_raw_doc,
             "pack_lines_raw(data, lines_start, lines_end, sources, reserved_key, digests, digest_of)\n"
             "-> (documents, table, streams, times), or None when the record must be decoded and spliced the reference way;\n"
             "times: each line's event time as int64 (what the object-store sinks name objects by and check).");

static PyObject *pack_lines_raw(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t lines_start, lines_end;
    PyObject *sources, *key_obj, *digests, *digest_of;
    if (!PyArg_ParseTuple(args, "y*nnO!UO!O:pack_lines_raw", &view, &lines_start, &lines_end, &PyList_Type, &sources,
                          &key_obj, &PyDict_Type, &digests, &digest_of))
        return NULL;
    PyObject *result = NULL, *streams = NULL, *refs = NULL, *documents = NULL, *table = NULL, *times = NULL;
    PyObject *last_digest = NULL; /* borrowed; `refs` keeps every digest seen alive, so no address is reused */
    int64_t ref = -1;
    Buf docs = {NULL, 0, 0}, entries = {NULL, 0, 0}, stamps = {NULL, 0, 0};
    RawReader r;
    if (!raw_reader_init(&r, key_obj, sources, digests, digest_of, &view, lines_start, lines_end)) goto unsure;
    const char *p = (const char *)view.buf + lines_start, *end = (const char *)view.buf + lines_end;
    if ((streams = PyList_New(0)) == NULL || (refs = PyDict_New()) == NULL) goto done;
    if (*p++ != '[') goto unsure;
    if (*p == ']') {
        if (p + 1 != end) goto unsure;
        goto finished;
    }
    for (;;) {
        RawLine l;
        int got = raw_line(&r, &p, end, &l, &docs);
        if (got < 0) goto done;
        if (got == 0) goto unsure;
        if (r.digest != last_digest) {
            PyObject *known = PyDict_GetItemWithError(refs, r.digest);
            if (known != NULL) {
                ref = PyLong_AsLongLong(known);
            } else {
                if (PyErr_Occurred()) goto done;
                ref = PyList_GET_SIZE(streams);
                PyObject *number = PyLong_FromLongLong(ref);
                int stored = number == NULL ? -1 : PyDict_SetItem(refs, r.digest, number);
                Py_XDECREF(number);
                if (stored < 0 || PyList_Append(streams, r.digest) < 0) goto done;
            }
            last_digest = r.digest;
        }
        if (buf_put(&docs, "\n", 1) < 0) goto done;
        int64_t entry[3] = {(int64_t)docs.len, (int64_t)l.e.pos, ref};
        if (buf_put(&entries, (const char *)entry, (Py_ssize_t)sizeof entry) < 0) goto done;
        int64_t stamp = (int64_t)l.e.time_ns;
        if (buf_put(&stamps, (const char *)&stamp, (Py_ssize_t)sizeof stamp) < 0) goto done;
        int next = next_entry(&p, end);
        if (next < 0) goto unsure;
        if (next == 0) break;
    }
finished:
    documents = PyBytes_FromStringAndSize(docs.data ? docs.data : "", docs.len);
    table = documents ? PyBytes_FromStringAndSize(entries.data ? entries.data : "", entries.len) : NULL;
    times = table ? PyBytes_FromStringAndSize(stamps.data ? stamps.data : "", stamps.len) : NULL;
    if (times != NULL) result = PyTuple_Pack(4, documents, table, streams, times);
    goto done;
unsure:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(documents);
    Py_XDECREF(table);
    Py_XDECREF(times);
    Py_XDECREF(streams);
    Py_XDECREF(refs);
    PyMem_Free(docs.data);
    PyMem_Free(entries.data);
    PyMem_Free(stamps.data);
    raw_reader_free(&r);
    PyBuffer_Release(&view);
    return result;
}

/* ---- The parse stage reading a raw record's bytes: no str, list or int per line ----------------------
 *
 * Why: `split` takes lines orjson decoded into Python lists, and the parsed entries it makes are encoded by
 * orjson again; decoding the raw record, building the entries and encoding them cost ~0.75 us per line, two
 * thirds of the parse stage. A raw record written by orjson already holds each line's text as the JSON string
 * the parsed record needs, and its position and stream too: `split_raw` reads the record's bytes, unescapes
 * each text into a scratch buffer only to scan it (the same `line_fields` as `split`), and writes each parsed
 * entry's encoding straight into its partition's buffer, copying the literals as they stand.
 *
 * It answers only for a record exactly as orjson writes a raw chunk (version 1 or 2: key order, no white
 * space, every string in orjson's escaping, integers within 64 bits, each line a list of an integer, two
 * strings and two integers); for any other record it answers None before any output, and the caller decodes
 * the record and parses it with `split` and the reference. A line it is not sure of goes to `slow`, as in
 * `split`. tests/unit/agents/test_split_raw.py holds its records byte-equal to the decoded path's.
 */

/* One partition's entries of the segment being read, each written without its `[<source index>` (the
 * merge writes that, agents/encoded_lines.py), and where each ends in the body (native uint32). */
typedef struct {
    Buf body, ends;
} PartOut;

/* A raw line entry [pos, "text", "stream", source_ns, flags] in orjson's exact form: its literals. */
typedef struct {
    const char *pos_at, *pos_after, *text_at, *text_after, *stream_at, *stream_after;
    int text_escaped, stream_escaped;
    long long pos, source_ns, flags;
} RawEntry;

/* Reads it, the text unescaped into `text` (emptied first); NULL when it is not in that form, or (with an
 * error set) memory ran out. */
static const char *read_raw_entry(const char *p, const char *end, RawEntry *e, Buf *text) {
    if (p >= end || *p++ != '[') return NULL;
    e->pos_at = p;
    if ((p = canonical_int(p, end, &e->pos)) == NULL || p >= end || *p != ',') return NULL;
    e->pos_after = p++;
    e->text_at = p;
    text->len = 0;
    if ((p = canonical_unescape(p, end, text, &e->text_escaped)) == NULL || p >= end || *p != ',') return NULL;
    e->text_after = p++;
    e->stream_at = p;
    if ((p = canonical_string(p, end, &e->stream_escaped)) == NULL || p >= end || *p != ',') return NULL;
    e->stream_after = p++;
    if ((p = canonical_int(p, end, &e->source_ns)) == NULL || p >= end || *p++ != ',') return NULL;
    if ((p = canonical_int(p, end, &e->flags)) == NULL || p >= end || *p++ != ']') return NULL;
    return p;
}

static int put_end(PartOut *part) {
    uint32_t at = (uint32_t)part->body.len;
    return buf_put(&part->ends, (const char *)&at, (Py_ssize_t)sizeof at);
}

/* A level name as it stands in JSON (printable ASCII without `"` or `\`), else NULL: the reference encodes it. */
static const char *plain_name(PyObject *name, Py_ssize_t *len) {
    const char *text = PyUnicode_AsUTF8AndSize(name, len);
    if (text == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < *len; i++)
        if (!plain_ascii[(unsigned char)text[i]]) return NULL;
    return text;
}

/* The parsed entry of a line the scan understood, into its partition's buffer. */
static int put_parsed(PartOut *part, const char *sid_at, const char *sid_after, const RawEntry *e,
                      const LineFields *got, const char *level, Py_ssize_t level_len) {
    Buf *b = &part->body;
    Py_ssize_t service_len = got->service_len < 0 ? 0 : got->service_len;
    if (buf_reserve(b, (sid_after - sid_at) + (e->pos_after - e->pos_at) + 24 + got->trace_len + level_len +
                           service_len + (e->text_after - e->text_at) + (e->stream_after - e->stream_at) + 16) < 0)
        return -1;
    char *o = b->data + b->len;
#define PUT(src, n) (memcpy(o, (src), (size_t)(n)), o += (n))
    *o++ = ',';
    PUT(sid_at, sid_after - sid_at);
    *o++ = ',';
    PUT(e->pos_at, e->pos_after - e->pos_at);
    *o++ = ',';
    b->len = o - b->data;
    if (put_int(b, got->time_ns, 0) < 0) return -1; /* room reserved: put_int does not move the data */
    o = b->data + b->len;
    PUT(",\"", 2);
    PUT(got->trace, got->trace_len);
    PUT("\",\"", 3);
    PUT(level, level_len);
    PUT("\",\"", 3);
    if (service_len > 0) PUT(got->service, service_len); /* no service: NULL, which memcpy may not take */
    PUT("\",", 2);
    PUT(e->text_at, e->text_after - e->text_at);
    *o++ = ',';
    PUT(e->stream_at, e->stream_after - e->stream_at);
    *o++ = ']';
#undef PUT
    b->len = o - b->data;
    return put_end(part);
}

/* What `slow` gave for one line: None (a dead letter, recorded by it), or (partition, orjson's encoding of the
 * entry, source index 0), appended to that partition without its `[0`. 0 done, -1 an error is set. */
static int put_slow(PyObject *given, PartOut *parts, long partitions, long *touched, long *n_touched) {
    if (given == Py_None) return 0;
    PyObject *number, *encoded;
    if (!PyTuple_Check(given) || PyTuple_GET_SIZE(given) != 2 || !PyLong_Check(number = PyTuple_GET_ITEM(given, 0)) ||
        !PyBytes_Check(encoded = PyTuple_GET_ITEM(given, 1))) {
        PyErr_SetString(PyExc_TypeError, "slow() must return None or (partition, encoded entry)");
        return -1;
    }
    long partition = PyLong_AsLong(number);
    if (partition == -1 && PyErr_Occurred()) return -1;
    const char *data = PyBytes_AS_STRING(encoded);
    Py_ssize_t len = PyBytes_GET_SIZE(encoded);
    if (partition < 0 || partition >= partitions || len < 4 || memcmp(data, "[0,", 3) != 0 || data[len - 1] != ']') {
        PyErr_SetString(PyExc_ValueError, "slow() gave a partition out of range or an entry not of source 0");
        return -1;
    }
    PartOut *part = &parts[partition];
    if (part->ends.len == 0) touched[(*n_touched)++] = partition;
    return buf_put(&part->body, data + 2, len - 2) < 0 ? -1 : put_end(part);
}

/* The outputs of the segment just read, {partition: (body, ends)}, and the partition buffers emptied. */
static PyObject *segment_outputs(PartOut *parts, long *touched, long *n_touched) {
    PyObject *out = PyDict_New();
    for (long i = 0; out != NULL && i < *n_touched; i++) {
        PartOut *part = &parts[touched[i]];
        PyObject *key = PyLong_FromLong(touched[i]);
        PyObject *value = Py_BuildValue("(y#y#)", part->body.data ? part->body.data : "", part->body.len,
                                        part->ends.data ? part->ends.data : "", part->ends.len);
        if (key == NULL || value == NULL || PyDict_SetItem(out, key, value) < 0) Py_CLEAR(out);
        Py_XDECREF(key);
        Py_XDECREF(value);
        part->body.len = part->ends.len = 0;
    }
    *n_touched = 0;
    return out;
}

/* The buffers of a split_raw call, kept for the next one: fresh buffers for every record cost page faults and
 * copies while they grew (a tenth of the split). Only a call that finds them free takes them (`slow` could call
 * split_raw again); a buffer grown past KEPT_CAP is given back after the call. */
#define KEPT_CAP (4 << 20)
typedef struct {
    PartOut *parts;
    long *touched;
    long partitions; /* the room in `parts` and `touched` */
    Buf scratch;
    int busy;
} Workspace;

static Workspace kept_workspace;

/* `kept_workspace` when free, else `fresh` (zeroed); NULL when memory ran out (an error is set). */
static Workspace *workspace_take(Workspace *fresh, long partitions) {
    Workspace *w = kept_workspace.busy ? fresh : &kept_workspace;
    if (w->partitions < partitions) {
        PartOut *parts = PyMem_Realloc(w->parts, (size_t)partitions * sizeof *parts);
        if (parts == NULL) return (Workspace *)PyErr_NoMemory();
        memset(parts + w->partitions, 0, (size_t)(partitions - w->partitions) * sizeof *parts);
        w->parts = parts;
        long *touched = PyMem_Realloc(w->touched, (size_t)partitions * sizeof *touched);
        if (touched == NULL) return (Workspace *)PyErr_NoMemory();
        w->touched = touched;
        w->partitions = partitions;
    }
    w->busy = 1;
    return w;
}

static void buf_release(Buf *b, int keep) {
    b->len = 0;
    if (!keep || b->cap > KEPT_CAP) {
        PyMem_Free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

static void workspace_give(Workspace *w) {
    int keep = w == &kept_workspace;
    for (long i = 0; i < w->partitions; i++) {
        buf_release(&w->parts[i].body, keep);
        buf_release(&w->parts[i].ends, keep);
    }
    buf_release(&w->scratch, keep);
    w->busy = 0;
    if (!keep) {
        PyMem_Free(w->parts);
        PyMem_Free(w->touched);
    }
}

PyDoc_STRVAR(split_raw_doc,
"split_raw(data, fields, levels, partitions, max_bytes, rfc_fast, epoch_unit, source_of, slow)\n"
"-> (ct, line_count, [{partition: (body, ends)} per segment]) or None\n\n"
"`split` reading a decompressed `logs.raw` record's bytes. For each segment it first calls\n"
"`source_of(segment, src_start, src_end, sid_start, sid_end, ct)` (offsets of the literals in `data`, and\n"
"the record's collection time), which returns False to have the record decoded instead (None is then returned). Each output's body holds its\n"
"parsed entries back to back, each as orjson writes it but without its leading `[0`; `ends` holds where\n"
"each entry ends, as native uint32. Lines the scan is not sure of go to `slow(segment, start, end)` (the\n"
"offsets of the raw entry in `data`), which returns None or (partition, orjson.dumps(entry)).\n"
"None: the record is not exactly as orjson writes a raw chunk (then neither callback changed anything\n"
"the caller keeps only on success).");

static PyObject *split_raw(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *fields, *levels, *source_of, *slow;
    long partitions;
    Py_ssize_t max_bytes;
    int rfc_fast;
    long long epoch_unit;
    if (!PyArg_ParseTuple(args, "y*OO!lnpLOO:split_raw", &view, &fields, &PyDict_Type, &levels, &partitions,
                          &max_bytes, &rfc_fast, &epoch_unit, &source_of, &slow))
        return NULL;
    PyObject *result = NULL, *segments = NULL;
    Workspace fresh = {NULL, NULL, 0, {NULL, 0, 0}, 0}, *w = NULL;
    PartOut *parts = NULL;
    long *touched = NULL, n_touched = 0;
    Buf *scratch = NULL;
    LevelSeen seen = {{0}, 0, NULL};
    char trace_seen[MAX_TRACE];
    Py_ssize_t trace_seen_len = -1;
    long trace_part = 0;
    FieldSpec spec;
    if (partitions < 1) {
        PyErr_SetString(PyExc_ValueError, "partitions must be at least 1");
        PyBuffer_Release(&view);
        return NULL;
    }
    if (field_spec_load(&spec, fields) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if ((w = workspace_take(&fresh, partitions)) == NULL || (segments = PyList_New(0)) == NULL) goto done;
    parts = w->parts, touched = w->touched, scratch = &w->scratch;
    const char *base = view.buf, *p = base, *end = base + view.len;
    long long ct = 0, lines = 0;
    int version;
    if (expect(&p, end, "{\"v\":2,\"t\":\"raw\",\"ct\":", 22)) {
        version = 2;
        if ((p = canonical_int(p, end, &ct)) == NULL || !expect(&p, end, ",\"segs\":[", 9)) goto unsure;
        if (expect(&p, end, "]}", 2)) goto finished;
    } else if (expect(&p, end, "{\"v\":1,\"t\":\"raw\",\"src\":", 23)) {
        version = 1;
    } else {
        goto unsure;
    }
    for (Py_ssize_t segment = 0;; segment++) {
        if (version == 2 && !expect(&p, end, "{\"src\":", 7)) goto unsure;
        if (p >= end || *p != '{') goto unsure;
        Cursor c = {p, end};
        if (scan_value(&c, 0) < 0) goto unsure;
        const char *src_at = p, *src_after = c.p;
        p = c.p;
        int sid_escaped;
        if (!expect(&p, end, ",\"sid\":", 7)) goto unsure;
        const char *sid_at = p;
        if ((p = canonical_string(p, end, &sid_escaped)) == NULL) goto unsure;
        const char *sid_after = p;
        if (version == 1 && (!expect(&p, end, ",\"ct\":", 6) || (p = canonical_int(p, end, &ct)) == NULL)) goto unsure;
        if (!expect(&p, end, ",\"lines\":[", 10)) goto unsure;
        PyObject *take = PyObject_CallFunction(source_of, "nnnnnL", segment, (Py_ssize_t)(src_at - base),
                                               (Py_ssize_t)(src_after - base), (Py_ssize_t)(sid_at - base),
                                               (Py_ssize_t)(sid_after - base), ct);
        if (take == NULL) goto done;
        int taken = PyObject_IsTrue(take);
        Py_DECREF(take);
        if (taken < 0) goto done;
        if (!taken) goto unsure;
        if (!expect(&p, end, "]", 1)) {
            for (;;) {
                RawEntry e;
                const char *entry_at = p;
                if ((p = read_raw_entry(p, end, &e, scratch)) == NULL) {
                    if (PyErr_Occurred()) goto done;
                    goto unsure;
                }
                lines++;
                int known = 0;
                LineFields got;
                const char *level = "";
                Py_ssize_t level_len = 0;
                if (e.flags == 0) {
                    const char *text = scratch->data;
                    Py_ssize_t size = scratch->len;
                    if (size >= 2 && size <= max_bytes && text[0] == '{' && text[size - 1] == '}') {
                        known = line_fields(text, size, &spec.index, levels, rfc_fast, epoch_unit,
                                            e.source_ns ? e.source_ns : ct, &seen, &got);
                        if (known < 0) goto done;
                        if (known && got.level != NULL && (level = plain_name(got.level, &level_len)) == NULL)
                            known = 0;
                    }
                }
                if (known) {
                    if (got.trace_len != trace_seen_len || memcmp(trace_seen, got.trace, (size_t)got.trace_len) != 0) {
                        memcpy(trace_seen, got.trace, (size_t)got.trace_len); /* at most MAX_TRACE bytes */
                        trace_seen_len = got.trace_len;
                        trace_part = (long)(crc32_of(got.trace, got.trace_len) % (unsigned long)partitions);
                    }
                    PartOut *part = &parts[trace_part];
                    if (part->ends.len == 0) touched[n_touched++] = trace_part;
                    if (put_parsed(part, sid_at, sid_after, &e, &got, level, level_len) < 0) goto done;
                } else {
                    PyObject *given = PyObject_CallFunction(slow, "nnn", segment, (Py_ssize_t)(entry_at - base),
                                                            (Py_ssize_t)(p - base));
                    if (given == NULL) goto done;
                    int put = put_slow(given, parts, partitions, touched, &n_touched);
                    Py_DECREF(given);
                    if (put < 0) goto done;
                }
                if (expect(&p, end, ",", 1)) continue;
                if (expect(&p, end, "]", 1)) break;
                goto unsure;
            }
        }
        PyObject *outputs = segment_outputs(parts, touched, &n_touched);
        if (outputs == NULL) goto done;
        int appended = PyList_Append(segments, outputs);
        Py_DECREF(outputs);
        if (appended < 0) goto done;
        if (!expect(&p, end, "}", 1)) goto unsure;
        if (version == 1) break;
        if (expect(&p, end, ",", 1)) continue;
        if (expect(&p, end, "]}", 2)) break;
        goto unsure;
    }
    if (p != end) goto unsure;
finished:
    if (p != end) goto unsure;
    result = Py_BuildValue("(LLO)", ct, lines, segments);
    goto done;
unsure:
    result = Py_NewRef(Py_None);
done:
    workspace_give(w != NULL ? w : &fresh);
    Py_XDECREF(seen.level);
    Py_XDECREF(segments);
    field_spec_free(&spec);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(join_parsed_doc,
"join_parsed(head, pieces, tail) -> bytes\n\n"
"`head`, then the entries of `pieces` [(source index, body, ends), ...] as `split_raw` writes them, each\n"
"opened with `[<source index>` and separated by commas, then `tail`: a parsed record's `lines` array as\n"
"orjson writes it, within the record's other fields.");

static PyObject *join_parsed(PyObject *self, PyObject *args) {
    Py_buffer head, tail;
    PyObject *pieces;
    if (!PyArg_ParseTuple(args, "y*O!y*:join_parsed", &head, &PyList_Type, &pieces, &tail)) return NULL;
    PyObject *result = NULL;
    Buf out = {NULL, 0, 0};
    if (buf_put(&out, head.buf, head.len) < 0) goto done;
    int first = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pieces); i++) {
        PyObject *piece = PyList_GET_ITEM(pieces, i), *body, *ends;
        long long index;
        if (!PyTuple_Check(piece) || PyTuple_GET_SIZE(piece) != 3 || !PyBytes_Check(body = PyTuple_GET_ITEM(piece, 1)) ||
            !PyBytes_Check(ends = PyTuple_GET_ITEM(piece, 2)) || !exact_int(PyTuple_GET_ITEM(piece, 0), &index) ||
            index < 0 || PyBytes_GET_SIZE(ends) % 4 != 0) {
            PyErr_SetString(PyExc_TypeError, "pieces must be (source index >= 0, body, ends) tuples");
            goto done;
        }
        const char *data = PyBytes_AS_STRING(body);
        Py_ssize_t size = PyBytes_GET_SIZE(body), count = PyBytes_GET_SIZE(ends) / 4;
        char digits[24];
        int n = snprintf(digits, sizeof digits, "[%lld", index);
        if (buf_reserve(&out, size + count * (n + 1)) < 0) goto done;
        uint32_t start = 0;
        for (Py_ssize_t k = 0; k < count; k++) {
            uint32_t stop;
            memcpy(&stop, PyBytes_AS_STRING(ends) + 4 * k, sizeof stop);
            if (stop < start || stop > (uint32_t)size) {
                PyErr_SetString(PyExc_ValueError, "an entry's end lies outside its body");
                goto done;
            }
            char *o = out.data + out.len;
            if (!first) *o++ = ',';
            first = 0;
            memcpy(o, digits, (size_t)n);
            memcpy(o + n, data + start, stop - start);
            out.len = (o + n + (stop - start)) - out.data;
            start = stop;
        }
    }
    if (buf_put(&out, tail.buf, tail.len) < 0) goto done;
    result = PyBytes_FromStringAndSize(out.data, out.len);
done:
    PyMem_Free(out.data);
    PyBuffer_Release(&head);
    PyBuffer_Release(&tail);
    return result;
}

static PyMethodDef methods[] = {
    {"split", split, METH_VARARGS, split_doc},
    {"sink_lines", sink_lines, METH_VARARGS, sink_lines_doc},
    {"chunk_layout", chunk_layout, METH_VARARGS, chunk_layout_doc},
    {"sink_lines_raw", sink_lines_raw, METH_VARARGS, sink_lines_raw_doc},
    {"pack_lines_raw", pack_lines_raw, METH_VARARGS, pack_lines_raw_doc},
    {"split_raw", split_raw, METH_VARARGS, split_raw_doc},
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
