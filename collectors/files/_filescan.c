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
#include <errno.h>
#include <unistd.h>

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

#include "../../core/_wirelines.h"

PyDoc_STRVAR(cri_wire_doc,
             "cri_wire(buffer, start, stop, base, room, max_lines, max_bytes) -> (at, data, count, size)\n\n"
             "The common CRI lines of buffer[start:stop] that cri_lines would give, already in the wire\n"
             "encoding: `data` is their raw line entries as orjson writes them, joined by commas (orjson's\n"
             "encoding of the list of entries without its brackets), `count` how many, `size` the sum of their\n"
             "texts' lengths in characters. It stops where cri_lines stops, and before a line that would go\n"
             "past one chunk (the collector's rule: at most `max_lines` lines, and no line after the text plus 48\n"
             "bytes per line reached `max_bytes`). `at` is where it stopped.");

/* cri_wire's loop: the common lines of buf[start:stop] appended to `out` in the wire encoding (`*count` lines,
 * `*chars` characters of text); returns where it stopped. `*failed` is set when memory ran out. */
static Py_ssize_t wire_scan(const unsigned char *buf, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t base,
                            Py_ssize_t room, Py_ssize_t max_lines, Py_ssize_t max_bytes, Out *out,
                            Py_ssize_t *count_out, Py_ssize_t *chars_out, int *failed) {
    Py_ssize_t at = start, count = 0, chars = 0, budget = 0;
    while (at < stop && count < max_lines && (count == 0 || budget < max_bytes)) {
        const unsigned char *line = buf + at;
        int is_stderr;
        int64_t ns;
        Py_ssize_t len = next_common(buf, at, stop, room, &is_stderr, &ns);
        if (len < 0) break;
        Py_ssize_t size = len - 40;
        /* `,[<position>,"<text>","stdout",<ns>,0]`: 1 + 1 + 20 + 2 + 6 * size + 11 + 20 + 3 bytes at most */
        if (!reserve(out, 6 * size + 64)) {
            *failed = 1;
            break;
        }
        Py_ssize_t mark = out->used;
        if (count)
            put(out, ",[", 2);
        else
            put(out, "[", 1);
        put_int(out, (long long)(base + at));
        put(out, ",\"", 2);
        Py_ssize_t n = escape_utf8(line + 40, size, out);
        if (n < 0) {
            out->used = mark; /* not UTF-8: the reference's line */
            break;
        }
        put(out, is_stderr ? "\",\"stderr\"," : "\",\"stdout\",", 11);
        put_int(out, (long long)ns);
        put(out, ",0]", 3);
        count++;
        chars += n;
        budget += n + 48;
        at += len + 1;
    }
    *count_out = count;
    *chars_out = chars;
    return at;
}

static PyObject *cri_wire(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, stop, base, room, max_lines, max_bytes;
    if (!PyArg_ParseTuple(args, "y*nnnnnn", &view, &start, &stop, &base, &room, &max_lines, &max_bytes)) return NULL;
    if (start < 0 || stop > view.len || start > stop) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start and stop must lie within the buffer");
        return NULL;
    }
    char stack[STACK_OUT];
    Out out = {stack, 0, STACK_OUT, NULL};
    Py_ssize_t count, chars;
    int failed = 0;
    Py_ssize_t at = wire_scan(view.buf, start, stop, base, room, max_lines, max_bytes, &out, &count, &chars, &failed);
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

PyDoc_STRVAR(visit_doc,
             "visit(fd, offset, tail, room, max_lines, max_bytes, limit, tail_bytes) -> int | tuple | None\n\n"
             "A visit of a followed CRI file read up to `offset`, whose last bytes read are `tail` (non-empty), in\n"
             "one call: what TailedFile.check_truncation and then TailedFile.take_prefetched do in the usual case.\n"
             "It takes the file's size (lseek); when it is `offset`, returns it (nothing new). When the file grew\n"
             "by at most `limit` bytes, it reads `tail` and the new bytes (one pread); if `tail` is still there\n"
             "and the new bytes are whole common lines within one chunk (cri_wire's `room`, `max_lines`,\n"
             "`max_bytes`), returns (size, data, count, chars, new tail): cri_wire's encoding of them and the\n"
             "last `tail_bytes` bytes of `tail` and the new bytes (the tail to keep). Anything else (the file shrank or\n"
             "changed before `offset`, grew by more, ends in a partial line, holds a line the scan leaves to the\n"
             "reference) returns None, having changed nothing: the caller's general path takes the visit.");

static PyObject *visit(PyObject *self, PyObject *args) {
    int fd;
    Py_ssize_t offset, room, max_lines, max_bytes, limit, tail_bytes;
    Py_buffer tail;
    if (!PyArg_ParseTuple(args, "iny*nnnnn", &fd, &offset, &tail, &room, &max_lines, &max_bytes, &limit, &tail_bytes))
        return NULL;
    Py_ssize_t keep = tail.len;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) {
        PyBuffer_Release(&tail);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_ssize_t size = (Py_ssize_t)end;
    if (size == offset) {
        PyBuffer_Release(&tail);
        return PyLong_FromSsize_t(size);
    }
    Py_ssize_t fresh = size - offset, want = keep + fresh;
    if (size < offset || fresh > limit || keep == 0 || keep > offset || tail_bytes <= 0) {
        PyBuffer_Release(&tail);
        Py_RETURN_NONE;
    }
    char stack_in[STACK_OUT];
    unsigned char *buf = want <= STACK_OUT ? (unsigned char *)stack_in : PyMem_Malloc((size_t)want);
    if (buf == NULL) {
        PyBuffer_Release(&tail);
        return PyErr_NoMemory();
    }
    ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    do {
        got = pread(fd, buf, (size_t)want, (off_t)(offset - keep));
    } while (got < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    int same = got == want && memcmp(buf, tail.buf, (size_t)keep) == 0;
    PyBuffer_Release(&tail);
    PyObject *result = NULL;
    if (got < 0) {
        result = PyErr_SetFromErrno(PyExc_OSError);
    } else if (!same) {
        result = Py_NewRef(Py_None); /* shrank or changed since the size was taken: the general path looks */
    } else {
        char stack_out[STACK_OUT];
        Out out = {stack_out, 0, STACK_OUT, NULL};
        Py_ssize_t count, chars;
        int failed = 0;
        Py_ssize_t at = wire_scan(buf, keep, want, offset - keep, room, max_lines, max_bytes, &out, &count, &chars,
                                  &failed);
        if (failed) {
            result = PyErr_NoMemory();
        } else if (at != want) {
            result = Py_NewRef(Py_None);
        } else {
            Py_ssize_t last = want < tail_bytes ? want : tail_bytes;
            result = Py_BuildValue("ny#nny#", size, out.data, out.used, count, chars,
                                   (const char *)buf + want - last, last);
        }
        PyMem_Free(out.heap);
    }
    if (buf != (unsigned char *)stack_in) PyMem_Free(buf);
    return result;
}

static PyMethodDef methods[] = {
    {"cri_lines", cri_lines, METH_VARARGS, cri_lines_doc},
    {"cri_wire", cri_wire, METH_VARARGS, cri_wire_doc},
    {"visit", visit, METH_VARARGS, visit_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_filescan",
                                    "The file collector's per-line work on CRI files in C (see core/native.py).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__filescan(void) {
    return PyModule_Create(&module);
}
