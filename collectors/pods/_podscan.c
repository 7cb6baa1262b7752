/* The pod collector's per-line work in C: a read block of kubelet log lines -> raw line entries.
 *
 * Why: with `timestamps=true` every line of a followed log is `<RFC3339Nano, UTC> <content>\n`, and
 * turning a block of them into `[position, text, "", kubelet_ts_ns, 0]` entries cost about 0.9 us
 * per line in Python (collectors/pods/blockscan.py, the reference), a quarter of the collector's CPU.
 *
 * scan(block, clock_us, index, last_position, skip_before_ns) answers only when it is sure to give
 * the reference's result: every line matches `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z <content>` with a valid
 * date at or after 1970 and before 2262 (int64 nanoseconds), the content is valid UTF-8, and the
 * block ends with a newline. Otherwise it returns None and the caller runs the reference.
 * The result is (entries, content bytes, duplicates, clock_us, index, last_position, last_ts_ns or
 * None when no line was accepted): the cursor state of collectors/pods/positions.py, advanced.
 * scan_wire writes the lines straight into their wire encoding; dechunk takes a chunked HTTP/1.1 body out
 * of its chunks; dechunk_scan does both for a polled stream's usual tick (polled_log.py, streamer.py).
 * tests/unit/collectors/pods/test_podscan.py holds them equal to the reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../../core/_wirelines.h"

#define NS 1000000000LL
#define PER_US 1000

static const int64_t SCALE[10] = {1000000000LL, 100000000LL, 10000000LL, 1000000LL, 100000LL,
                                  10000LL, 1000LL, 100LL, 10LL, 1LL};

static int digits(const unsigned char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil) */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return days[m - 1];
}

/* `YYYY-MM-DDTHH:MM:SS` -> seconds since the epoch; -1 if not a valid date from 1970 to 2261 */
static int64_t second_of(const unsigned char *p) {
    int y, mo, d, h, mi, s;
    if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':') return -1;
    if (digits(p, 4, &y) || digits(p + 5, 2, &mo) || digits(p + 8, 2, &d) || digits(p + 11, 2, &h)
        || digits(p + 14, 2, &mi) || digits(p + 17, 2, &s))
        return -1;
    if (y < 1970 || y > 2261 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59
        || s > 59)
        return -1;
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

/* The line at `line` (`n` bytes before its newline) as a kubelet line: its timestamp (ns) in `ts` and
 * where its content starts; -1 when the scan does not take it (the reference then runs). The second
 * of the previous line (`*head_seen`, `*base`) is reused when the line starts with the same one. */
static Py_ssize_t kubelet_line(const unsigned char *line, Py_ssize_t n, const unsigned char **head_seen,
                               int64_t *base, int64_t *ts) {
    if (n < 21) return -1;
    if (*head_seen == NULL || memcmp(*head_seen, line, 19) != 0) {
        *base = second_of(line);
        if (*base < 0) return -1;
        *head_seen = line;
    }
    Py_ssize_t at = 19;
    int64_t frac = 0;
    if (line[at] == '.') {
        Py_ssize_t start = ++at;
        while (at < n && at - start < 10 && line[at] >= '0' && line[at] <= '9') at++;
        Py_ssize_t count = at - start;
        if (count < 1 || count > 9) return -1;
        for (Py_ssize_t i = start; i < at; i++) frac = frac * 10 + (line[i] - '0');
        frac *= SCALE[count];
    }
    if (at + 2 > n || line[at] != 'Z' || line[at + 1] != ' ') return -1;
    if (*base > (INT64_MAX - NS) / NS) return -1;
    *ts = *base * NS + frac;
    return at + 2;
}

/* The position of a line stamped `ts` (collectors/pods/positions.py): the cursor's microsecond clock
 * and index within it, advanced. */
