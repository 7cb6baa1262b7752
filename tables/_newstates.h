/* The group stage's per-trace step for traces it has not seen before: a chunk's fold of a new trace made into
 * its encoded state and deadlines at once (new_states). Included once, by tables/_tracefold.c.
 *
 * Why: on the bulk benchmark every trace is new in the chunk that brings it, and the Python step per trace
 * (new_state, apply_fold, deadlines_ns, DeadlineIndex.set, encode_state) cost ~2.8 us, a tenth of the worker's
 * CPU per line. A new trace's state follows from its fold alone, so it is written here as orjson writes the
 * state dict, byte for byte. Any trace it is not sure of (already known, a NUL in its id, a fold or pod not of
 * the expected types, a deadline past 64 bits, a string orjson refuses) is left to the reference, in
 * agents/grouper.py; tests/unit/tables/test_new_states.py holds both to the same updates and deadlines.
 */
#ifndef LOGWEAVE_NEWSTATES_H
#define LOGWEAVE_NEWSTATES_H

#include <limits.h>

static PyObject *orjson_dumps; /* orjson.dumps: the sample list (its texts may be orjson Fragments) */
static PyObject *heap_push;    /* heapq.heappush: the deadline index's heaps */

enum { MAX_STATE_NAMES = 16 }; /* trace_state._MAX_NAMES */

/* `_add_names([], candidates)` as a JSON array: the truthy ones, each once, first seen first, at most
 * MAX_STATE_NAMES. Candidates must be str or None. 1 written, 0 not sure, -1 an error. */
static int put_names(Buf *b, PyObject *const *candidates, Py_ssize_t n) {
    PyObject *kept[MAX_STATE_NAMES];
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n && count < MAX_STATE_NAMES; i++) {
        PyObject *name = candidates[i];
        if (name == Py_None) continue;
        if (!PyUnicode_CheckExact(name)) return 0;
        if (PyUnicode_GET_LENGTH(name) == 0) continue;
        int seen = 0;
        for (Py_ssize_t k = 0; k < count && !seen; k++) seen = same_str(kept[k], name);
        if (!seen) kept[count++] = name;
    }
    if (buf_put(b, "[", 1) < 0) return -1;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (k > 0 && buf_put(b, ",", 1) < 0) return -1;
        int put = put_json_str(b, kept[k]);
        if (put <= 0) return put;
    }
    return buf_put(b, "]", 1) < 0 ? -1 : 1;
}

/* The fold's fields [count, first, last, rank, errors, services, source indices, sample], when of the types
 * the C fold and the reference make. */
typedef struct {
    long long count, first, last, rank, errors;
    PyObject *services, *sources, *sample;
} FoldView;

static int view_fold(PyObject *fold, FoldView *v) {
    if (!PyList_CheckExact(fold) || PyList_GET_SIZE(fold) != 8) return 0;
    PyObject **item = ((PyListObject *)fold)->ob_item;
    if (!exact_int(item[0], &v->count) || !exact_int(item[1], &v->first) || !exact_int(item[2], &v->last) ||
        !exact_int(item[3], &v->rank) || !exact_int(item[4], &v->errors) || !PyList_CheckExact(item[5]) ||
        !PyList_CheckExact(item[6]) || !PyList_CheckExact(item[7]))
        return 0;
    v->services = item[5], v->sources = item[6], v->sample = item[7];
    return v->rank < N_LEVELS; /* LEVEL_NAMES[rank] past the names: the reference raises */
}

/* `encode_state(state)` of `apply_fold(new_state(trace_id, opened), fold, ..., updated)` into `b` (emptied
 * first), and the state's `last`. 1 written, 0 not sure, -1 an error. */
