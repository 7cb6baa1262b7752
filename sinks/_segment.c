/* The appending sinks' per-line selection in C: which lines of a packed record the file sink appends and an
 * object-store sink puts in its next object, and the object stores' event-time bound (`times_within`).
 *
 * Why: a file segment is appended at most once per line, so the sink skips every line at or below its
 * partition's recorded position and, in ordered records, every line at or below its stream's mark
 * (sinks/stream_marks.py), advancing the marks. In Python that was a loop over SinkLine objects with
 * a line id parsed per line; the drain now hands records packed (sinks/packed.py: one buffer of
 * documents and a table of three int64 per line), and this walks the table: when every line is kept
 * (the normal case, everything but replays and upstream re-sends) it returns the record's own buffer,
 * so the documents are never copied again before the write. `select_lines` in sinks/packed.py is the
 * Python reference; tests/unit/sinks/test_packed.py holds the two equal.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int64_t end;    /* where the line's document ends in the buffer, after its newline */
    int64_t pos;    /* its stream position */
    int64_t stream; /* index into the stream digests; -1: not a Logweave line id (never skipped by marks) */
} Entry;

PyDoc_STRVAR(select_lines_doc,
             "select_lines(documents, table, streams, marks, ordered, offset, first_index, after_offset, after_index)\n"
             "-> (kept documents, count kept, index of the first and of the last kept line or -1), or None when the reference must\n"
             "decide (a mark that is not a 64-bit int); `marks` advanced for the lines kept.");

static PyObject *select_lines(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *documents, *table, *streams, *marks;
    int ordered;
    long long offset, first_index, after_offset, after_index;
    if (!PyArg_ParseTuple(args, "O!O!O!O!pLLLL:select_lines", &PyBytes_Type, &documents, &PyBytes_Type, &table,
                          &PyList_Type, &streams, &PyDict_Type, &marks, &ordered, &offset, &first_index,
                          &after_offset, &after_index))
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(documents), nstreams = PyList_GET_SIZE(streams);
    if (PyBytes_GET_SIZE(table) % (Py_ssize_t)sizeof(Entry) != 0) {
        PyErr_SetString(PyExc_ValueError, "a packed table holds whole entries of three int64");
        return NULL;
    }
    Py_ssize_t count = PyBytes_GET_SIZE(table) / (Py_ssize_t)sizeof(Entry);
    const char *docs = PyBytes_AS_STRING(documents), *raw = PyBytes_AS_STRING(table);
    int64_t *mark = NULL;
    char *state = NULL; /* per stream: 0 mark not read yet, 1 read, 2 advanced */
    char *copy = NULL;  /* the kept documents, once a line is skipped */
    Py_ssize_t copied = 0, kept = 0;
    long long first = -1, last = -1;
    PyObject *result = NULL;
    if (nstreams > 0) {
        mark = PyMem_Calloc((size_t)nstreams, sizeof *mark);
        state = PyMem_Calloc((size_t)nstreams, 1);
        if (mark == NULL || state == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    int64_t start = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Entry e;
        memcpy(&e, raw + i * (Py_ssize_t)sizeof e, sizeof e);
        if (e.end <= start || e.end > size || docs[e.end - 1] != '\n' || e.stream < -1 || e.stream >= nstreams) {
            PyErr_SetString(PyExc_ValueError, "a packed table does not match its documents");
            goto done;
        }
        long long index = first_index + (long long)i;
        int keep = offset > after_offset || (offset == after_offset && index > after_index);
        if (keep && ordered && e.stream >= 0) {
            int64_t s = e.stream;
            if (state[s] == 0) {
                PyObject *found = PyDict_GetItemWithError(marks, PyList_GET_ITEM(streams, s));
                if (found == NULL && PyErr_Occurred()) goto done;
                int overflow = 0;
                mark[s] = -1;
                if (found != NULL) {
                    mark[s] = PyLong_CheckExact(found) ? PyLong_AsLongLongAndOverflow(found, &overflow) : 0;
                    if (!PyLong_CheckExact(found) || overflow || (mark[s] == -1 && PyErr_Occurred())) {
                        PyErr_Clear();
                        result = Py_NewRef(Py_None);
                        goto done;
                    }
                }
                state[s] = 1;
            }
            if (e.pos <= mark[s]) {
                keep = 0;
            } else {
                mark[s] = e.pos;
                state[s] = 2;
            }
        }
        if (keep) {
            kept++;
            if (first < 0) first = index;
            last = index;
            if (copy != NULL) {
                memcpy(copy + copied, docs + start, (size_t)(e.end - start));
                copied += e.end - start;
            }
        } else if (copy == NULL) { /* the first line skipped: the lines before it were all kept */
            if ((copy = PyMem_Malloc((size_t)size + 1)) == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            memcpy(copy, docs, (size_t)start);
            copied = start;
        }
        start = e.end;
    }
    if (start != size) {
        PyErr_SetString(PyExc_ValueError, "a packed table does not match its documents");
        goto done;
    }
    for (Py_ssize_t s = 0; s < nstreams; s++) {
        if (state[s] != 2) continue;
        PyObject *value = PyLong_FromLongLong(mark[s]);
        int stored = value == NULL ? -1 : PyDict_SetItem(marks, PyList_GET_ITEM(streams, s), value);
        Py_XDECREF(value);
        if (stored < 0) goto done;
    }
    PyObject *data = copy == NULL ? Py_NewRef(documents) : PyBytes_FromStringAndSize(copy, copied);
    if (data != NULL) result = Py_BuildValue("(NnLL)", data, kept, first, last);
done:
    PyMem_Free(mark);
    PyMem_Free(state);
    PyMem_Free(copy);
    return result;
}

PyDoc_STRVAR(times_within_doc, "times_within(times, low, high) -> whether every int64 in `times` is within [low, high]");

/* The object-store sinks' event-time bound over a packed record's times (sinks/packed.py, TIME per line). */
static PyObject *times_within(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *times;
    long long low, high;
    if (!PyArg_ParseTuple(args, "O!LL:times_within", &PyBytes_Type, &times, &low, &high)) return NULL;
    if (PyBytes_GET_SIZE(times) % (Py_ssize_t)sizeof(int64_t) != 0) {
        PyErr_SetString(PyExc_ValueError, "packed times hold whole int64");
        return NULL;
    }
    Py_ssize_t count = PyBytes_GET_SIZE(times) / (Py_ssize_t)sizeof(int64_t);
    const char *raw = PyBytes_AS_STRING(times);
    int inside = 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t when;
        memcpy(&when, raw + i * (Py_ssize_t)sizeof when, sizeof when);
        inside &= when >= low && when <= high;
    }
    return PyBool_FromLong(inside);
}

static PyMethodDef methods[] = {
    {"select_lines", select_lines, METH_VARARGS, select_lines_doc},
    {"times_within", times_within, METH_VARARGS, times_within_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_segment",
                                    "The appending sinks' per-line selection in C (see sinks/packed.py).", -1, methods};

PyMODINIT_FUNC PyInit__segment(void) { return PyModule_Create(&module); }
