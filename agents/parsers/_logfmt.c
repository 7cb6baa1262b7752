/* logfmt lines rewritten as the JSON text their parsed record is written as, so the C line scan reads them.
 *
 * A source parsed as logfmt took every line through Python: the logfmt split, a dict, orjson.dumps, and
 * the JSON reference's field reads (agents/parsers/chain.py), about 5 us a line against the JSON path's
 * 0.5 us in C. The record a logfmt line gives is written as JSON text anyway (what sinks receive); this
 * writes that text from the line directly, byte for byte what `orjson.dumps(parse_logfmt(line))` gives,
 * and the parse stage's C scan (agents/_linescan.c `split`) then reads it as it reads any JSON line.
 *
 * to_json(lines, json_first, renamed) -> list | None: `lines` (raw lines [position, text, stream, source_ns, flags])
 * with each line this pass is sure of replaced by a new raw line whose text is that JSON; every other line
 * is the same object, for the parser chain to take in Python. None when, without `json_first`, a line it
 * leaves starts with "{": the C scan would read that line as JSON, where the chain tries logfmt first. Sure means: flags 0, the line (less trailing
 * "\r", "\n" and " ", as the chain strips it) printable ASCII with no backslash (so no escape and no
 * tab: `parse_logfmt`'s common case), logfmt by `parse_logfmt`'s rules, no key twice, at most MAX_PAIRS
 * pairs, no key among `renamed` (the canonical names the chain renames to the configured first alias, which
 * moves that pair to the record's end), and with `json_first` (the chain tries JSON first) not starting with "{". Such a line's keys and
 * values hold no quote or backslash and no control character, so the JSON needs no escape at all.
 * The Python reference is `orjson.dumps(parse_logfmt(text))` (agents/parsers/logfmt.py);
 * tests/unit/agents/parsers/test_logfmt_native.py compares the two on generated lines.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "_logfmt.h"

/* The JSON text of a record, as orjson writes it (no escapes are needed: see _logfmt.h). */
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

PyDoc_STRVAR(to_json_doc,
"to_json(lines, json_first, renamed) -> list | None\n\n"
"`lines` with each raw line whose text is common logfmt replaced by a raw line whose text is its record's\n"
"JSON (orjson.dumps(parse_logfmt(text)) exactly); other lines are the same objects. `json_first`: the\n"
"chain tries JSON before logfmt, so a line starting with '{' is left alone; a line with a key in the tuple\n"
"`renamed` (at most 8 names) is left alone. None when, without\n"
"`json_first`, a line left alone starts with '{' (the JSON scan would take it): parse the chunk in Python.");

static PyObject *to_json(PyObject *self, PyObject *args) {
    PyObject *lines, *renamed;
    int json_first;
    if (!PyArg_ParseTuple(args, "O!pO!", &PyList_Type, &lines, &json_first, &PyTuple_Type, &renamed)) return NULL;
    if (PyTuple_GET_SIZE(renamed) > MAX_RENAMED) {
        PyErr_Format(PyExc_ValueError, "at most %d renamed keys", MAX_RENAMED);
        return NULL;
    }
    Record *record = PyMem_Malloc(sizeof *record);
    if (!record) return PyErr_NoMemory();
    record->renamed_count = (int)PyTuple_GET_SIZE(renamed);
    for (int i = 0; i < record->renamed_count; i++) { /* the tuple holds them while this runs */
        PyObject *name = PyTuple_GET_ITEM(renamed, i);
        if (!PyUnicode_Check(name) || !(record->renamed[i] = PyUnicode_AsUTF8AndSize(name, &record->renamed_len[i]))) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "renamed keys must be str");
            PyMem_Free(record);
            return NULL;
        }
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

static PyMethodDef methods[] = {
    {"to_json", to_json, METH_VARARGS, to_json_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_logfmt",
                                    "logfmt lines as their records' JSON text (see agents/parsers/chain.py).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__logfmt(void) { return PyModule_Create(&module); }
