/* The intake's per-line work in C: Fluent forward records and RFC 5424 syslog frames -> raw lines.
 *
 * Why: in the Python paths every forward record became a dict (msgspec), then JSON bytes (orjson),
 * then a str and a raw-line list, and every syslog frame went through a regex, a split, a dict and
 * orjson twice: about 1.6 us per forward line and 6 us per syslog line, most of the intake's CPU.
 * Here a record or frame goes straight from its bytes to the raw line's JSON text.
 *
 * Each function only answers when it is sure to give its Python reference's line
 * (collectors/intake/forward_messages.py + forward.entry_lines, syslog_parse.parse_syslog):
 *  - forward_lines: a PackedForward stream of [int seconds or EventTime, map] entries whose maps
 *    hold strings (valid UTF-8), integers, finite floats, booleans, nil, arrays and maps with string
 *    keys, each line within the limit. Otherwise it returns None and the caller takes the Python
 *    path for the whole message. The text is byte for byte orjson's, except that floats are written
 *    as Python's repr (the same number; orjson writes 1e16 as 1e+16 too).
 *  - syslog_lines: RFC 5424 frames of valid UTF-8 with a `YYYY-MM-DDTHH:MM:SS[.f]Z` or nil time,
 *    no structured data, and a MSG that is either plain text or a JSON object (strictly valid, no
 *    exponent, integers of at most 18 digits, no top-level "syslog" key). The JSON object is kept
 *    as the sender wrote it, with the fields the reference adds appended: the same object once
 *    parsed, which is what the parse stage reads. Any other frame gets None in its slot and the
 *    caller runs the reference on it (in order).
 * tests/unit/collectors/intake/test_intakefast.py holds both equal to the references.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../../core/_jsontext.h"

#define MAX_DEPTH 64
#define NS 1000000000LL

/* ---------- output buffer ---------- */

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
    int wide; /* a byte >= 0x80 was written: the text is not ASCII */
} Out;

static int out_grow(Out *o, Py_ssize_t need) {
    if (o->len + need <= o->cap) return 0;
    Py_ssize_t cap = o->cap ? o->cap : 1024;
    while (cap < o->len + need) cap *= 2;
    char *buf = PyMem_Realloc(o->buf, (size_t)cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = buf;
    o->cap = cap;
    return 0;
}

static int out_put(Out *o, const char *s, Py_ssize_t n) {
    if (out_grow(o, n) < 0) return -1;
    memcpy(o->buf + o->len, s, (size_t)n);
    o->len += n;
    return 0;
}

#define PUTS(o, lit) out_put((o), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static int out_uint(Out *o, unsigned long long v) {
    char tmp[24], *w = tmp + sizeof tmp;
    do {
        *--w = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return out_put(o, w, tmp + sizeof tmp - w);
}

static int out_int(Out *o, long long v) {
    if (v >= 0) return out_uint(o, (unsigned long long)v);
    if (out_put(o, "-", 1) < 0) return -1;
    return out_uint(o, 0ULL - (unsigned long long)v);
}

static unsigned char PLAIN[256]; /* ASCII that a JSON string holds as is (set up at import) */

static void plain_init(void) {
    for (int c = 0x20; c < 0x80; c++) PLAIN[c] = c != '"' && c != '\\';
}

/* `s` (valid UTF-8) as a JSON string the way orjson writes it: only '"', '\\' and control
 * characters escaped, short escapes where JSON has them, else \u00xx. */
static int out_string(Out *o, const unsigned char *s, Py_ssize_t n) {
    if (out_grow(o, n * 6 + 2) < 0) return -1;
    char *w = o->buf + o->len;
    *w++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t run = i;
        while (run < n && PLAIN[s[run]]) run++;
        if (run > i) { /* a run of ASCII that needs no escape */
            memcpy(w, s + i, (size_t)(run - i));
            w += run - i;
            i = run;
            if (i == n) break;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            o->wide = 1;
            *w++ = (char)c;
            continue;
        }
        w = json_escape_ascii(w, c);
    }
    *w++ = '"';
    o->len = w - o->buf;
    return 0;
}

