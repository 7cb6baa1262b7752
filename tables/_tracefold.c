/* The group stage's per-line loop: fold one chunk's parsed lines into one record per trace.
 *
 * tables/trace_state.py holds the reference (`fold_reference`) and everything done per trace;
 * this file only replaces the loop over lines, which ran a dozen Python operations per line
 * (grouping by trace id, then min/max/rank/dedupe passes per trace). `fold` returns None for any
 * line it was not written for (a field of another type, a time past int64), and the caller then
 * folds the whole chunk with the reference, so both always agree (tests/unit/tables/test_tracefold.py).
 *
 * Parsed line entry: [src_index, stream_id, position, event_time_ns, trace_id, level, service, text, stream]
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

enum { P_SRC = 0, P_TIME = 3, P_TRACE = 4, P_LEVEL = 5, P_SERVICE = 6, P_TEXT = 7, MIN_FIELDS = 8 };

typedef struct {
    long long count, first, last, errors;
    int rank;
    PyObject *services; /* distinct non-empty names, first seen first, at most max_names */
    PyObject *sources;  /* distinct source indices, first seen first */
    PyObject *sample;   /* the first sample_lines texts, cut at sample_chars */
} Fold;

static const char *const LEVELS[] = {"trace", "debug", "info", "warn", "error", "fatal"};
enum { N_LEVELS = 6, RANK_ERROR = 4 };

/* The level's rank in LEVELS, -1 for any other string (as _LEVEL_RANK.get(level, -1)). */
static int level_rank(PyObject *level) {
    if (PyUnicode_KIND(level) != PyUnicode_1BYTE_KIND) return -1;
    Py_ssize_t len = PyUnicode_GET_LENGTH(level);
    const char *data = (const char *)PyUnicode_1BYTE_DATA(level);
    for (int i = 0; i < N_LEVELS; i++) {
        if ((Py_ssize_t)strlen(LEVELS[i]) == len && memcmp(LEVELS[i], data, (size_t)len) == 0) return i;
    }
    return -1;
}

static int same_str(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    Py_ssize_t len = PyUnicode_GET_LENGTH(a);
    int kind = PyUnicode_KIND(a);
    return len == PyUnicode_GET_LENGTH(b) && kind == (int)PyUnicode_KIND(b) &&
           memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)len * (size_t)kind) == 0;
}

/* Append `item` to `list` unless an equal element is there; 0 on success, -1 on error. */
static int add_distinct_str(PyObject *list, PyObject *item) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (same_str(PyList_GET_ITEM(list, i), item)) return 0;
    }
    return PyList_Append(list, item);
}

static int add_distinct_index(PyObject *list, PyObject *item, long value) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyLong_AsLong(PyList_GET_ITEM(list, i)) == value) return 0;
    }
    return PyList_Append(list, item);
}

static void clear_folds(Fold *folds, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(folds[i].services);
        Py_XDECREF(folds[i].sources);
        Py_XDECREF(folds[i].sample);
    }
}

/* One line into `fold`: 1 folded, 0 not a line this loop takes (fold with the reference), -1 error. */
static int fold_line(Fold *fold, PyObject *line, Py_ssize_t sample_lines, Py_ssize_t sample_chars,
                     Py_ssize_t max_names) {
    PyObject *time = PyList_GET_ITEM(line, P_TIME), *level = PyList_GET_ITEM(line, P_LEVEL);
    PyObject *service = PyList_GET_ITEM(line, P_SERVICE), *src = PyList_GET_ITEM(line, P_SRC);
    PyObject *text = PyList_GET_ITEM(line, P_TEXT);
    if (!PyLong_CheckExact(time) || !PyUnicode_CheckExact(level) || !PyLong_CheckExact(src) ||
        !PyUnicode_CheckExact(text) || !(service == Py_None || PyUnicode_CheckExact(service)))
        return 0;
    int overflow = 0;
    long long t = PyLong_AsLongLongAndOverflow(time, &overflow);
    if (overflow) return 0;
    long src_index = PyLong_AsLongAndOverflow(src, &overflow);
    if (overflow) return 0;
    if (fold->count == 0 || t < fold->first) fold->first = t;
    if (fold->count == 0 || t > fold->last) fold->last = t;
    fold->count++;
    int rank = level_rank(level);
    if (rank > fold->rank) fold->rank = rank;
    if (rank >= RANK_ERROR) fold->errors++;
    if (service != Py_None && PyUnicode_GET_LENGTH(service) > 0 && PyList_GET_SIZE(fold->services) < max_names &&
        add_distinct_str(fold->services, service) < 0)
        return -1;
    if (add_distinct_index(fold->sources, src, src_index) < 0) return -1;
    if (PyList_GET_SIZE(fold->sample) < sample_lines) {
        PyObject *cut = PyUnicode_GET_LENGTH(text) > sample_chars ? PyUnicode_Substring(text, 0, sample_chars)
                                                                   : (Py_INCREF(text), text);
        if (cut == NULL) return -1;
        int failed = PyList_Append(fold->sample, cut);
        Py_DECREF(cut);
        if (failed < 0) return -1;
    }
    return 1;
}