static long long next_position(int64_t ts, long long *clock, long long *index) {
    int64_t us = ts / 1000;
    if (us > *clock) {
        *clock = us;
        *index = 0;
    } else {
        (*index)++;
        if (*index >= PER_US) { /* more than 1000 lines in one microsecond: borrow the next */
            (*clock)++;
            *index = 0;
        }
    }
    return *clock * PER_US + *index;
}

/* Where the scans are in a block: the next line's offset, the second last parsed, the cursor's clock. */
typedef struct {
    const unsigned char *buf;
    Py_ssize_t len, pos;
    const unsigned char *head_seen;
    int64_t base;
    long long clock, index;
    /* the line walk_next read last: its start, length, timestamp and position */
    const unsigned char *line;
    Py_ssize_t n;
    int64_t ts;
    long long position;
} Walk;

/* Read the walk's next line into `w->line` .. `w->position`: the offset of its content, or -1 when it is
 * not a kubelet line the scans take. */
static Py_ssize_t walk_next(Walk *w) {
    w->line = w->buf + w->pos;
    const unsigned char *nl = memchr(w->line, '\n', (size_t)(w->len - w->pos));
    w->n = nl - w->line;
    Py_ssize_t at = kubelet_line(w->line, w->n, &w->head_seen, &w->base, &w->ts);
    if (at < 0) return -1;
    w->position = next_position(w->ts, &w->clock, &w->index);
    w->pos += w->n + 1;
    return at;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    long long clock, index, last_position, skip;
    if (!PyArg_ParseTuple(args, "y*LLLL", &view, &clock, &index, &last_position, &skip)) return NULL;
    Walk w = {view.buf, view.len, 0, NULL, 0, clock, index, NULL, 0, 0, 0};
    PyObject *entries = NULL, *empty = NULL, *zero = NULL, *result = NULL;
    long long size = 0, duplicates = 0, last_ts = -1;
    if (w.len == 0 || w.buf[w.len - 1] != '\n') goto none;
    entries = PyList_New(0);
    empty = PyUnicode_FromStringAndSize("", 0);
    zero = PyLong_FromLong(0);
    if (entries == NULL || empty == NULL || zero == NULL) goto error;
    while (w.pos < w.len) {
        Py_ssize_t at = walk_next(&w);
        if (at < 0) goto none;
        const unsigned char *line = w.line;
        Py_ssize_t n = w.n;
        int64_t ts = w.ts;
        long long position = w.position;
        if (position <= last_position || ts < skip) {
            /* the reference checks the UTF-8 of the whole block, dropped lines included */
            PyObject *check = PyUnicode_DecodeUTF8((const char *)line + at, n - at, "strict");
            if (check == NULL) goto none_if_decode;
            Py_DECREF(check);
            duplicates++;
            continue;
        }
        PyObject *text = PyUnicode_DecodeUTF8((const char *)line + at, n - at, "strict");
        if (text == NULL) goto none_if_decode;
        PyObject *entry = PyList_New(5);
        PyObject *p = PyLong_FromLongLong(position), *t = PyLong_FromLongLong(ts);
        if (entry == NULL || p == NULL || t == NULL) {
            Py_XDECREF(entry);
            Py_XDECREF(p);
            Py_XDECREF(t);
            Py_DECREF(text);
            goto error;
        }
        Py_INCREF(empty);
        Py_INCREF(zero);
        PyList_SET_ITEM(entry, 0, p);
        PyList_SET_ITEM(entry, 1, text);
        PyList_SET_ITEM(entry, 2, empty);
        PyList_SET_ITEM(entry, 3, t);
        PyList_SET_ITEM(entry, 4, zero);
        int failed = PyList_Append(entries, entry);
        Py_DECREF(entry);
        if (failed) goto error;
        last_position = position;
        last_ts = ts;
        size += n - at;
    }
    if (last_ts >= 0)
        result = Py_BuildValue("(OLLLLLL)", entries, size, duplicates, w.clock, w.index, last_position, last_ts);
    else
        result = Py_BuildValue("(OLLLLLO)", entries, size, duplicates, w.clock, w.index, last_position, Py_None);
    goto done;
none_if_decode:
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) goto error;
    PyErr_Clear();