static int put_new_state(Buf *b, PyObject *trace_id, const FoldView *v, PyObject *pods, Py_ssize_t sample_lines,
                         long long opened, long long updated, long long *last) {
    b->len = 0;
    *last = v->last > 0 ? v->last : 0;
    int put;
    if (buf_put(b, "{\"trace\":", 9) < 0 || (put = put_json_str(b, trace_id)) < 0) return -1;
    if (!put) return 0;
    if (buf_put(b, ",\"first\":", 9) < 0 || put_int(b, v->first, 0) < 0 || buf_put(b, ",\"last\":", 8) < 0 ||
        put_int(b, *last, 0) < 0 || buf_put(b, ",\"count\":", 9) < 0 || put_int(b, v->count, 0) < 0 ||
        buf_put(b, ",\"services\":", 12) < 0)
        return -1;
    if ((put = put_names(b, ((PyListObject *)v->services)->ob_item, PyList_GET_SIZE(v->services))) <= 0) return put;
    Py_ssize_t n_sources = PyList_GET_SIZE(v->sources), n_pods = PyList_GET_SIZE(pods);
    PyObject *candidates[64];
    if (n_sources > 64) return 0;
    for (Py_ssize_t i = 0; i < n_sources; i++) {
        long long index;
        if (!exact_int(PyList_GET_ITEM(v->sources, i), &index) || index < 0 || index >= n_pods) return 0;
        candidates[i] = PyList_GET_ITEM(pods, index);
    }
    if (buf_put(b, ",\"pods\":", 8) < 0) return -1;
    if ((put = put_names(b, candidates, n_sources)) <= 0) return put;
    const char *level = v->rank >= 0 ? LEVELS[v->rank] : "";
    if (buf_put(b, ",\"level\":\"", 10) < 0 || buf_put(b, level, (Py_ssize_t)strlen(level)) < 0 ||
        buf_put(b, "\",\"errors\":", 11) < 0 || put_int(b, v->errors, 0) < 0 || buf_put(b, ",\"sample\":", 10) < 0)
        return -1;
    Py_ssize_t room = sample_lines > 0 ? sample_lines : 0;
    if (PyList_GET_SIZE(v->sample) == 0 || room == 0) {
        if (buf_put(b, "[]", 2) < 0) return -1;
    } else {
        PyObject *kept = PyList_GET_SIZE(v->sample) <= room ? Py_NewRef(v->sample) : PyList_GetSlice(v->sample, 0, room);
        if (kept == NULL) return -1;
        PyObject *encoded = PyObject_CallOneArg(orjson_dumps, kept);
        Py_DECREF(kept);
        if (encoded == NULL) {
            PyErr_Clear(); /* a text orjson refuses: the reference raises its error */
            return 0;
        }
        put = buf_put(b, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
        Py_DECREF(encoded);
        if (put < 0) return -1;
    }
    if (buf_put(b, ",\"opened\":", 10) < 0 || put_int(b, opened, 0) < 0 || buf_put(b, ",\"updated\":", 11) < 0 ||
        put_int(b, updated, 0) < 0 || buf_put(b, "}", 1) < 0)
        return -1;
    return 1;
}

/* heappush(heap, (deadline, trace_id)). 0, or -1 on error. */
static int push_deadline(PyObject *heap, long long deadline, PyObject *trace_id) {
    PyObject *entry = Py_BuildValue("(LO)", deadline, trace_id);
    if (entry == NULL) return -1;
    PyObject *args[2] = {heap, entry};
    PyObject *done = PyObject_Vectorcall(heap_push, args, 2, NULL);
    Py_DECREF(entry);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 0;
}

/* min(a + b, c + d) as Python computes it, when that fits 64 bits (a sum alone may not). 1, else 0. */
static int min_of_sums(long long a, long long b, long long c, long long d, long long *out) {
    __int128 left = (__int128)a + b, right = (__int128)c + d, least = left < right ? left : right;
    if (least > LLONG_MAX || least < LLONG_MIN) return 0;
    *out = (long long)least;
    return 1;
}

/* One new trace: its state into `updates` and its deadlines into the index. 1 done, 0 not sure, -1 error. */
static int open_trace(PyObject *trace_id, PyObject *fold, PyObject *pods, Py_ssize_t sample_lines, long long opened,
                      long long updated, long long gap_ns, long long longest_ns, PyObject *updates, PyObject *due,
                      PyObject *wall, PyObject *event, Buf *b, long long *last) {
    FoldView v;
    Py_ssize_t key_len;
    if (!PyUnicode_CheckExact(trace_id) || !view_fold(fold, &v)) return 0;
    const char *key = PyUnicode_AsUTF8AndSize(trace_id, &key_len);
    if (key == NULL) {
        PyErr_Clear(); /* lone surrogates: `trace_id.encode()` raises in the reference */
        return 0;
    }
    if (memchr(key, 0, (size_t)key_len) != NULL) return 0; /* a NUL: the reference reads the store */
    int put = put_new_state(b, trace_id, &v, pods, sample_lines, opened, updated, last);
    if (put <= 0) return put;
    long long wall_ns, event_ns;
    if (!min_of_sums(updated, gap_ns, opened, longest_ns, &wall_ns) ||
        !min_of_sums(*last, gap_ns, v.first, longest_ns, &event_ns))
        return 0;
    PyObject *state = PyBytes_FromStringAndSize(b->data, b->len);
    PyObject *key_bytes = PyBytes_FromStringAndSize(key, key_len);
    PyObject *deadlines = Py_BuildValue("(LL)", wall_ns, event_ns);
    int failed = state == NULL || key_bytes == NULL || deadlines == NULL || PyDict_SetItem(updates, key_bytes, state) < 0 ||
                 PyDict_SetItem(due, trace_id, deadlines) < 0 || push_deadline(wall, wall_ns, trace_id) < 0 ||
                 push_deadline(event, event_ns, trace_id) < 0;
    Py_XDECREF(state);
    Py_XDECREF(key_bytes);
    Py_XDECREF(deadlines);
    return failed ? -1 : 1;
}

PyDoc_STRVAR(new_states_doc,
"new_states(folds, due, pods, sample_lines, opened_ns, updated_ns, gap_ns, longest_ns, updates, wall, event)\n"
"-> (rest, latest)\n\n"
"For each trace of `folds` (trace id -> fold) not in `due`, in order: updates[trace_id.encode()] = the\n"
"encoded state of apply_fold(new_state(trace_id, opened_ns), fold, sources, sample_lines, updated_ns), and\n"
"its deadlines set in the index (`due`, `wall`, `event`: DeadlineIndex.parts()), as the reference does.\n"
"`pods` holds each source's pod (sources[i].get(\"pod\")). `rest`: the trace ids left to the reference, in\n"
"order; `latest`: the highest `last` of the states written, None when none was.");

static PyObject *new_states(PyObject *self, PyObject *args) {
    PyObject *folds, *due, *pods, *updates, *wall, *event;
    Py_ssize_t sample_lines;
    long long opened, updated, gap_ns, longest_ns;
    if (!PyArg_ParseTuple(args, "O!O!O!nLLLLO!O!O!:new_states", &PyDict_Type, &folds, &PyDict_Type, &due,
                          &PyList_Type, &pods, &sample_lines, &opened, &updated, &gap_ns, &longest_ns, &PyDict_Type,
                          &updates, &PyList_Type, &wall, &PyList_Type, &event))
        return NULL;
    if (orjson_dumps == NULL || heap_push == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "new_states needs orjson and heapq");
        return NULL;
    }
    PyObject *rest = PyList_New(0), *result = NULL;
    Buf b = {NULL, 0, 0};
    long long latest = 0;
    int any = 0;
    Py_ssize_t pos = 0;
    PyObject *trace_id, *fold;
    if (rest == NULL) return NULL;
    while (PyDict_Next(folds, &pos, &trace_id, &fold)) {
        long long last;
        int known = PyDict_Contains(due, trace_id);
        int done = known < 0 ? -1 : known ? 0 : open_trace(trace_id, fold, pods, sample_lines, opened, updated, gap_ns,
                                                             longest_ns, updates, due, wall, event, &b, &last);
        if (done < 0) goto failed;
        if (done == 0) {
            if (PyList_Append(rest, trace_id) < 0) goto failed;
        } else if (!any || last > latest) {
            latest = last;
            any = 1;
        }
    }
    result = any ? Py_BuildValue("(OL)", rest, latest) : Py_BuildValue("(OO)", rest, Py_None);
failed:
    Py_DECREF(rest);
    PyMem_Free(b.data);
    return result;
}

/* orjson.dumps and heapq.heappush, kept for the process; without them new_states raises. */
static void new_states_init(void) {
    PyObject *orjson = PyImport_ImportModule("orjson"), *heapq = PyImport_ImportModule("heapq");
    if (orjson != NULL) orjson_dumps = PyObject_GetAttrString(orjson, "dumps");
    if (heapq != NULL) heap_push = PyObject_GetAttrString(heapq, "heappush");
    Py_XDECREF(orjson);
    Py_XDECREF(heapq);
    PyErr_Clear();
}

#endif