static PyObject *fold_result(PyObject *order, Fold *folds) {
    Py_ssize_t n = PyList_GET_SIZE(order);
    PyObject *result = PyDict_New();
    if (result == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Fold *f = &folds[i];
        PyObject *entry = Py_BuildValue("[LLLiLOOO]", f->count, f->first, f->last, f->rank, f->errors,
                                        f->services, f->sources, f->sample);
        if (entry == NULL || PyDict_SetItem(result, PyList_GET_ITEM(order, i), entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(entry);
    }
    return result;
}

PyDoc_STRVAR(fold_doc,
"fold(lines, sample_lines, sample_chars, max_names) -> dict | None\n\n"
"Per trace id, in first-seen order (lines with an empty trace id skipped): [count, first, last,\n"
"level rank, errors, services, source indices, sample]. None when a line is not one this loop takes;\n"
"tables/trace_state.fold_reference then folds the chunk.");

static PyObject *fold(PyObject *self, PyObject *args) {
    PyObject *lines;
    Py_ssize_t sample_lines, sample_chars, max_names;
    if (!PyArg_ParseTuple(args, "O!nnn", &PyList_Type, &lines, &sample_lines, &sample_chars, &max_names))
        return NULL;
    if (sample_lines < 0 || sample_chars < 0 || max_names < 0) {
        PyErr_SetString(PyExc_ValueError, "fold: sample_lines, sample_chars and max_names must be >= 0");
        return NULL;
    }
    Py_ssize_t n_lines = PyList_GET_SIZE(lines);
    Fold *folds = PyMem_Calloc((size_t)(n_lines > 0 ? n_lines : 1), sizeof(Fold));
    PyObject *index = PyDict_New(), *order = PyList_New(0), *result = NULL;
    Py_ssize_t n_folds = 0;
    int taken = 1;
    if (folds == NULL || index == NULL || order == NULL) {
        if (folds == NULL) PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_lines && taken == 1; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyList_CheckExact(line) || PyList_GET_SIZE(line) < MIN_FIELDS ||
            !PyUnicode_CheckExact(PyList_GET_ITEM(line, P_TRACE))) {
            taken = 0;
            break;
        }
        PyObject *trace = PyList_GET_ITEM(line, P_TRACE);
        if (PyUnicode_GET_LENGTH(trace) == 0) continue; /* untraced: routed, never grouped */
        PyObject *at = PyDict_GetItemWithError(index, trace);
        Py_ssize_t k;
        if (at != NULL) {
            k = PyLong_AsSsize_t(at);
        } else {
            if (PyErr_Occurred()) goto done;
            k = n_folds;
            Fold *f = &folds[k];
            f->rank = -1;
            f->services = PyList_New(0);
            f->sources = PyList_New(0);
            f->sample = PyList_New(0);
            n_folds++;
            PyObject *position = PyLong_FromSsize_t(k);
            if (f->services == NULL || f->sources == NULL || f->sample == NULL || position == NULL ||
                PyDict_SetItem(index, trace, position) < 0 || PyList_Append(order, trace) < 0) {
                Py_XDECREF(position);
                goto done;
            }
            Py_DECREF(position);
        }
        taken = fold_line(&folds[k], line, sample_lines, sample_chars, max_names);
        if (taken < 0) goto done;
    }
    if (taken == 0) {
        result = Py_NewRef(Py_None);
    } else {
        result = fold_result(order, folds);
    }
done:
    if (folds != NULL) {
        clear_folds(folds, n_folds);
        PyMem_Free(folds);
    }
    Py_XDECREF(index);
    Py_XDECREF(order);
    return result;
}

static PyMethodDef methods[] = {
    {"fold", fold, METH_VARARGS, fold_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tracefold",
                                    "The group stage's per-line loop (see tables/trace_state.py).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__tracefold(void) { return PyModule_Create(&module); }