none:
    result = Py_NewRef(Py_None);
    goto done;
error:
    result = NULL;
done:
    Py_XDECREF(entries);
    Py_XDECREF(empty);
    Py_XDECREF(zero);
    PyBuffer_Release(&view);
    return result;
}

/* scan_wire(block, clock_us, index, last_position, skip_before_ns) -> (data, count, chars, size, duplicates,
 * clock_us, index, last_position, last_ts_ns | None) or None
 *
 * `scan`, with the entries written in their wire encoding instead (core/_wirelines.h): `data` is them as
 * orjson writes them, joined by commas, `chars` the sum of their texts' lengths in characters, `size` in
 * UTF-8 bytes (scan's). No
 * object per line: a record of them costs no encoding of its lines either (core/models.py, WireLines).
 * None exactly when `scan` gives None. */
/* scan_wire's work on `len` bytes at `buf`: its result, None, or NULL with an error set. */
static PyObject *wire_block(const unsigned char *buf, Py_ssize_t len, long long clock, long long index,
                            long long last_position, long long skip) {
    Walk w = {buf, len, 0, NULL, 0, clock, index, NULL, 0, 0, 0};
    Py_ssize_t count = 0, chars = 0, size = 0;
    long long duplicates = 0, last_ts = -1;
    char stack[STACK_OUT];
    Out out = {stack, 0, STACK_OUT, NULL};
    PyObject *result = NULL;
    if (w.len == 0 || w.buf[w.len - 1] != '\n') goto none;
    while (w.pos < w.len) {
        Py_ssize_t at = walk_next(&w);
        if (at < 0) goto none;
        Py_ssize_t text = w.n - at;
        /* `,[<position>,"<text>","",<ts>,0]`: 2 + 20 + 2 + 6 * text + 4 + 20 + 3 bytes at most */
        if (!reserve(&out, 6 * text + 64)) {
            PyErr_NoMemory();
            goto done;
        }
        Py_ssize_t mark = out.used;
        if (w.position <= last_position || w.ts < skip) {
            /* dropped, but the reference checks the UTF-8 of the whole block: escaped and taken back */
            Py_ssize_t checked = escape_utf8(w.line + at, text, &out);
            out.used = mark;
            if (checked < 0) goto none;
            duplicates++;
            continue;
        }
        if (count)
            put(&out, ",[", 2);
        else
            put(&out, "[", 1);
        put_int(&out, w.position);
        put(&out, ",\"", 2);
        Py_ssize_t n_chars = escape_utf8(w.line + at, text, &out);
        if (n_chars < 0) goto none;
        put(&out, "\",\"\",", 5);
        put_int(&out, (long long)w.ts);
        put(&out, ",0]", 3);
        count++;
        chars += n_chars;
        size += text;
        last_position = w.position;
        last_ts = w.ts;
    }
    PyObject *data = PyBytes_FromStringAndSize(out.used ? out.data : "", out.used);  /* (every line a duplicate) */
    if (data == NULL) goto done;
    if (last_ts >= 0)
        result = Py_BuildValue("(NnnnLLLLL)", data, count, chars, size, duplicates, w.clock, w.index,
                               last_position, last_ts);
    else
        result = Py_BuildValue("(NnnnLLLLO)", data, count, chars, size, duplicates, w.clock, w.index,
                               last_position, Py_None);
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(out.heap);
    return result;
}

static PyObject *scan_wire(PyObject *self, PyObject *args) {
    Py_buffer view;
    long long clock, index, last_position, skip;
    if (!PyArg_ParseTuple(args, "y*LLLL", &view, &clock, &index, &last_position, &skip)) return NULL;
    PyObject *result = wire_block(view.buf, view.len, clock, index, last_position, skip);
    PyBuffer_Release(&view);
    return result;
}

