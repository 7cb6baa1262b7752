/* logfmt's common case in C: a line's pairs (`parse_logfmt`'s rules, agents/parsers/logfmt.py) and its record's
 * JSON text as orjson writes it, for the parse stage's scan (agents/_linescan.c, which includes this through
 * agents/_rawsplit.h): the raw-record read of agents/_rawsplit.h and `logfmt_json` below use it. Every
 * function is static. The lines taken are printable ASCII
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

/* Loads `renamed` (a tuple of at most MAX_RENAMED str) into the record's renamed keys; -1 with an error set. */
static int load_renamed(Record *r, PyObject *renamed) {
    if (!PyTuple_Check(renamed) || PyTuple_GET_SIZE(renamed) > MAX_RENAMED) {
        PyErr_Format(PyExc_ValueError, "renamed must be a tuple of at most %d str", MAX_RENAMED);
        return -1;
    }
    r->renamed_count = (int)PyTuple_GET_SIZE(renamed);
    for (int i = 0; i < r->renamed_count; i++) { /* the tuple holds them while the call runs */
        PyObject *name = PyTuple_GET_ITEM(renamed, i);
        if (!PyUnicode_Check(name) || !(r->renamed[i] = PyUnicode_AsUTF8AndSize(name, &r->renamed_len[i]))) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "renamed keys must be str");
            return -1;
        }
    }
    return 0;
}

/* ---- Decoded raw lines: logfmt lines rewritten as the JSON text their parsed record is written as ----------
 *
 * A source parsed as logfmt took every line through Python: the logfmt split, a dict, orjson.dumps, and
 * the JSON reference's field reads (agents/parsers/chain.py), about 5 us a line against the JSON path's
 * 0.5 us in C. The record a logfmt line gives is written as JSON text anyway (what sinks receive); this
 * writes that text from the line directly, byte for byte what `orjson.dumps(parse_logfmt(line))` gives,
 * and the parse stage's C scan (`split`) then reads it as it reads any JSON line (a raw record read from
 * its bytes takes the reader above in agents/_rawsplit.h instead).
 *
 * logfmt_json(lines, json_first, renamed) -> list | None: `lines` (raw lines [position, text, stream,
 * source_ns, flags]) with each line this pass is sure of replaced by a new raw line whose text is that JSON;
 * every other line is the same object, for the parser chain to take in Python. None when, without
 * `json_first`, a line it leaves starts with "{": the C scan would read that line as JSON, where the chain
 * tries logfmt first. Sure means: flags 0, the line (less the trailing "\r", "\n" and " " the chain strips)
 * printable ASCII with no backslash (so no escape and no tab: `parse_logfmt`'s common case), logfmt by
 * `parse_logfmt`'s rules, no key twice, at most MAX_PAIRS pairs, no key among `renamed` (the canonical names
 * the chain renames to the configured first alias, which moves that pair to the record's end), and with
 * `json_first` (the chain tries JSON first) not starting with "{". The Python reference is
 * `orjson.dumps(parse_logfmt(text))`; tests/unit/agents/parsers/test_logfmt_native.py compares the two.
 */

/* The JSON text of a record, as orjson writes it (no escapes are needed: see the top). */
static PyObject *record_json(const Record *r) {
    PyObject *text = PyUnicode_New(record_json_len(r), 127);
    if (!text) return NULL;
    record_json_write(r, (char *)PyUnicode_1BYTE_DATA(text));
    return text;
}

/* The JSON text of a raw line this pass is sure of; NULL with no error set: leave the line to Python. */
static PyObject *line_json(PyObject *raw, int json_first, Record *r) {
    if (!PyList_CheckExact(raw) || PyList_GET_SIZE(raw) != 5) return NULL;
    PyObject *text = PyList_GET_ITEM(raw, 1), *flags = PyList_GET_ITEM(raw, 4);
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text) || !PyLong_CheckExact(flags)) return NULL;
    int overflow;
    long long flag_bits = PyLong_AsLongLongAndOverflow(flags, &overflow);
    if (flag_bits != 0 || overflow) {
        PyErr_Clear();
        return NULL;
    }
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = logfmt_common(s, PyUnicode_GET_LENGTH(text));
    if (n < 0 || (json_first && s[0] == '{')) return NULL;
    if (!read_record(r, s, n)) return NULL;
    return record_json(r);
}

/* Whether a raw line's text starts with "{" (what the JSON scan may take). */
static int starts_object(PyObject *raw) {
    if (!PyList_CheckExact(raw) || PyList_GET_SIZE(raw) != 5) return 0;
    PyObject *text = PyList_GET_ITEM(raw, 1);
    return PyUnicode_CheckExact(text) && PyUnicode_GET_LENGTH(text) > 0 && PyUnicode_READ_CHAR(text, 0) == '{';
}

PyDoc_STRVAR(logfmt_json_doc,
"logfmt_json(lines, json_first, renamed) -> list | None\n\n"
"`lines` with each raw line whose text is common logfmt replaced by a raw line whose text is its record's\n"
"JSON (orjson.dumps(parse_logfmt(text)) exactly); other lines are the same objects. `json_first`: the\n"
"chain tries JSON before logfmt, so a line starting with '{' is left alone; a line with a key in the tuple\n"
"`renamed` (at most 8 names) is left alone. None when, without\n"
"`json_first`, a line left alone starts with '{' (the JSON scan would take it): parse the chunk in Python.");

static PyObject *logfmt_json(PyObject *self, PyObject *args) {
    PyObject *lines, *renamed;
    int json_first;
    if (!PyArg_ParseTuple(args, "O!pO:logfmt_json", &PyList_Type, &lines, &json_first, &renamed)) return NULL;
    Record *record = PyMem_Malloc(sizeof *record);
    if (!record) return PyErr_NoMemory();
    if (load_renamed(record, renamed) < 0) {
        PyMem_Free(record);
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(lines);
    PyObject *out = PyList_New(count);
    if (!out) {
        PyMem_Free(record);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *raw = PyList_GET_ITEM(lines, i);
        PyObject *json = line_json(raw, json_first, record);
        if (!json) {
            if (PyErr_Occurred()) goto fail;
            if (!json_first && starts_object(raw)) {
                PyMem_Free(record);
                Py_DECREF(out);
                Py_RETURN_NONE;
            }
            Py_INCREF(raw);
            PyList_SET_ITEM(out, i, raw);
            continue;
        }
        PyObject *line = PyList_New(5);
        if (!line) {
            Py_DECREF(json);
            goto fail;
        }
        for (Py_ssize_t k = 0; k < 5; k++) {
            PyObject *item = k == 1 ? json : PyList_GET_ITEM(raw, k);
            if (k != 1) Py_INCREF(item);
            PyList_SET_ITEM(line, k, item);
        }
        PyList_SET_ITEM(out, i, line);
    }
    PyMem_Free(record);
    return out;
fail:
    PyMem_Free(record);
    Py_DECREF(out);
    return NULL;
}

#endif
