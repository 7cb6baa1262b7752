/* The number under one top-level key of a JSON object, without decoding the object; and a histogram
 * rule's pass over a chunk's lines with it.
 *
 * Metrics from logs (agents/log_metrics.py) observe a numeric field of every line a histogram rule
 * takes; decoding each line with orjson for one field cost more than the rest of the rule. This
 * walks the object's top level once, skipping nested values, and reads the key's value.
 *
 * top_number(text, key) -> float (the number), None (no such key, or null), False (the value is a
 * string, boolean, object or array), True (not sure: a key with escapes, a malformed text, a number
 * out of range: the caller decodes the line). Duplicate keys: the last wins, as in orjson.
 * The text is a line the parse stage accepted as a JSON object: the top level is checked, nested
 * values and the insides of strings are skipped, not validated.
 * The Python reference is agents/log_metrics.py `reference_number`; tests/unit/agents/
 * test_fieldscan.py compares the two on generated documents.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef struct { const char *p, *end; } Cursor;

enum { UNSURE = -1, MISSING = 0, NUMBER = 1, OTHER = 2 };

static void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* At an opening quote: past the closing one; *escaped set if the string holds a backslash. 0 on error. */
static int skip_string(Cursor *c, int *escaped) {
    c->p++;
    const char *quote = memchr(c->p, '"', (size_t)(c->end - c->p));
    if (quote != NULL && memchr(c->p, '\\', (size_t)(quote - c->p)) == NULL) {  /* the common string */
        c->p = quote + 1;
        return 1;
    }
    while (c->p < c->end) {
        char ch = *c->p;
        if (ch == '"') { c->p++; return 1; }
        if (ch == '\\') {
            *escaped = 1;
            c->p += 2;
            continue;
        }
        c->p++;
    }
    return 0;
}

/* At a value that is an object or array: past its end, strings inside skipped whole. 0 on error. */
static int skip_nested(Cursor *c) {
    int depth = 0, escaped = 0;
    while (c->p < c->end) {
        char ch = *c->p;
        if (ch == '"') {
            if (!skip_string(c, &escaped)) return 0;
            continue;
        }
        if (ch == '{' || ch == '[') depth++;
        else if (ch == '}' || ch == ']') {
            depth--;
            if (depth == 0) { c->p++; return 1; }
        }
        c->p++;
    }
    return 0;
}

/* A JSON number token at c->p: its length, or 0 if it is not one. */
static Py_ssize_t number_length(const char *p, const char *end) {
    const char *s = p;
    if (p < end && *p == '-') p++;
    if (p >= end) return 0;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') { while (p < end && *p >= '0' && *p <= '9') p++; }
    else return 0;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return 0;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return 0;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    return p - s;
}

/* Skip the value at c->p (or read it when `want`): NUMBER with *out, MISSING (null), OTHER, UNSURE. */
static int value(Cursor *c, int want, double *out) {
    char ch = *c->p;
    int escaped = 0;
    if (ch == '"') return skip_string(c, &escaped) ? OTHER : UNSURE;
    if (ch == '{' || ch == '[') return skip_nested(c) ? OTHER : UNSURE;
    if (ch == 't' && c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0) { c->p += 4; return OTHER; }
    if (ch == 'f' && c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) { c->p += 5; return OTHER; }
    if (ch == 'n' && c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) { c->p += 4; return MISSING; }
    Py_ssize_t n = number_length(c->p, c->end);
    if (n == 0) return UNSURE;
    if (want) {
        char buffer[64];
        if (n >= (Py_ssize_t)sizeof(buffer)) return UNSURE;
        memcpy(buffer, c->p, (size_t)n);
        buffer[n] = '\0';
        double found = PyOS_string_to_double(buffer, NULL, NULL);
        if (found == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return UNSURE; }
        if (!isfinite(found)) return UNSURE;
        *out = found;
    }
    c->p += n;
    return NUMBER;
}