/* dechunk(data, left) -> (body, consumed, left, done) or None
 *
 * The chunked HTTP/1.1 body in `data` (bytes or bytearray) from the decoder state `left` (> 0: bytes left
 * of the chunk being read, -1: its closing CRLF comes next, 0: a chunk-size line comes next), as
 * collectors/pods/polled_log.py's BodyDecoder._dechunk, its reference: the API server relays every write
 * of a pod as a chunk of its own, so a tick's read holds dozens of chunks. `consumed` bytes of `data` are
 * used; `done` once the last (zero-size) chunk's line is read. None when anything is not well formed
 * (or a size line is longer than 1024 bytes, or a size over 2^60): the reference then says what. */
/* Where the body's pieces are in chunked data: (offset, length) pairs, from the decoder state `left`. */
typedef struct {
    Py_ssize_t *spans;  /* 2 * count offsets and lengths, on the heap (the caller frees) */
    Py_ssize_t count, capacity, total, position;  /* pieces, room, body bytes, data used */
    long long left;
    int done;
} Chunks;

/* Fill `c` (left set by the caller) from data[0..size): 1, or 0 when the reference must run, -1 out of memory. */
static int chunk_spans(const unsigned char *data, Py_ssize_t size, Chunks *c) {
    long long left = c->left;
    Py_ssize_t position = 0;
    c->capacity = 64;
    c->count = c->total = 0;
    c->done = 0;
    c->spans = PyMem_Malloc(sizeof(Py_ssize_t) * 2 * c->capacity);
    if (c->spans == NULL) return -1;
    while (!c->done) {
        if (left > 0) {
            Py_ssize_t take = size - position < left ? size - position : (Py_ssize_t)left;
            if (take <= 0) break;
            if (c->count == c->capacity) {
                c->capacity *= 2;
                Py_ssize_t *grown = PyMem_Realloc(c->spans, sizeof(Py_ssize_t) * 2 * c->capacity);
                if (grown == NULL) return -1;
                c->spans = grown;
            }
            c->spans[2 * c->count] = position;
            c->spans[2 * c->count + 1] = take;
            c->count++;
            c->total += take;
            position += take;
            left -= take;
            if (left == 0) left = -1;
            continue;
        }
        const unsigned char *eol = size - position >= 2 ? memchr(data + position, '\r', size - position) : NULL;
        while (eol != NULL && (eol + 1 >= data + size || eol[1] != '\n')) {
            if (eol + 1 >= data + size) { eol = NULL; break; }
            eol = memchr(eol + 1, '\r', data + size - eol - 1);
        }
        if (eol == NULL) {
            if (size - position > 1024) return 0;
            break;
        }
        Py_ssize_t line_end = eol - data;
        if (left == -1) {
            if (line_end != position) return 0;
            position = line_end + 2;
            left = 0;
            continue;
        }
        if (line_end - position > 1024) return 0;
        long long chunk = 0;
        Py_ssize_t i = position, hex = 0;
        while (i < line_end && data[i] == ' ') i++;
        for (; i < line_end; i++, hex++) {
            unsigned char ch = data[i];
            int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
            if (v < 0) break;
            if (hex >= 15) return 0;
            chunk = chunk * 16 + v;
        }
        while (i < line_end && (data[i] == ' ' || data[i] == '\t')) i++;
        if (hex == 0 || (i < line_end && data[i] != ';')) return 0;
        position = line_end + 2;
        if (chunk == 0) { c->done = 1; break; }
        left = chunk;
    }
    c->position = position;
    c->left = left;
    return 1;
}

/* Copy the pieces `c` found in `data` to `out` (c->total bytes). */
static void join_spans(const unsigned char *data, const Chunks *c, char *out) {
    for (Py_ssize_t k = 0; k < c->count; k++) {
        memcpy(out, data + c->spans[2 * k], c->spans[2 * k + 1]);
        out += c->spans[2 * k + 1];
    }
}

