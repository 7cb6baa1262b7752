/* The group stage's per-line loop: fold one chunk's parsed lines into one record per trace.
 *
 * tables/trace_state.py holds the reference (`fold_reference`) and everything done per trace;
 * this file only replaces the loop over lines, which ran a dozen Python operations per line
 * (grouping by trace id, then min/max/rank/dedupe passes per trace). `fold` returns None for any
 * line it was not written for (a field of another type, a time past int64), and the caller then
 * folds the whole chunk with the reference, so both always agree (tests/unit/tables/test_tracefold.py).
 *
 * Parsed line entry: [src_index, stream_id, position, event_time_ns, trace_id, level, service, text, stream]
 *
 * `fold_raw` folds the same lines straight from a logs.parsed record's bytes (as orjson wrote them,
 * core/_chunkjson.h), making no list, int or str per line: the group stage forwards a large chunk to the
 * sinks as it received it, so it needs only the folds, the line count and each stream's positions. It
 * answers None for any record it is not sure of, and the caller decodes that one with orjson.
 *
 * `new_states` (tables/_newstates.h) is the one step per trace done here: a new trace's state written from
 * its fold.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../core/_chunkjson.h"

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
static int level_rank_of(const char *data, Py_ssize_t len) {
    for (int i = 0; i < N_LEVELS; i++) {
        if ((Py_ssize_t)strlen(LEVELS[i]) == len && memcmp(LEVELS[i], data, (size_t)len) == 0) return i;
    }
    return -1;
}

static int level_rank(PyObject *level) {
    if (PyUnicode_KIND(level) != PyUnicode_1BYTE_KIND) return -1;
    return level_rank_of((const char *)PyUnicode_1BYTE_DATA(level), PyUnicode_GET_LENGTH(level));
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

/* As add_distinct_str for the int `value`; `item` is its int, or NULL to make one if it is appended. */
static int add_distinct_index(PyObject *list, PyObject *item, long value) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyLong_AsLong(PyList_GET_ITEM(list, i)) == value) return 0;
    }
    if (item != NULL) return PyList_Append(list, item);
    PyObject *made = PyLong_FromLong(value);
    if (made == NULL) return -1;
    int failed = PyList_Append(list, made);
    Py_DECREF(made);
    return failed;
}

static void clear_folds(Fold *folds, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(folds[i].services);
        Py_XDECREF(folds[i].sources);
        Py_XDECREF(folds[i].sample);
    }
}

/* A line's fields but its text into `fold`; `service` may be NULL or None (no name). 0, or -1 on error. */
static int fold_fields(Fold *fold, long long t, int rank, PyObject *service, PyObject *src, long src_index,
                       Py_ssize_t max_names) {
    if (fold->count == 0 || t < fold->first) fold->first = t;
    if (fold->count == 0 || t > fold->last) fold->last = t;
    fold->count++;
    if (rank > fold->rank) fold->rank = rank;
    if (rank >= RANK_ERROR) fold->errors++;
    if (service != NULL && service != Py_None && PyUnicode_GET_LENGTH(service) > 0 &&
        PyList_GET_SIZE(fold->services) < max_names && add_distinct_str(fold->services, service) < 0)
        return -1;
    return add_distinct_index(fold->sources, src, src_index);
}

/* The text into the fold's sample while it has room, cut at `sample_chars`. 0, or -1 on error. */
static int fold_sample(Fold *fold, PyObject *text, Py_ssize_t sample_chars) {
    PyObject *cut = PyUnicode_GET_LENGTH(text) > sample_chars ? PyUnicode_Substring(text, 0, sample_chars)
                                                               : (Py_INCREF(text), text);
    if (cut == NULL) return -1;
    int failed = PyList_Append(fold->sample, cut);
    Py_DECREF(cut);
    return failed;
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
    if (fold_fields(fold, t, level_rank(level), service, src, src_index, max_names) < 0) return -1;
    if (PyList_GET_SIZE(fold->sample) < sample_lines && fold_sample(fold, text, sample_chars) < 0) return -1;
    return 1;
}

/* The folds of one call, one per trace id in first-seen order. */
typedef struct {
    Fold *folds; /* room for `cap`, doubled when full */
    Py_ssize_t n, cap;
    PyObject *index; /* trace id -> its fold's position */
    PyObject *order; /* trace ids, first seen first */
} Folds;