/* The top-level value under `key` of JSON object text: NUMBER (*number set), MISSING, OTHER or UNSURE. */
static int scan_number(const char *text, Py_ssize_t text_len, const char *key, Py_ssize_t key_len, double *number) {
    Cursor c = {text, text + text_len};
    int result = MISSING;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') return UNSURE;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
        skip_ws(&c);
        return c.p == c.end ? MISSING : UNSURE;
    }
    for (;;) {
        if (c.p >= c.end || *c.p != '"') return UNSURE;
        const char *name = c.p + 1;
        int escaped = 0;
        if (!skip_string(&c, &escaped)) return UNSURE;
        if (escaped) return UNSURE;  /* the key's text needs decoding to compare */
        Py_ssize_t name_len = (c.p - 1) - name;
        int match = name_len == key_len && memcmp(name, key, (size_t)key_len) == 0;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') return UNSURE;
        c.p++;
        skip_ws(&c);
        if (c.p >= c.end) return UNSURE;
        int found = value(&c, match, number);
        if (found == UNSURE) return UNSURE;
        if (match) result = found;
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            skip_ws(&c);
            continue;
        }
        if (c.p < c.end && *c.p == '}') break;
        return UNSURE;
    }
    c.p++;
    skip_ws(&c);
    return c.p == c.end ? result : UNSURE;  /* nothing may follow the object */
}

static PyObject *top_number(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "top_number(text, key) takes two str");
        return NULL;
    }
    Py_ssize_t text_len, key_len;
    const char *text = PyUnicode_AsUTF8AndSize(args[0], &text_len);
    if (text == NULL) return NULL;
    const char *key = PyUnicode_AsUTF8AndSize(args[1], &key_len);
    if (key == NULL) return NULL;
    double number = 0.0;
    switch (scan_number(text, text_len, key, key_len, &number)) {
        case NUMBER: return PyFloat_FromDouble(number);
        case OTHER: Py_RETURN_FALSE;
        case MISSING: Py_RETURN_NONE;
        default: Py_RETURN_TRUE;
    }
}

/* histogram(lines, text_at, field, bounds, keys, skip, series_of, new_series) -> (missing, not_a_number, unsure)
 *
 * For each line i whose keys[i] is not `skip`: the number under `field` of lines[i][text_at] goes to the
 * series series_of[keys[i]] (new_series(keys[i]) makes a missing one and puts it there): a list of
 * len(bounds) + 2 floats, one per bucket (a value goes to the first bound >= it), +Inf, then the sum.
 * Returns how many lines had no such field (or null), a value that is not a number, and the indexes
 * of the lines to decode (top_number's True). The Python reference is CompiledMetric.observe.
 * new_series may not change `lines` or `keys` (RuntimeError).
 */
static int add_to(PyObject *series, Py_ssize_t at, double value) {
    PyObject *old = PyList_GET_ITEM(series, at);
    if (!PyFloat_CheckExact(old)) {
        PyErr_SetString(PyExc_TypeError, "histogram series hold floats");
        return -1;
    }
    PyObject *new = PyFloat_FromDouble(PyFloat_AS_DOUBLE(old) + value);
    if (new == NULL) return -1;
    PyList_SET_ITEM(series, at, new);
    Py_DECREF(old);
    return 0;
}

