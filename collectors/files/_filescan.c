/* The file collector's per-line work on CRI files in C: the bytes of one read -> raw lines.
 *
 * Why: a busy node's collector spends its CPU per line in Python: splitting the read into one bytes
 * object per line, splitting each at its spaces, parsing its timestamp, decoding it and building the
 * raw line (collectors/files/tailer.py, TailedFile._cri_lines: about 10% of the collector on 200 pods
 * x 20 lines/s, the largest entry). Here the lines of one read go from the buffer to raw lines in one
 * call, without an intermediate object per line.
 *
 * cri_lines only answers for the common line, and only when it is sure to give exactly what its
 * Python reference gives (TailedFile._emit through formats.parse_cri and core.models.make_raw_line):
 * a complete `F` line of stdout or stderr whose timestamp is `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (a
 * valid date from 1900 to 2261, not the epoch itself), whose content is valid UTF-8 within the line
 * limit and does not end in CR. It stops at the first line that is anything else (a partial `P`
 * line, another timestamp shape, a bad prefix, invalid UTF-8, an over-long line, CRLF) and returns
 * where that line begins: the caller runs the reference on that line (which also keeps the partial
 * lines and multiline records) and calls again after it.
 * tests/unit/collectors/files/test_filescan.py holds it equal to the reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define NS 1000000000LL

static int digits(const unsigned char *s, int n, int *value) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *value = v;
    return 1;
}

static int64_t days_from_civil(int y, int m, int d) { /* days since 1970-01-01, proleptic Gregorian */
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

static int month_days(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) return 29;
    return days[m - 1];
}

/* `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (30 bytes) -> UTC ns; 0 for any other shape or value (the caller
 * then takes the reference). A second of 60 counts as the next minute's 0, as the reference does. */
static int64_t stamp_ns(const unsigned char *s) {
    int year, month, day, hour, minute, second, frac;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[29] != 'Z')
        return 0;
    if (!digits(s, 4, &year) || !digits(s + 5, 2, &month) || !digits(s + 8, 2, &day) || !digits(s + 11, 2, &hour)
        || !digits(s + 14, 2, &minute) || !digits(s + 17, 2, &second) || !digits(s + 20, 9, &frac))
        return 0;
    if (year < 1900 || year > 2261 || month < 1 || month > 12 || day < 1 || day > month_days(year, month)
        || hour > 23 || minute > 59 || second > 60)
        return 0;
    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    return seconds * NS + frac;
}

/* Whether `line` (without its newline) is a common CRI line as far as its prefix and length tell:
 * `<30-byte stamp> stdout F <content>` or stderr (a 40-byte prefix), a timestamp that parses, content
 * within `room` bytes and not ending in CR. Its stream (stderr or not) and time go to the pointers. */
static int common_prefix(const unsigned char *line, Py_ssize_t len, Py_ssize_t room, int *is_stderr, int64_t *ns) {
    if (len < 40 || line[30] != ' ' || line[37] != ' ' || line[38] != 'F' || line[39] != ' ') return 0;
    if (memcmp(line + 31, "stdout", 6) == 0) {
        *is_stderr = 0;
    } else if (memcmp(line + 31, "stderr", 6) == 0) {
        *is_stderr = 1;
    } else {
        return 0;
    }
    Py_ssize_t size = len - 40;
    if (size > room || (size > 0 && line[len - 1] == '\r')) return 0;
    *ns = stamp_ns(line);
    return *ns != 0;
}

/* The line starting at buf[at] (before `stop`): its length without the newline if it is a common line
 * (common_prefix), else -1 (also when no newline ends it before `stop`). */
static Py_ssize_t next_common(const unsigned char *buf, Py_ssize_t at, Py_ssize_t stop, Py_ssize_t room,
                              int *is_stderr, int64_t *ns) {
    const unsigned char *newline = memchr(buf + at, '\n', (size_t)(stop - at));
    if (newline == NULL) return -1;
    Py_ssize_t len = newline - (buf + at);
    return common_prefix(buf + at, len, room, is_stderr, ns) ? len : -1;
}

PyDoc_STRVAR(cri_lines_doc,
             "cri_lines(buffer, start, stop, base, room, stdout, stderr, out) -> int\n\n"
             "Append to `out` the raw line [base + line start, text, stream, time ns, 0] of each common CRI\n"
             "line of buffer[start:stop] (`stop` just after a newline), in order; `stdout` and `stderr` are\n"
             "the stream names used. Returns where it stopped: `stop`, or the start of the first line that\n"
             "is not common, for the caller's reference path.");