static int folds_init(Folds *set, Py_ssize_t cap) {
    set->n = 0;
    set->cap = cap > 0 ? cap : 1;
    set->folds = PyMem_Malloc((size_t)set->cap * sizeof(Fold));
    set->index = PyDict_New();
    set->order = PyList_New(0);
    if (set->folds == NULL || set->index == NULL || set->order == NULL) {
        if (set->folds == NULL) PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void folds_free(Folds *set) {
    if (set->folds != NULL) {
        clear_folds(set->folds, set->n);
        PyMem_Free(set->folds);
    }
    Py_XDECREF(set->index);
    Py_XDECREF(set->order);
}

/* The fold of `trace`, a new one if the trace is new; NULL with an exception on error. */
static Fold *fold_of(Folds *set, PyObject *trace) {
    PyObject *at = PyDict_GetItemWithError(set->index, trace);
    if (at != NULL) return &set->folds[PyLong_AsSsize_t(at)];
    if (PyErr_Occurred()) return NULL;
    if (set->n == set->cap) {
        Fold *grown = PyMem_Realloc(set->folds, (size_t)set->cap * 2 * sizeof(Fold));
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        set->folds = grown;
        set->cap *= 2;
    }
    Fold *f = &set->folds[set->n];
    memset(f, 0, sizeof *f);
    f->rank = -1;
    f->services = PyList_New(0);
    f->sources = PyList_New(0);
    f->sample = PyList_New(0);
    set->n++;
    PyObject *position = PyLong_FromSsize_t(set->n - 1);
    if (f->services == NULL || f->sources == NULL || f->sample == NULL || position == NULL ||
        PyDict_SetItem(set->index, trace, position) < 0 || PyList_Append(set->order, trace) < 0) {
        Py_XDECREF(position);
        return NULL;
    }
    Py_DECREF(position);
    return f;
}

static PyObject *fold_result(Folds *set) {
    PyObject *result = PyDict_New();
    if (result == NULL) return NULL;
    for (Py_ssize_t i = 0; i < set->n; i++) {
        Fold *f = &set->folds[i];
        PyObject *entry = Py_BuildValue("[LLLiLOOO]", f->count, f->first, f->last, f->rank, f->errors,
                                        f->services, f->sources, f->sample);
        if (entry == NULL || PyDict_SetItem(result, PyList_GET_ITEM(set->order, i), entry) < 0) {
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

static int sizes_ok(Py_ssize_t sample_lines, Py_ssize_t sample_chars, Py_ssize_t max_names) {
    if (sample_lines >= 0 && sample_chars >= 0 && max_names >= 0) return 1;
    PyErr_SetString(PyExc_ValueError, "fold: sample_lines, sample_chars and max_names must be >= 0");
    return 0;
}

static PyObject *fold(PyObject *self, PyObject *args) {
    PyObject *lines;
    Py_ssize_t sample_lines, sample_chars, max_names;
    if (!PyArg_ParseTuple(args, "O!nnn", &PyList_Type, &lines, &sample_lines, &sample_chars, &max_names))
        return NULL;
    if (!sizes_ok(sample_lines, sample_chars, max_names)) return NULL;
    Py_ssize_t n_lines = PyList_GET_SIZE(lines);
    Folds set;
    PyObject *result = NULL;
    int taken = 1;
    if (folds_init(&set, n_lines) < 0) goto done;
    for (Py_ssize_t i = 0; i < n_lines && taken == 1; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyList_CheckExact(line) || PyList_GET_SIZE(line) < MIN_FIELDS ||
            !PyUnicode_CheckExact(PyList_GET_ITEM(line, P_TRACE))) {
            taken = 0;
            break;
        }
        PyObject *trace = PyList_GET_ITEM(line, P_TRACE);
        if (PyUnicode_GET_LENGTH(trace) == 0) continue; /* untraced: routed, never grouped */
        Fold *f = fold_of(&set, trace);
        if (f == NULL) goto done;
        taken = fold_line(f, line, sample_lines, sample_chars, max_names);
        if (taken < 0) goto done;
    }
    result = taken == 0 ? Py_NewRef(Py_None) : fold_result(&set);
done:
    folds_free(&set);
    return result;
}

/* ---- fold_raw: the same folds from the record's bytes -------------------------------------------- */

/* The streams of one record, first seen first: positions must rise strictly within each. The entry of the
 * stream being read keeps its last position here, and gets it when another stream's line comes. */
typedef struct {
    PyObject *index;   /* stream id -> its entry */
    PyObject *list;    /* entries [stream id, first position, last position] */
    PyObject *current; /* the entry of the previous line's stream (borrowed), NULL before the first */
    PyObject *sid;     /* that line's stream id as read (owned) */
    long long last;    /* its last position */
} Streams;

/* Stores the current stream's last position in its entry: 0, or -1 on error. */
static int stream_settle(Streams *streams) {
    if (streams->current == NULL) return 0;
    PyObject *value = PyLong_FromLongLong(streams->last);
    if (value == NULL) return -1;
    PyList_SetItem(streams->current, 2, value); /* steals */
    return 0;
}

/* The line's position into the stream `sid`: 1 taken, 0 not rising (the caller decodes), -1 error. A line of
 * the previous line's stream has its very str (`literal_str` reuses it), so only a change of stream looks
 * the stream up. */
static int stream_position(Streams *streams, PyObject *sid, long long pos) {
    if (sid != streams->sid) {
        if (stream_settle(streams) < 0) return -1;
        Py_XSETREF(streams->sid, Py_NewRef(sid));
        PyObject *entry = PyDict_GetItemWithError(streams->index, sid);
        if (entry == NULL) {
            if (PyErr_Occurred()) return -1;
            entry = Py_BuildValue("[OLL]", sid, pos, pos);
            if (entry == NULL || PyDict_SetItem(streams->index, sid, entry) < 0 ||
                PyList_Append(streams->list, entry) < 0) {
                Py_XDECREF(entry);
                return -1;
            }
            Py_DECREF(entry);
            streams->current = entry;
            streams->last = pos;
            return 1;
        }
        streams->current = entry;
        streams->last = PyLong_AsLongLong(PyList_GET_ITEM(entry, 2));
    }
    if (pos <= streams->last) return 0;
    streams->last = pos;
    return 1;
}

/* The text of a canonical literal [at, after) as a new str (NULL with an exception). */
static PyObject *text_str(const char *at, const char *after, int escaped, Buf *scratch) {
    if (!escaped) return PyUnicode_DecodeUTF8(at + 1, after - at - 2, NULL);
    scratch->len = 0;
    if (unescape_into(scratch, at + 1, after - 1) < 0) return NULL;
    return PyUnicode_DecodeUTF8(scratch->data, scratch->len, NULL);
}

static PyObject *fragment_type; /* orjson.Fragment: JSON written as it stands when the state is encoded */

/* A sampled text straight from the record: the literal itself as an orjson.Fragment when it cannot be
 * longer than `sample_chars` (a code point takes at least one byte of the literal), so the trace's state
 * is encoded with its bytes instead of decoding and escaping the text again; else the text decoded and
 * cut, as `fold_sample`. 0, or -1 on error. */
static int fold_sample_literal(Fold *fold, const char *at, const char *after, int escaped, Py_ssize_t sample_chars,
                               Buf *scratch) {
    PyObject *sample;
    if (fragment_type != NULL && after - at - 2 <= sample_chars) {
        PyObject *literal = PyBytes_FromStringAndSize(at, after - at);
        if (literal == NULL) return -1;
        sample = PyObject_CallOneArg(fragment_type, literal);
        Py_DECREF(literal);
        if (sample == NULL) return -1;
        int failed = PyList_Append(fold->sample, sample);
        Py_DECREF(sample);
        return failed;
    }
    sample = text_str(at, after, escaped, scratch);
    if (sample == NULL) return -1;
    int failed = fold_sample(fold, sample, sample_chars);
    Py_DECREF(sample);
    return failed;
}

PyDoc_STRVAR(fold_raw_doc,
"fold_raw(data, lines_start, lines_end, sources, sample_lines, sample_chars, max_names)\n"
"-> (line count, streams, folds) | None\n\n"
"`fold` of the lines in data[lines_start:lines_end] (a parsed chunk's `lines` array as orjson wrote it,\n"
"agents/_linescan.chunk_layout finds it), read from the bytes. streams: per stream id, first seen first,\n"
"[id, first position, last position]. A sampled text whose literal is at most sample_chars bytes long is\n"
"an orjson.Fragment of the literal (the same JSON once encoded). None when the record is not one this\n"
"reads (not orjson's exact form, a field of another type, a source index outside [0, sources)) or a\n"
"stream's positions do not rise strictly: the caller then decodes the record and takes the reference path.");

static PyObject *fold_raw(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t lines_start, lines_end, n_sources, sample_lines, sample_chars, max_names;
    if (!PyArg_ParseTuple(args, "y*nnnnnn:fold_raw", &view, &lines_start, &lines_end, &n_sources, &sample_lines,
                          &sample_chars, &max_names))
        return NULL;
    PyObject *result = NULL;
    Folds set = {0};
    Streams streams = {PyDict_New(), PyList_New(0), NULL, NULL, 0};
    Literal sid_seen = {0}, trace_seen = {0}, service_seen = {0};
    Buf scratch = {0};
    int sure = 0;
    if (!sizes_ok(sample_lines, sample_chars, max_names) || streams.index == NULL || streams.list == NULL) goto done;
    if (lines_start < 0 || lines_end > view.len || lines_end - lines_start < 2) goto done_sure;
    const char *p = (const char *)view.buf + lines_start, *end = (const char *)view.buf + lines_end;
    if (*p != '[' || end[-1] != ']') goto done_sure;
    if (folds_init(&set, 64) < 0) goto done;
    Py_ssize_t count = 0;
    p++;
    if (p == end - 1) { /* no lines */
        sure = 1;
        goto answer;
    }
    for (;;) {
        ParsedEntry e;
        p = read_entry(p, end, &e);
        if (p == NULL || e.src < 0 || e.src >= n_sources || e.escaped[E_LEVEL]) goto done_sure;
        const char *const *at = e.at, *const *after = e.after;
        count++;
        PyObject *sid = literal_str(&sid_seen, at[E_SID], after[E_SID], e.escaped[E_SID], &scratch);
        if (sid == NULL) goto done;
        int rising = stream_position(&streams, sid, e.pos);
        Py_DECREF(sid);
        if (rising < 0) goto done;
        if (rising == 0) goto done_sure;
        if (after[E_TRACE] - at[E_TRACE] > 2) { /* untraced lines are routed, never grouped */
            PyObject *trace = literal_str(&trace_seen, at[E_TRACE], after[E_TRACE], e.escaped[E_TRACE], &scratch);
            if (trace == NULL) goto done;
            Fold *f = fold_of(&set, trace);
            Py_DECREF(trace);
            if (f == NULL) goto done;
            PyObject *service = literal_str(&service_seen, at[E_SERVICE], after[E_SERVICE], e.escaped[E_SERVICE],
                                            &scratch);
            if (service == NULL) goto done;
            int rank = level_rank_of(at[E_LEVEL] + 1, after[E_LEVEL] - at[E_LEVEL] - 2);
            int failed = fold_fields(f, e.time_ns, rank, service, NULL, (long)e.src, max_names);
            Py_DECREF(service);
            if (failed < 0) goto done;
            if (PyList_GET_SIZE(f->sample) < sample_lines) {
                failed = fold_sample_literal(f, at[E_TEXT], after[E_TEXT], e.escaped[E_TEXT], sample_chars, &scratch);
                if (failed < 0) goto done;
            }
        }
        int next = next_entry(&p, end);
        if (next < 0) goto done_sure;
        if (next == 0) break;
    }
    sure = 1;
answer: {
        if (stream_settle(&streams) < 0) goto done;
        PyObject *folded = fold_result(&set);
        if (folded != NULL) result = Py_BuildValue("(nON)", count, streams.list, folded);
    }
done_sure:
    if (!sure && !PyErr_Occurred()) result = Py_NewRef(Py_None);
done:
    folds_free(&set);
    Py_XDECREF(streams.index);
    Py_XDECREF(streams.list);
    Py_XDECREF(streams.sid);
    Py_XDECREF(sid_seen.value);
    Py_XDECREF(trace_seen.value);
    Py_XDECREF(service_seen.value);
    PyMem_Free(scratch.data);
    PyBuffer_Release(&view);
    return result;
}

#include "_newstates.h"

static PyMethodDef methods[] = {
    {"fold", fold, METH_VARARGS, fold_doc},
    {"fold_raw", fold_raw, METH_VARARGS, fold_raw_doc},
    {"new_states", new_states, METH_VARARGS, new_states_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tracefold",
                                    "The group stage's per-line loop (see tables/trace_state.py).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__tracefold(void) {
    chunkjson_init();
    PyObject *orjson = PyImport_ImportModule("orjson");
    if (orjson != NULL) {
        fragment_type = PyObject_GetAttrString(orjson, "Fragment"); /* kept for the process */
        Py_DECREF(orjson);
    }
    PyErr_Clear(); /* without it, sampled texts are decoded */
    new_states_init();
    return PyModule_Create(&module);
}