static PyObject *dechunk(PyObject *self, PyObject *args) {
    Py_buffer view;
    Chunks c = {NULL, 0, 0, 0, 0, 0, 0};
    if (!PyArg_ParseTuple(args, "y*L", &view, &c.left)) return NULL;
    PyObject *result = NULL;
    int found = chunk_spans(view.buf, view.len, &c);
    if (found < 0) {
        PyErr_NoMemory();
    } else if (found == 0) {
        result = Py_NewRef(Py_None);
    } else {
        PyObject *body = PyBytes_FromStringAndSize(NULL, c.total);
        if (body != NULL) {
            join_spans(view.buf, &c, PyBytes_AS_STRING(body));
            result = Py_BuildValue("NnLO", body, c.position, c.left, c.done ? Py_True : Py_False);
        }
    }
    PyMem_Free(c.spans);
    PyBuffer_Release(&view);
    return result;
}

/* dechunk_scan(data, left, clock_us, index, last_position, skip_before_ns, max_body) -> (scan_wire's result,
 * the decoder's new `left`) or None
 *
 * A polled log's usual tick in one call: `dechunk` of all of `data` (nothing held from before), then
 * `scan_wire` of the body. It answers only when that is all there is to it: `data` is well-formed
 * chunks to its last byte (a size line cut off at the end, or the last chunk, is for the reference), the
 * body is 1 to `max_body` bytes of whole lines (it ends with a newline) and scan_wire answers for them.
 * Otherwise None, with nothing changed: the caller takes `data` through BodyDecoder and the line splitter. */
static PyObject *dechunk_scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    long long clock, index, last_position, skip;
    Py_ssize_t max_body;
    Chunks c = {NULL, 0, 0, 0, 0, 0, 0};
    if (!PyArg_ParseTuple(args, "y*LLLLLn", &view, &c.left, &clock, &index, &last_position, &skip, &max_body))
        return NULL;
    PyObject *result = NULL, *scanned = NULL;
    char stack[STACK_OUT];
    char *body = stack;
    int found = chunk_spans(view.buf, view.len, &c);
    if (found < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (found == 0 || c.done || c.position != view.len || c.total == 0 || c.total > max_body) goto none;
    if (c.total > STACK_OUT && (body = PyMem_Malloc(c.total)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    join_spans(view.buf, &c, body);
    scanned = wire_block((const unsigned char *)body, c.total, clock, index, last_position, skip);
    if (scanned == NULL) goto done;
    if (scanned == Py_None) goto none;
    result = Py_BuildValue("(OL)", scanned, c.left);
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(scanned);
    if (body != stack) PyMem_Free(body);
    PyMem_Free(c.spans);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_wire", scan_wire, METH_VARARGS,
     "scan_wire(block, clock_us, index, last_position, skip_before_ns) -> (data, count, chars, size, duplicates, "
     "clock_us, index, last_position, last_ts_ns | None) or None when the Python reference must run"},
    {"dechunk_scan", dechunk_scan, METH_VARARGS,
     "dechunk_scan(data, left, clock_us, index, last_position, skip_before_ns, max_body) -> (scan_wire's result, "
     "the decoder's new left) or None when the usual steps must run"},
    {"dechunk", dechunk, METH_VARARGS,
     "dechunk(data, left) -> (body, consumed, left, done) or None when the Python reference must run"},
    {"scan", scan, METH_VARARGS,
     "scan(block, clock_us, index, last_position, skip_before_ns) -> (entries, size, duplicates, clock_us, "
     "index, last_position, last_ts_ns | None) or None when the Python reference must run"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_podscan",
                                    "A block of kubelet log lines to raw line entries.", -1, methods};

PyMODINIT_FUNC PyInit__podscan(void) {
    return PyModule_Create(&module);
}