static PyObject *cri_lines(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, stop, base, room;
    PyObject *out_stdout, *out_stderr, *out;
    if (!PyArg_ParseTuple(args, "y*nnnnUUO!", &view, &start, &stop, &base, &room, &out_stdout, &out_stderr,
                          &PyList_Type, &out))
        return NULL;
    if (start < 0 || stop > view.len || start > stop) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start and stop must lie within the buffer");
        return NULL;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t at = start;
    int failed = 0;
    while (at < stop) {
        const unsigned char *line = buf + at;
        int is_stderr;
        int64_t ns;
        Py_ssize_t len = next_common(buf, at, stop, room, &is_stderr, &ns);
        if (len < 0) break;
        PyObject *stream = is_stderr ? out_stderr : out_stdout;
        Py_ssize_t size = len - 40;
        PyObject *text = PyUnicode_DecodeUTF8((const char *)line + 40, size, NULL);
        if (text == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                failed = 1;
                break;
            }
            PyErr_Clear();
            break;
        }
        PyObject *entry = PyList_New(5);
        PyObject *position = PyLong_FromSsize_t(base + at);
        PyObject *time_ns = PyLong_FromLongLong(ns);
        PyObject *flags = PyLong_FromLong(0);
        if (entry == NULL || position == NULL || time_ns == NULL || flags == NULL) {
            Py_XDECREF(entry);
            Py_XDECREF(position);
            Py_XDECREF(time_ns);
            Py_XDECREF(flags);
            Py_DECREF(text);
            failed = 1;
            break;
        }
        Py_INCREF(stream);
        PyList_SET_ITEM(entry, 0, position);
        PyList_SET_ITEM(entry, 1, text);
        PyList_SET_ITEM(entry, 2, stream);
        PyList_SET_ITEM(entry, 3, time_ns);
        PyList_SET_ITEM(entry, 4, flags);
        int appended = PyList_Append(out, entry);
        Py_DECREF(entry);
        if (appended < 0) {
            failed = 1;
            break;
        }
        at += len + 1;
    }
    PyBuffer_Release(&view);
    if (failed) return NULL;
    return PyLong_FromSsize_t(at);
}

/* A growing output buffer for cri_wire. */
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

/* What a byte is to the escaper: 0 copied as it is, 1 escaped (`"`, `\`, control characters), 2 the
 * lead of a multi-byte UTF-8 sequence (or not UTF-8 at all). */
static unsigned char byte_class[256];

static void init_byte_class(void) {
    for (int c = 0; c < 256; c++) byte_class[c] = c < 0x20 || c == '"' || c == '\\' ? 1 : c >= 0x80 ? 2 : 0;
}

/* Whether any of the 8 bytes at `p` is not plain ASCII to copy: below 0x20, `"`, `\`, or 0x80 and up.
 * (Each test is the classic "has a zero byte" word trick; exact as a yes or no.) */