static PyObject *histogram(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "histogram() takes 8 arguments");
        return NULL;
    }
    PyObject *lines = args[0], *field = args[2], *bounds_obj = args[3], *keys = args[4], *skip = args[5];
    PyObject *series_of = args[6], *new_series = args[7];
    Py_ssize_t text_at = PyLong_AsSsize_t(args[1]);
    if (text_at == -1 && PyErr_Occurred()) return NULL;
    if (!PyList_Check(lines) || !PyUnicode_Check(field) || !PyList_Check(bounds_obj) || !PyList_Check(keys)
            || !PyDict_Check(series_of) || PyList_GET_SIZE(keys) != PyList_GET_SIZE(lines) || text_at < 0) {
        PyErr_SetString(PyExc_TypeError, "histogram(lines, text_at, field, bounds, keys, skip, series_of, new_series)");
        return NULL;
    }
    Py_ssize_t nbounds = PyList_GET_SIZE(bounds_obj);
    if (nbounds > 64) {
        PyErr_SetString(PyExc_ValueError, "at most 64 bucket bounds");
        return NULL;
    }
    double bounds[64];
    for (Py_ssize_t b = 0; b < nbounds; b++) {
        bounds[b] = PyFloat_AsDouble(PyList_GET_ITEM(bounds_obj, b));
        if (bounds[b] == -1.0 && PyErr_Occurred()) return NULL;
    }
    Py_ssize_t key_len;
    const char *key = PyUnicode_AsUTF8AndSize(field, &key_len);
    if (key == NULL) return NULL;
    PyObject *unsure = PyList_New(0);
    if (unsure == NULL) return NULL;
    Py_ssize_t missing = 0, other = 0, n = PyList_GET_SIZE(lines);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *raw_key = PyList_GET_ITEM(keys, i);
        if (raw_key == skip) continue;
        PyObject *line = PyList_GET_ITEM(lines, i);
        PyObject *text = PyList_Check(line) && text_at < PyList_GET_SIZE(line) ? PyList_GET_ITEM(line, text_at) : NULL;
        double number = 0.0;
        int found = UNSURE;
        if (text != NULL && PyUnicode_Check(text)) {
            Py_ssize_t text_len;
            const char *data = PyUnicode_AsUTF8AndSize(text, &text_len);
            if (data == NULL) goto error;
            found = scan_number(data, text_len, key, key_len, &number);
        }
        if (found == MISSING) { missing++; continue; }
        if (found == OTHER) { other++; continue; }
        if (found == UNSURE) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(unsure, index) < 0) { Py_XDECREF(index); goto error; }
            Py_DECREF(index);
            continue;
        }
        PyObject *series = PyDict_GetItemWithError(series_of, raw_key);  /* borrowed */
        if (series == NULL) {
            if (PyErr_Occurred()) goto error;
            Py_INCREF(raw_key);  /* the callback may drop it from `keys` */
            PyObject *made = PyObject_CallOneArg(new_series, raw_key);
            if (made == NULL) { Py_DECREF(raw_key); goto error; }
            Py_DECREF(made);  /* new_series put it in series_of, which holds it */
            series = PyDict_GetItemWithError(series_of, raw_key);
            Py_DECREF(raw_key);
            if (series == NULL) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "new_series did not add the series");
                goto error;
            }
            if (PyList_GET_SIZE(lines) != n || PyList_GET_SIZE(keys) != n) {
                PyErr_SetString(PyExc_RuntimeError, "new_series changed the lines or keys");
                goto error;
            }
        }
        if (!PyList_Check(series) || PyList_GET_SIZE(series) != nbounds + 2) {
            PyErr_SetString(PyExc_TypeError, "a histogram series is a list of len(bounds) + 2 floats");
            goto error;
        }
        Py_ssize_t lo = 0, hi = nbounds;  /* the first bound >= number (bisect_left) */
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (bounds[mid] < number) lo = mid + 1; else hi = mid;
        }
        if (add_to(series, lo, 1.0) < 0 || add_to(series, nbounds + 1, number) < 0) goto error;
    }
    return Py_BuildValue("nnN", missing, other, unsure);
error:
    Py_DECREF(unsure);
    return NULL;
}

PyDoc_STRVAR(histogram_doc, "histogram(lines, text_at, field, bounds, keys, skip, series_of, new_series) -> "
             "(missing, not_a_number, unsure indexes): a histogram rule's pass over a chunk's lines");

PyDoc_STRVAR(top_number_doc, "top_number(text, key) -> float | None | False | True: the number under a "
             "top-level key of JSON object text (None: missing or null, False: not a number, True: decode it)");

static PyMethodDef methods[] = {
    {"top_number", (PyCFunction)(void (*)(void))top_number, METH_FASTCALL, top_number_doc},
    {"histogram", (PyCFunction)(void (*)(void))histogram, METH_FASTCALL, histogram_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fieldscan",
                                    "A numeric top-level field of a JSON object, without decoding it.", -1, methods};

PyMODINIT_FUNC PyInit__fieldscan(void) { return PyModule_Create(&module); }
