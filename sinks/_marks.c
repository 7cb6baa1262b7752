/* The per-line loop of sinks/stream_marks.py `unseen` in C: lines above their stream's mark, the marks
 * advanced to the lines returned. Same answers as the Python reference (`unseen_reference`), which a
 * differential test (tests/unit/sinks/test_stream_marks.py) checks on generated batches.
 *
 * A line id is `<stream digest>-<position in hex>`. The common id (ASCII, 1-15 hex digits after the last
 * '-') is read here without building objects, and the digest string of consecutive lines of one stream is
 * made once. Anything else (non-ASCII ids, long positions, `int()` spellings such as `0x1f` or `1_f`)
 * takes the reference's own steps through the C API: rpartition, then int(text, 16).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *s_ordered, *s_line_id, *s_dash;

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* 1: keep the line (and advance the mark); 0: skip it; -1: error. `digest` and `position` are new refs. */
static int keep_above_mark(PyObject *marks, PyObject *digest, PyObject *position) {
    PyObject *mark = PyDict_GetItemWithError(marks, digest);  /* borrowed */
    if (mark == NULL && PyErr_Occurred()) return -1;
    if (mark != NULL) {
        int above = PyObject_RichCompareBool(position, mark, Py_GT);
        if (above <= 0) return above;
    } else {
        /* marks.get(digest, -1): a position <= -1 is skipped (int() of hex text is never negative here) */
        PyObject *minus_one = PyLong_FromLong(-1);
        if (minus_one == NULL) return -1;
        int above = PyObject_RichCompareBool(position, minus_one, Py_GT);
        Py_DECREF(minus_one);
        if (above <= 0) return above;
    }
    return PyDict_SetItem(marks, digest, position) < 0 ? -1 : 1;
}

/* The reference's steps for one id: 1 keep (mark advanced), 0 skip, 2 keep without a mark, -1 error. */
static int general_id(PyObject *marks, PyObject *lid) {
    PyObject *parts = PyObject_CallMethod(lid, "rpartition", "O", s_dash);
    if (parts == NULL) return -1;
    PyObject *digest = PyTuple_GET_ITEM(parts, 0), *sep = PyTuple_GET_ITEM(parts, 1),
             *hex = PyTuple_GET_ITEM(parts, 2);
    PyObject *position = PyLong_FromUnicodeObject(hex, 16);
    if (position == NULL) {
        Py_DECREF(parts);
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return -1;
        PyErr_Clear();
        return 2;
    }
    int result;
    if (PyObject_Length(sep) == 0 || PyObject_Length(digest) == 0) {
        result = 2;
    } else {
        result = keep_above_mark(marks, digest, position);
    }
    Py_DECREF(position);
    Py_DECREF(parts);
    return result;
}

static PyObject *unseen(PyObject *self, PyObject *args) {
    PyObject *lines, *marks;
    if (!PyArg_ParseTuple(args, "O!O!:unseen", &PyList_Type, &lines, &PyDict_Type, &marks)) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    PyObject *digest = NULL;  /* the last stream's digest string, reused while ids share it */
    Py_ssize_t count = PyList_GET_SIZE(lines);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        PyObject *ordered = PyObject_GetAttr(line, s_ordered);
        if (ordered == NULL) goto error;
        int is_ordered = PyObject_IsTrue(ordered);
        Py_DECREF(ordered);
        if (is_ordered < 0) goto error;
        int keep = 2;
        if (is_ordered) {
            PyObject *lid = PyObject_GetAttr(line, s_line_id);
            if (lid == NULL) goto error;
            const char *text = NULL;
            Py_ssize_t size = 0, dash = -1;
            if (PyUnicode_Check(lid) && PyUnicode_IS_ASCII(lid)) {
                text = (const char *)PyUnicode_1BYTE_DATA(lid);
                size = PyUnicode_GET_LENGTH(lid);
                for (Py_ssize_t k = size - 1; k >= 0; k--) {
                    if (text[k] == '-') { dash = k; break; }
                }
            }
            Py_ssize_t digits = size - dash - 1;
            long long position = 0;
            int simple = text != NULL && dash > 0 && digits >= 1 && digits <= 15;
            for (Py_ssize_t k = dash + 1; simple && k < size; k++) {
                int value = hex_value((unsigned char)text[k]);
                if (value < 0) simple = 0;
                position = position * 16 + value;
            }
            if (!simple) {
                keep = PyUnicode_Check(lid) ? general_id(marks, lid) : -1;
                if (keep < 0 && !PyErr_Occurred()) {
                    PyErr_Format(PyExc_AttributeError, "line_id of %R is not a str", line);
                }
                Py_DECREF(lid);
                if (keep < 0) goto error;
            } else {
                if (digest == NULL || PyUnicode_GET_LENGTH(digest) != dash ||
                    memcmp(PyUnicode_1BYTE_DATA(digest), text, (size_t)dash) != 0) {
                    Py_XDECREF(digest);
                    digest = PyUnicode_FromStringAndSize(text, dash);
                    if (digest == NULL) { Py_DECREF(lid); goto error; }
                }
                Py_DECREF(lid);
                PyObject *number = PyLong_FromLongLong(position);
                if (number == NULL) goto error;
                keep = keep_above_mark(marks, digest, number);
                Py_DECREF(number);
                if (keep < 0) goto error;
            }
        }
        if (keep && PyList_Append(out, line) < 0) goto error;
    }
    Py_XDECREF(digest);
    return out;
error:
    Py_XDECREF(digest);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"unseen", unseen, METH_VARARGS, "unseen(lines, marks) -> lines above their stream's mark; marks advanced"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_marks", "sinks/stream_marks.py's loop in C", -1,
                                    methods};

PyMODINIT_FUNC PyInit__marks(void) {
    s_ordered = PyUnicode_InternFromString("ordered");
    s_line_id = PyUnicode_InternFromString("line_id");
    s_dash = PyUnicode_InternFromString("-");
    if (s_ordered == NULL || s_line_id == NULL || s_dash == NULL) return NULL;
    return PyModule_Create(&module);
}