/* ---------- UTF-8 ---------- */

/* Whether s[0:n] is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF): 0 if not,
 * 1 for ASCII, 2 for valid UTF-8 with other characters. */
static int utf8_valid(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    int wide = 0;
    while (i < n) {
        while (i + 8 <= n) { /* ASCII eight bytes at a time */
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (word & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        int more;
        uint32_t cp;
        wide = 1;
        if (c >= 0xC2 && c <= 0xDF) { more = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { more = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { more = 3; cp = c & 0x07; }
        else return 0;
        if (i + more >= n) return 0;
        for (int k = 1; k <= more; k++) {
            unsigned char d = s[i + k];
            if ((d & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((more == 2 && cp < 0x800) || (more == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        i += more + 1;
    }
    return 1 + wide;
}

/* ---------- raw lines ---------- */

/* [position, text, "", time_ns, 0]: core.models.make_raw_line of valid UTF-8. */
static PyObject *raw_line(long long position, const Out *o, long long time_ns) {
    PyObject *text;
    if (o->wide) {
        text = PyUnicode_DecodeUTF8(o->buf, o->len, "strict");
    } else {
        text = PyUnicode_New(o->len, 127);
        if (text != NULL) memcpy(PyUnicode_DATA(text), o->buf, (size_t)o->len);
    }
    if (text == NULL) return NULL;
    PyObject *line = PyList_New(5);
    PyObject *pos = PyLong_FromLongLong(position), *when = PyLong_FromLongLong(time_ns);
    PyObject *empty = PyUnicode_New(0, 127), *zero = PyLong_FromLong(0);
    if (line == NULL || pos == NULL || when == NULL || empty == NULL || zero == NULL) {
        Py_XDECREF(line); Py_XDECREF(pos); Py_XDECREF(when); Py_XDECREF(empty); Py_XDECREF(zero);
        Py_DECREF(text);
        return NULL;
    }
    PyList_SET_ITEM(line, 0, pos);
    PyList_SET_ITEM(line, 1, text);
    PyList_SET_ITEM(line, 2, empty);
    PyList_SET_ITEM(line, 3, when);
    PyList_SET_ITEM(line, 4, zero);
    return line;
}

/* ---------- msgpack -> JSON (forward) ---------- */

typedef struct {
    const unsigned char *p, *end;
} Reader;

enum { OK = 0, UNSURE = 1, FAILED = -1 }; /* UNSURE: leave it to the Python reference */

static int need(Reader *r, Py_ssize_t n) { return r->end - r->p >= n; }

static uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* The length of a str at r->p (after its header), or -1 when it is not a str. */
static Py_ssize_t str_header(Reader *r) {
    unsigned char t = *r->p;
    Py_ssize_t len;
    int head;
    if ((t & 0xE0) == 0xA0) { len = t & 0x1F; head = 1; }
    else if (t == 0xD9) { if (!need(r, 2)) return -1; len = r->p[1]; head = 2; }
    else if (t == 0xDA) { if (!need(r, 3)) return -1; len = (Py_ssize_t)be(r->p + 1, 2); head = 3; }
    else if (t == 0xDB) { if (!need(r, 5)) return -1; len = (Py_ssize_t)be(r->p + 1, 4); head = 5; }
    else return -1;
    r->p += head;
    if (!need(r, len)) return -1;
    return len;
}

static int mp_string(Reader *r, Out *o) {
    Py_ssize_t len = str_header(r);
    if (len < 0 || !utf8_valid(r->p, len)) return UNSURE;
    if (out_string(o, r->p, len) < 0) return FAILED;
    r->p += len;
    return OK;
}

static int mp_value(Reader *r, Out *o, int depth);

static int mp_container(Reader *r, Out *o, uint64_t count, int map, int depth) {
    if (depth > MAX_DEPTH) return UNSURE;
    if (out_put(o, map ? "{" : "[", 1) < 0) return FAILED;
    for (uint64_t i = 0; i < count; i++) {
        int rc;
        if (i && out_put(o, ",", 1) < 0) return FAILED;
        if (map) {
            if (!need(r, 1)) return UNSURE;
            if ((rc = mp_string(r, o)) != OK) return rc; /* orjson writes string keys only */
            if (out_put(o, ":", 1) < 0) return FAILED;
        }
        if ((rc = mp_value(r, o, depth + 1)) != OK) return rc;
    }
    return out_put(o, map ? "}" : "]", 1) < 0 ? FAILED : OK;
}

static int mp_float(Out *o, double d) {
    if (!isfinite(d)) return UNSURE; /* orjson writes null for these */
    char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) return FAILED;
    int rc = out_put(o, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return rc < 0 ? FAILED : OK;
}

static int mp_value(Reader *r, Out *o, int depth) {
    if (!need(r, 1)) return UNSURE;
    unsigned char t = *r->p;
    if (t <= 0x7F) { r->p++; return out_int(o, t) < 0 ? FAILED : OK; }
    if (t >= 0xE0) { r->p++; return out_int(o, (signed char)t) < 0 ? FAILED : OK; }
    if ((t & 0xE0) == 0xA0 || t == 0xD9 || t == 0xDA || t == 0xDB) return mp_string(r, o);
    if ((t & 0xF0) == 0x90) { r->p++; return mp_container(r, o, t & 0x0F, 0, depth); }
    if ((t & 0xF0) == 0x80) { r->p++; return mp_container(r, o, t & 0x0F, 1, depth); }
    int width = 0;
    switch (t) {
    case 0xC0: r->p++; return PUTS(o, "null") < 0 ? FAILED : OK;
    case 0xC2: r->p++; return PUTS(o, "false") < 0 ? FAILED : OK;
    case 0xC3: r->p++; return PUTS(o, "true") < 0 ? FAILED : OK;
    case 0xCC: case 0xCD: case 0xCE: case 0xCF:
        width = 1 << (t - 0xCC);
        if (!need(r, 1 + width)) return UNSURE;
        {
            uint64_t v = be(r->p + 1, width);
            r->p += 1 + width;
            return out_uint(o, v) < 0 ? FAILED : OK;
        }
    case 0xD0: case 0xD1: case 0xD2: case 0xD3:
        width = 1 << (t - 0xD0);
        if (!need(r, 1 + width)) return UNSURE;
        {
            uint64_t u = be(r->p + 1, width);
            int64_t v;
            if (width == 1) v = (int8_t)u;
            else if (width == 2) v = (int16_t)u;
            else if (width == 4) v = (int32_t)u;
            else v = (int64_t)u;
            r->p += 1 + width;
            return out_int(o, v) < 0 ? FAILED : OK;
        }
    case 0xCA:
        if (!need(r, 5)) return UNSURE;
        {
            uint32_t u = (uint32_t)be(r->p + 1, 4);
            float f;
            memcpy(&f, &u, 4);
            r->p += 5;
            return mp_float(o, (double)f);
        }
    case 0xCB:
        if (!need(r, 9)) return UNSURE;
        {
            uint64_t u = be(r->p + 1, 8);
            double d;
            memcpy(&d, &u, 8);
            r->p += 9;
            return mp_float(o, d);
        }
    case 0xDC: case 0xDD: case 0xDE: case 0xDF: {
        int head = (t == 0xDC || t == 0xDE) ? 2 : 4;
        if (!need(r, 1 + head)) return UNSURE;
        uint64_t count = be(r->p + 1, head);
        r->p += 1 + head;
        if ((uint64_t)(r->end - r->p) < count) return UNSURE; /* each element is at least a byte */
        return mp_container(r, o, count, t >= 0xDE, depth);
    }
    default:
        return UNSURE; /* bin, ext: the reference decides (and may reject) */
    }
}

/* The entry's time at r->p in ns: an integer of seconds or the EventTime extension. */
static int mp_time(Reader *r, long long *ns) {
    if (!need(r, 1)) return UNSURE;
    unsigned char t = *r->p;
    long long seconds;
    if (t <= 0x7F) { seconds = t; r->p++; }
    else if (t >= 0xE0) { seconds = (signed char)t; r->p++; }
    else if (t >= 0xCC && t <= 0xD3) {
        int width = 1 << ((t - 0xCC) & 3);
        if (!need(r, 1 + width)) return UNSURE;
        uint64_t u = be(r->p + 1, width);
        if (t <= 0xCF) {
            if (u > 9000000000ULL) return UNSURE;
            seconds = (long long)u;
        } else {
            int64_t v = width == 1 ? (int8_t)u : width == 2 ? (int16_t)u : width == 4 ? (int32_t)u : (int64_t)u;
            if (v > 9000000000LL || v < -9000000000LL) return UNSURE;
            seconds = v;
        }
        r->p += 1 + width;
    } else if (t == 0xD7) { /* fixext 8 */
        if (!need(r, 10) || r->p[1] != 0) return UNSURE;
        uint64_t s = be(r->p + 2, 4), n = be(r->p + 6, 4);
        if (s > 9000000000ULL) return UNSURE;
        *ns = (long long)s * NS + (long long)n;
        r->p += 10;
        return OK;
    } else {
        return UNSURE;
    }
    *ns = seconds * NS;
    return OK;
}

static void out_free(Out *o) { PyMem_Free(o->buf); }

PyDoc_STRVAR(forward_lines_doc,
"forward_lines(packed, first, max_line_bytes) -> (lines, size) or None\n\n"
"The raw lines of a PackedForward stream, positions from `first`, and the bytes of their texts;\n"
"None when the Python path must read the message (see the module comment).");

static PyObject *forward_lines(PyObject *self, PyObject *args) {
    Py_buffer view;
    long long first;
    Py_ssize_t max_line;
    if (!PyArg_ParseTuple(args, "y*Ln", &view, &first, &max_line)) return NULL;
    Reader r = {(const unsigned char *)view.buf, (const unsigned char *)view.buf + view.len};
    Out o = {0};
    PyObject *lines = PyList_New(0);
    long long size = 0, index = first;
    int rc = lines == NULL ? FAILED : OK;
    if (view.len == 0) rc = UNSURE;
    while (rc == OK && r.p < r.end) {
        long long ns = 0;
        if (*r.p != 0x92) { rc = UNSURE; break; } /* [time, record] */
        r.p++;
        if ((rc = mp_time(&r, &ns)) != OK) break;
        if (!need(&r, 1)) { rc = UNSURE; break; }
        unsigned char t = *r.p;
        if ((t & 0xF0) != 0x80 && t != 0xDE && t != 0xDF) { rc = UNSURE; break; } /* a map */
        o.len = 0;
        o.wide = 0;
        if ((rc = mp_value(&r, &o, 1)) != OK) break;
        if (o.len > max_line) { rc = UNSURE; break; }
        PyObject *line = raw_line(index++, &o, ns);
        if (line == NULL) { rc = FAILED; break; }
        int appended = PyList_Append(lines, line);
        Py_DECREF(line);
        if (appended < 0) { rc = FAILED; break; }
        size += o.len;
    }
    PyBuffer_Release(&view);
    out_free(&o);
    if (rc != OK) {
        Py_XDECREF(lines);
        if (rc == FAILED) return NULL;
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(NL)", lines, size);
}

/* ---------- syslog ---------- */

static const char *SEVERITY[] = {"emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"};

static int digits(const unsigned char *p, int n, int *value) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *value = v;
    return 1;
}

static long long days_from_civil(long long y, unsigned m, unsigned d) { /* H. Hinnant's algorithm */
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, int *y, unsigned *m, unsigned *d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y0 = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(y0 + (*m <= 2));
}

/* `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` (years 1970-2200) in ns, as core.timeparse reads it; 0 if not that. */
static int rfc3339_ns(const unsigned char *s, Py_ssize_t n, long long *ns) {
    int y, mo, d, h, mi, se;
    if (n < 20 || s[n - 1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return 0;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
        return 0;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || y > 2200 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || se > 60)
        return 0;
    long long frac = 0;
    if (n > 20) {
        Py_ssize_t f = n - 21; /* digits between '.' and 'Z' */
        if (s[19] != '.' || f < 1 || f > 9) return 0;
        for (Py_ssize_t i = 0; i < 9; i++) {
            int c = i < f ? s[20 + i] : '0';
            if (c < '0' || c > '9') return 0;
            frac = frac * 10 + (c - '0');
        }
    }
    *ns = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se) * NS) + frac;
    return 1;
}

static int out_rfc3339(Out *o, long long ns) {
    long long seconds = ns / NS, nanos = ns % NS; /* ns > 0 here */
    long long days = seconds / 86400, rem = seconds % 86400;
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    char tmp[48];
    int n = snprintf(tmp, sizeof tmp, "\"%04d-%02u-%02uT%02lld:%02lld:%02lld.%09lldZ\"", y, m, d, rem / 3600,
                     rem / 60 % 60, rem % 60, nanos);
    return out_put(o, tmp, n);
}

/* JSON text validation for the MSG, strict and within what orjson reads to the same value. */
typedef struct {
    const unsigned char *p, *end;
} Json;

static int js_ws(Json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
    return j->p < j->end;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* At '"'; after it on success. *escaped: the string held a backslash. */
static int js_string(Json *j, int *escaped) {
    const unsigned char *p = j->p + 1;
    *escaped = 0;
    while (p < j->end) {
        unsigned char c = *p;
        if (c == '"') { j->p = p + 1; return 1; }
        if (c < 0x20) return 0;
        if (c == '\\') {
            *escaped = 1;
            if (p + 1 >= j->end) return 0;
            unsigned char e = p[1];
            if (e == 'u') {
                if (p + 6 > j->end) return 0;
                int v = 0;
                for (int i = 2; i < 6; i++) {
                    int h = hexval(p[i]);
                    if (h < 0) return 0;
                    v = v * 16 + h;
                }
                if (v >= 0xD800 && v <= 0xDFFF) return 0; /* surrogates: orjson's call */
                p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) return 0;
            p += 2;
            continue;
        }
        p++;
    }
    return 0;
}

static int js_value(Json *j, int depth);

static int js_number(Json *j) {
    const unsigned char *p = j->p;
    if (*p == '-') p++;
    const unsigned char *start = p;
    if (p >= j->end || *p < '0' || *p > '9') return 0;
    if (*p == '0') p++;
    else while (p < j->end && *p >= '0' && *p <= '9') p++;
    Py_ssize_t whole = p - start;
    if (p < j->end && *p == '.') {
        p++;
        const unsigned char *f = p;
        while (p < j->end && *p >= '0' && *p <= '9') p++;
        if (p == f) return 0;
    } else if (whole > 18) {
        return 0; /* past 64 bits orjson reads a float */
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) return 0; /* might be infinity to orjson */
    j->p = p;
    return 1;
}

static int js_literal(Json *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return 0;
    j->p += n;
    return 1;
}

static int js_value(Json *j, int depth) {
    int escaped;
    if (!js_ws(j) || depth > MAX_DEPTH) return 0;
    unsigned char c = *j->p;
    if (c == '"') return js_string(j, &escaped);
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        j->p++;
        if (!js_ws(j)) return 0;
        if (*j->p == close) { j->p++; return 1; }
        for (;;) {
            if (c == '{') {
                if (!js_ws(j) || *j->p != '"' || !js_string(j, &escaped) || !js_ws(j) || *j->p != ':') return 0;
                j->p++;
            }
            if (!js_value(j, depth + 1) || !js_ws(j)) return 0;
            if (*j->p == ',') { j->p++; continue; }
            if (*j->p == close) { j->p++; return 1; }
            return 0;
        }
    }
    if (c == 't') return js_literal(j, "true");
    if (c == 'f') return js_literal(j, "false");
    if (c == 'n') return js_literal(j, "null");
    return js_number(j);
}

enum { HAS_TIME = 1, HAS_LEVEL = 2, HAS_SYSLOG = 4 };

/* MSG as a JSON object: 1 and where its closing brace is, which of the keys the reference fills
 * in it has, and whether it has members; 0 when the reference might read it otherwise. */
static int js_object(const unsigned char *s, Py_ssize_t n, Py_ssize_t *close, int *keys, int *members) {
    Json j = {s + 1, s + n};
    int escaped;
    *keys = 0;
    *members = 0;
    if (!js_ws(&j)) return 0;
    if (*j.p != '}') {
        for (;;) {
            if (!js_ws(&j) || *j.p != '"') return 0;
            const unsigned char *key = j.p + 1;
            if (!js_string(&j, &escaped) || escaped) return 0; /* an escaped key might spell one of ours */
            Py_ssize_t klen = j.p - 1 - key;
            if (klen == 4 && !memcmp(key, "time", 4)) *keys |= HAS_TIME;
            if (klen == 5 && !memcmp(key, "level", 5)) *keys |= HAS_LEVEL;
            if (klen == 6 && !memcmp(key, "syslog", 6)) *keys |= HAS_SYSLOG;
            if (!js_ws(&j) || *j.p != ':') return 0;
            j.p++;
            if (!js_value(&j, 1) || !js_ws(&j)) return 0;
            *members = 1;
            if (*j.p == ',') { j.p++; continue; }
            if (*j.p == '}') break;
            return 0;
        }
    }
    *close = j.p - s;
    j.p++;
    return !js_ws(&j); /* only whitespace after it */
}

/* Python's str.isspace over ASCII, for msg.lstrip(). */
static int py_space(unsigned char c) { return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F); }

/* One frame's line into `o` and its time; UNSURE when the reference must read it. */
static int syslog_frame(const unsigned char *s, Py_ssize_t n, long long received, Out *o, long long *time_ns) {
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == 0)) n--;
    if (n < 4 || s[0] != '<') return UNSURE;
    int pri = 0, k = 1;
    while (k < n && k <= 3 && s[k] >= '0' && s[k] <= '9') pri = pri * 10 + (s[k++] - '0');
    if (k == 1 || k >= n || s[k] != '>' || pri > 191) return UNSURE;
    const unsigned char *p = s + k + 1, *end = s + n;
    int text = end - p >= 2 && p[0] == '1' && p[1] == ' ' ? utf8_valid(p, end - p) : 0;
    if (!text) return UNSURE;
    o->wide = text == 2;
    p += 2;
    /* stamp host app procid msgid: split on single spaces like str.split(" ") */
    const unsigned char *field[5];
    Py_ssize_t flen[5];
    for (int i = 0; i < 5; i++) {
        const unsigned char *sp = memchr(p, ' ', (size_t)(end - p));
        if (sp == NULL) {
            if (i < 4) return UNSURE; /* header incomplete: the reference says not syslog */
            field[i] = p; flen[i] = end - p; p = end;
            break;
        }
        field[i] = p; flen[i] = sp - p; p = sp + 1;
        if (i == 4) break;
    }
    const unsigned char *msg;
    Py_ssize_t mlen;
    if (p == end && (field[4] + flen[4] == end)) { msg = end; mlen = 0; } /* no SD: "-" */
    else {
        if (p < end && *p == '[') return UNSURE; /* structured data: the reference parses it */
        if (p < end && *p == '-') p++;
        if (p < end && *p == ' ') p++;
        if (end - p >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) p += 3;
        msg = p; mlen = end - p;
    }
    long long when = received;
    if (!(flen[0] == 1 && field[0][0] == '-')) {
        long long parsed;
        if (!rfc3339_ns(field[0], flen[0], &parsed)) return UNSURE;
        if (parsed) when = parsed;
    }
    *time_ns = when;
    const char *level = SEVERITY[pri & 7];
    Py_ssize_t close = 0;
    int keys = 0, members = 0, json = 0;
    if (mlen && (msg[0] == '{' || py_space(msg[0]) || msg[0] >= 0x80)) {
        if (msg[0] != '{') return UNSURE; /* msg.lstrip() might start with '{' */
        json = js_object(msg, mlen, &close, &keys, &members);
        if (!json || (keys & HAS_SYSLOG)) return UNSURE;
    }
    int sep = 1;
    if (json) {
        if (out_put(o, (const char *)msg, close) < 0) return FAILED;
        sep = members;
    } else {
        if (PUTS(o, "{\"msg\":") < 0 || out_string(o, msg, mlen) < 0) return FAILED;
    }
    if (!(keys & HAS_TIME)) {
        if ((sep ? PUTS(o, ",\"time\":") : PUTS(o, "\"time\":")) < 0 || out_rfc3339(o, when) < 0) return FAILED;
        sep = 1;
    }
    if (!(keys & HAS_LEVEL)) {
        if ((sep ? PUTS(o, ",\"level\":\"") : PUTS(o, "\"level\":\"")) < 0 ||
            out_put(o, level, (Py_ssize_t)strlen(level)) < 0 || PUTS(o, "\"") < 0)
            return FAILED;
        sep = 1;
    }
    if ((sep ? PUTS(o, ",\"syslog\":{\"facility\":") : PUTS(o, "\"syslog\":{\"facility\":")) < 0 ||
        out_int(o, pri >> 3) < 0 || PUTS(o, ",\"severity\":\"") < 0 ||
        out_put(o, level, (Py_ssize_t)strlen(level)) < 0 || PUTS(o, "\"") < 0)
        return FAILED;
    static const char *names[] = {",\"host\":", ",\"app\":", ",\"procid\":", ",\"msgid\":"};
    for (int i = 1; i < 5; i++) {
        if (flen[i] == 1 && field[i][0] == '-') continue;
        if (out_put(o, names[i - 1], (Py_ssize_t)strlen(names[i - 1])) < 0 || out_string(o, field[i], flen[i]) < 0)
            return FAILED;
    }
    if (PUTS(o, "}}") < 0) return FAILED;
    return OK;
}

PyDoc_STRVAR(syslog_lines_doc,
"syslog_lines(frames, first, received_ns, max_line_bytes) -> list\n\n"
"Per frame, its raw line (position `first` + its index) or None where the Python reference must\n"
"read it: not RFC 5424, structured data, an unusual time or MSG, or a line over the limit.");

static PyObject *syslog_lines(PyObject *self, PyObject *args) {
    PyObject *frames;
    long long first, received;
    Py_ssize_t max_line;
    if (!PyArg_ParseTuple(args, "O!LLn", &PyList_Type, &frames, &first, &received, &max_line)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(frames);
    PyObject *out = PyList_New(count);
    if (out == NULL) return NULL;
    Out o = {0};
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *frame = PyList_GET_ITEM(frames, i);
        PyObject *line = NULL;
        if (PyBytes_Check(frame)) {
            long long when = 0;
            o.len = 0;
            o.wide = 0;
            int rc = syslog_frame((const unsigned char *)PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame), received,
                                  &o, &when);
            if (rc == FAILED) {
                out_free(&o);
                Py_DECREF(out);
                return NULL;
            }
            if (rc == OK && o.len <= max_line) {
                line = raw_line(first + i, &o, when);
                if (line == NULL) {
                    out_free(&o);
                    Py_DECREF(out);
                    return NULL;
                }
            }
        }
        if (line == NULL) line = Py_NewRef(Py_None);
        PyList_SET_ITEM(out, i, line);
    }
    out_free(&o);
    return out;
}

/* ---------- syslog framing ---------- */

PyDoc_STRVAR(split_frames_doc,
"split_frames(buffer, max_bytes) -> (frames, consumed)\n\n"
"The whole frames at the start of `buffer` and how many bytes they took: FrameSplitter._split\n"
"(collectors/intake/syslog_frames.py), with the same ValueErrors.");

static PyObject *split_frames(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t max_bytes;
    if (!PyArg_ParseTuple(args, "y*n", &view, &max_bytes)) return NULL;
    const unsigned char *buf = view.buf;
    Py_ssize_t at = 0, end = view.len;
    PyObject *frames = PyList_New(0);
    const char *error = NULL;
    char message[160];
    while (frames != NULL && at < end) {
        unsigned char first = buf[at];
        Py_ssize_t start, stop, next;
        if (first == 10 || first == 13) { at++; continue; }
        if (first >= '0' && first <= '9') {
            Py_ssize_t limit = at + 11 < end ? at + 11 : end, space = -1;
            for (Py_ssize_t i = at; i < limit; i++)
                if (buf[i] == ' ') { space = i; break; }
            if (space < 0) {
                if (end - at > 10) error = "an octet-counted frame has no space after its length";
                break;
            }
            long long length = 0;
            for (Py_ssize_t i = at; i < space; i++) {
                if (buf[i] < '0' || buf[i] > '9') {
                    PyObject *digits = PyBytes_FromStringAndSize((const char *)buf + at, space - at < 20 ? space - at : 20);
                    if (digits != NULL) {
                        PyErr_Format(PyExc_ValueError, "octet count %R is not a number", digits);
                        Py_DECREF(digits);
                    }
                    Py_CLEAR(frames);
                    break;
                }
                length = length * 10 + (buf[i] - '0');
            }
            if (frames == NULL) break;
            if (length > max_bytes) {
                snprintf(message, sizeof message, "octet-counted frame of %lld bytes is over intake.max_line_bytes",
                         length);
                error = message;
                break;
            }
            start = space + 1;
            stop = next = start + (Py_ssize_t)length;
            if (stop > end) break;
        } else {
            const unsigned char *newline = memchr(buf + at, '\n', (size_t)(end - at));
            if (newline == NULL) {
                if (end - at > max_bytes) error = "a line is over intake.max_line_bytes without LF";
                break;
            }
            start = at;
            stop = next = newline - buf + 1;
        }
        PyObject *frame = PyBytes_FromStringAndSize((const char *)buf + start, stop - start);
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            Py_CLEAR(frames);
            break;
        }
        Py_DECREF(frame);
        at = next;
    }
    PyBuffer_Release(&view);
    if (error != NULL) {
        PyErr_SetString(PyExc_ValueError, error);
        Py_CLEAR(frames);
    }
    if (frames == NULL) return NULL;
    return Py_BuildValue("(Nn)", frames, at);
}

static PyMethodDef methods[] = {
    {"split_frames", split_frames, METH_VARARGS, split_frames_doc},
    {"forward_lines", forward_lines, METH_VARARGS, forward_lines_doc},
    {"syslog_lines", syslog_lines, METH_VARARGS, syslog_lines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_intakefast",
                                    "The intake's per-line work in C (see core/native.py).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__intakefast(void) {
    plain_init();
    return PyModule_Create(&module);
}
