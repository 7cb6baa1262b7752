/* The number under one top-level key of a JSON object, without decoding the object.
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

static PyObject *top_number(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "top_number(text, key) takes two str");
        return NULL;
    }
    PyObject *text_obj = args[0], *key_obj = args[1];
    Py_ssize_t text_len, key_len;
    const char *text = PyUnicode_AsUTF8AndSize(text_obj, &text_len);
    if (text == NULL) return NULL;
    const char *key = PyUnicode_AsUTF8AndSize(key_obj, &key_len);
    if (key == NULL) return NULL;
    Cursor c = {text, text + text_len};
    int result = MISSING;
    double number = 0.0;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') goto unsure;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
        skip_ws(&c);
        if (c.p != c.end) goto unsure;
        goto done;
    }
    for (;;) {
        if (c.p >= c.end || *c.p != '"') goto unsure;
        const char *name = c.p + 1;
        int escaped = 0;
        if (!skip_string(&c, &escaped)) goto unsure;
        Py_ssize_t name_len = (c.p - 1) - name;
        int match = !escaped && name_len == key_len && memcmp(name, key, (size_t)key_len) == 0;
        if (escaped) goto unsure;  /* the key's text needs decoding to compare */
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') goto unsure;
        c.p++;
        skip_ws(&c);
        if (c.p >= c.end) goto unsure;
        int found = value(&c, match, &number);
        if (found == UNSURE) goto unsure;
        if (match) result = found;
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            skip_ws(&c);
            continue;
        }
        if (c.p < c.end && *c.p == '}') break;
        goto unsure;
    }
    c.p++;
    skip_ws(&c);
    if (c.p != c.end) goto unsure;  /* text after the object */
done:
    if (result == NUMBER) return PyFloat_FromDouble(number);
    if (result == OTHER) Py_RETURN_FALSE;
    Py_RETURN_NONE;
unsure:
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(top_number_doc, "top_number(text, key) -> float | None | False | True: the number under a "
             "top-level key of JSON object text (None: missing or null, False: not a number, True: decode it)");

static PyMethodDef methods[] = {
    {"top_number", (PyCFunction)(void (*)(void))top_number, METH_FASTCALL, top_number_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fieldscan",
                                    "A numeric top-level field of a JSON object, without decoding it.", -1, methods};

PyMODINIT_FUNC PyInit__fieldscan(void) { return PyModule_Create(&module); }