static inline int attention(const unsigned char *p) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t x, quote, backslash;
    memcpy(&x, p, 8);
    quote = x ^ (ones * '"');
    backslash = x ^ (ones * '\\');
    return (((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | x) & highs ? 1 : 0;
}

/* `text` (`n` bytes) as the body of a JSON string, escaped as orjson escapes it (`"`, `\`, and the
 * control characters: \b \t \n \f \r by name, the others as \u00XX; everything else as it is, UTF-8
 * included), appended to `out` (room for 6 bytes per input byte reserved by the caller). Returns the
 * number of characters (code points), or -1 if `text` is not valid UTF-8 as Python's strict decoder
 * has it (no overlong forms, no surrogates, nothing past U+10FFFF). */
static Py_ssize_t escape_utf8(const unsigned char *text, Py_ssize_t n, Out *out) {
    static const char hex[] = "0123456789abcdef";
    char *w = out->data + out->used;
    Py_ssize_t chars = 0, i = 0;
    while (i < n) {
        Py_ssize_t end = n;
        if (i + 8 <= n) {
            if (!attention(text + i)) { /* eight plain bytes at a time */
                memcpy(w, text + i, 8);
                w += 8;
                i += 8;
                chars += 8;
                continue;
            }
            end = i + 8; /* byte by byte through these eight (a sequence may reach past them) */
        }
        while (i < end) {
            unsigned char c = text[i];
            if (byte_class[c] == 0) {
                *w++ = (char)c;
                i++;
            } else if (c >= 0x80) {
                int more;
                unsigned char low = 0x80, high = 0xBF;
                if (c >= 0xC2 && c <= 0xDF) {
                    more = 1;
                } else if (c >= 0xE0 && c <= 0xEF) {
                    more = 2;
                    if (c == 0xE0) low = 0xA0;
                    if (c == 0xED) high = 0x9F;
                } else if (c >= 0xF0 && c <= 0xF4) {
                    more = 3;
                    if (c == 0xF0) low = 0x90;
                    if (c == 0xF4) high = 0x8F;
                } else {
                    return -1;
                }
                if (i + more >= n) return -1; /* cut short */
                if (text[i + 1] < low || text[i + 1] > high) return -1;
                for (int k = 2; k <= more; k++)
                    if (text[i + k] < 0x80 || text[i + k] > 0xBF) return -1;
                memcpy(w, text + i, (size_t)more + 1);
                w += more + 1;
                i += more + 1;
            } else {
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
                i++;
            }
            chars++;
        }
    }
    out->used = w - out->data;
    return chars;
}

/* `value` in decimal, as orjson writes an integer, appended to `out` (room reserved by the caller). */
static void put_int(Out *out, long long value) {
    char digits[24];
    int n = 0;
    unsigned long long v = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (value < 0) out->data[out->used++] = '-';
    while (n) out->data[out->used++] = digits[--n];
}

static void put(Out *out, const char *text, Py_ssize_t n) {
    memcpy(out->data + out->used, text, (size_t)n);
    out->used += n;
}

PyDoc_STRVAR(cri_wire_doc,
             "cri_wire(buffer, start, stop, base, room, max_lines, max_bytes) -> (at, data, count, size)\n\n"
             "The common CRI lines of buffer[start:stop] that cri_lines would give, already in the wire\n"
             "encoding: `data` is their raw line entries as orjson writes them, joined by commas (orjson's\n"
             "encoding of the list of entries without its brackets), `count` how many, `size` the sum of their\n"
             "texts' lengths in characters. It stops where cri_lines stops, and before a line that would go\n"
             "past one chunk (the collector's rule: at most `max_lines` lines, and no line after the text plus 48\n"
             "bytes per line reached `max_bytes`). `at` is where it stopped.");

static PyObject *cri_wire(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, stop, base, room, max_lines, max_bytes;
    if (!PyArg_ParseTuple(args, "y*nnnnnn", &view, &start, &stop, &base, &room, &max_lines, &max_bytes)) return NULL;
    if (start < 0 || stop > view.len || start > stop) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start and stop must lie within the buffer");
        return NULL;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t at = start, count = 0, chars = 0, budget = 0;
    char stack[STACK_OUT];
    Out out = {stack, 0, STACK_OUT, NULL};
    int failed = 0;
    while (at < stop && count < max_lines && (count == 0 || budget < max_bytes)) {
        const unsigned char *line = buf + at;
        int is_stderr;
        int64_t ns;
        Py_ssize_t len = next_common(buf, at, stop, room, &is_stderr, &ns);
        if (len < 0) break;
        Py_ssize_t size = len - 40;
        /* `,[<position>,"<text>","stdout",<ns>,0]`: 1 + 1 + 20 + 2 + 6 * size + 11 + 20 + 3 bytes at most */
        if (!reserve(&out, 6 * size + 64)) {
            failed = 1;
            break;
        }
        Py_ssize_t mark = out.used;
        if (count)
            put(&out, ",[", 2);
        else
            put(&out, "[", 1);
        put_int(&out, (long long)(base + at));
        put(&out, ",\"", 2);
        Py_ssize_t n = escape_utf8(line + 40, size, &out);
        if (n < 0) {
            out.used = mark; /* not UTF-8: the reference's line */
            break;
        }
        put(&out, is_stderr ? "\",\"stderr\"," : "\",\"stdout\",", 11);
        put_int(&out, (long long)ns);
        put(&out, ",0]", 3);
        count++;
        chars += n;
        budget += n + 48;
        at += len + 1;
    }
    PyBuffer_Release(&view);
    if (failed) {
        PyMem_Free(out.heap);
        return PyErr_NoMemory();
    }
    PyObject *data = PyBytes_FromStringAndSize(out.data, out.used);
    PyMem_Free(out.heap);
    if (data == NULL) return NULL;
    return Py_BuildValue("nNnn", at, data, count, chars);
}

static PyMethodDef methods[] = {
    {"cri_lines", cri_lines, METH_VARARGS, cri_lines_doc},
    {"cri_wire", cri_wire, METH_VARARGS, cri_wire_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_filescan",
                                    "The file collector's per-line work on CRI files in C (see core/native.py).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__filescan(void) {
    init_byte_class();
    return PyModule_Create(&module);
}
