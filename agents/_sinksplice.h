/* The drain's splice of sink records into sink documents: included once, by agents/_linescan.c (the
 * extension module agents._linescan holds the parse stage's loops and these; agents/drain_runner.py and
 * sinks/packed.py call them). Every function is static; the JSON reading and writing helpers are
 * core/_chunkjson.h's, the JSON scan (Cursor, scan_value) is _linescan.c's.
 */
#ifndef LOGWEAVE_SINKSPLICE_H
#define LOGWEAVE_SINKSPLICE_H

/* ---- The drain's per-line splice (agents/drain_runner.py, to_sink_lines) ---------------------------
 *
 * Why: building each delivered document in Python (an f-string of the metadata with five orjson.dumps
 * calls, the splice, a SinkLine) cost more than parsing and grouping the line together. This writes
 * each document straight into its bytes: the original JSON object, then the reserved key holding
 * sid, pos, lid, time_ns, trace, level, service, stream and source, byte for byte what the Python
 * reference (`sink_line`) writes, strings escaped as orjson escapes them. Any line it is not sure of
 * (a field of an unexpected type, an integer outside 64 bits, a negative position, strings with
 * surrogates, text already using the reserved key, text not ending in `}` or with non-ASCII before
 * it) goes to the Python `fallback(line, index)`, which returns that line's SinkLine.
 * tests/unit/agents/test_sink_splice.py holds the two paths equal on hostile lines.
 */

enum { SL_LINE_ID, SL_TRACE_ID, SL_TIME_NS, SL_LEVEL, SL_SERVICE, SL_DOCUMENT, SL_OFFSET, SL_INDEX, SL_ORDERED,
       SL_FIELDS };
static const char *const sink_line_names[SL_FIELDS] = {"line_id", "trace_id", "time_ns", "level", "service",
                                                       "document", "offset", "index", "ordered"};
static PyObject *sink_line_attrs[SL_FIELDS];
static PyTypeObject *slot_type; /* the line type whose slot offsets are in slot_offsets (borrowed, checked by id) */
static Py_ssize_t slot_offsets[SL_FIELDS];

/* Where `type` keeps each SinkLine field: a slots class's member descriptors name the offsets, so a
 * line is filled like `__init__` fills it, without a setattr lookup per field. 0 when the type has
 * no such slots (its lines are then filled by setattr). */
static int find_slots(PyTypeObject *type) {
    if (slot_type == type) return 1;
    slot_type = NULL;
    for (int f = 0; f < SL_FIELDS; f++) {
        PyObject *descr = _PyType_Lookup(type, sink_line_attrs[f]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) return 0;
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY)) return 0;
        slot_offsets[f] = member->offset;
    }
    slot_type = type;
    return 1;
}


static int ascii_space(unsigned char c) { /* what str.rstrip strips among ASCII characters */
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* The digest of stream `sid` (a str), cached in `digests`; NULL with an exception on error. Borrowed. */
static PyObject *stream_digest_of(PyObject *digests, PyObject *digest_of, PyObject *sid) {
    PyObject *digest = PyDict_GetItemWithError(digests, sid);
    if (digest != NULL || PyErr_Occurred()) return digest;
    PyObject *made = PyObject_CallOneArg(digest_of, sid);
    if (made == NULL) return NULL;
    int stored = PyDict_SetItem(digests, sid, made);
    Py_DECREF(made);
    return stored < 0 ? NULL : PyDict_GetItemWithError(digests, sid);
}

/* Whether `"key"` (the key between quotes) occurs in t: the reserved key may already be in the text.
 * memmem finds the key's candidates (a search of the whole text, not a call per quote), then the quotes
 * around each are checked. */
static int holds_quoted(const char *t, Py_ssize_t tlen, const char *key, Py_ssize_t klen) {
    const char *end = t + tlen;
    if (klen == 0) return memmem(t, (size_t)tlen, "\"\"", 2) != NULL;
    for (const char *p = t; (p = memmem(p, (size_t)(end - p), key, (size_t)klen)) != NULL; p++) {
        if (p > t && p[-1] == '"' && end - p > klen && p[klen] == '"') return 1;
    }
    return 0;
}

/* The SinkLine of line `index` made in C: NULL without exception when the fallback must make it. */
static PyObject *spliced_line(PyObject *line, Py_ssize_t index, PyObject *sources, const char *key, Py_ssize_t klen,
                              PyObject *digests, PyObject *digest_of, PyTypeObject *line_type, PyObject *offset,
                              PyObject *ordered, Buf *meta, Py_ssize_t *document_size) {
    if (!PyList_CheckExact(line) || PyList_GET_SIZE(line) != 9) return NULL;
    PyObject *sid = PyList_GET_ITEM(line, 1), *trace = PyList_GET_ITEM(line, 4), *level = PyList_GET_ITEM(line, 5);
    PyObject *service = PyList_GET_ITEM(line, 6), *text = PyList_GET_ITEM(line, 7);
    PyObject *stream = PyList_GET_ITEM(line, 8), *time_obj = PyList_GET_ITEM(line, 3);
    long long src, pos, time_ns;
    if (!exact_int(PyList_GET_ITEM(line, 0), &src) || src < 0 || src >= PyList_GET_SIZE(sources)) return NULL;
    if (!exact_int(PyList_GET_ITEM(line, 2), &pos) || pos < 0 || !exact_int(time_obj, &time_ns)) return NULL;
    if (!PyUnicode_CheckExact(text) || !PyUnicode_CheckExact(sid)) return NULL;
    PyObject *source = PyList_GET_ITEM(sources, src);
    if (!PyBytes_CheckExact(source)) return NULL;
    Py_ssize_t tlen;
    const char *t = PyUnicode_AsUTF8AndSize(text, &tlen);
    if (t == NULL) {
        PyErr_Clear();
        return NULL;
    }
    /* the reserved key already in the text: the reference re-serializes the object */
    if (holds_quoted(t, tlen, key, klen)) return NULL;
    if (tlen < 2 || t[tlen - 1] != '}') return NULL;
    Py_ssize_t body = tlen - 1;
    while (body > 0 && ascii_space((unsigned char)t[body - 1])) body--;
    if (body == 0 || (unsigned char)t[body - 1] >= 0x80) return NULL; /* maybe Unicode white space: Python's call */
    int comma = t[body - 1] != '{';

    PyObject *digest = stream_digest_of(digests, digest_of, sid);
    if (digest == NULL) return NULL; /* with the exception set: the caller stops */
    Py_ssize_t dlen;
    const char *d = PyUnicode_CheckExact(digest) ? PyUnicode_AsUTF8AndSize(digest, &dlen) : NULL;
    if (d == NULL) {
        PyErr_Clear();
        return NULL;
    }
    meta->len = 0;
    int ok;
    if (buf_put(meta, "{\"sid\":", 7) < 0) return NULL;
    if ((ok = put_json_str(meta, sid)) <= 0) return NULL;
    if (buf_put(meta, ",\"pos\":", 7) < 0 || put_int(meta, pos, 0) < 0) return NULL;
    Py_ssize_t lid_at = meta->len + 8;
    if (buf_put(meta, ",\"lid\":\"", 8) < 0 || buf_put(meta, d, dlen) < 0 || buf_put(meta, "-", 1) < 0 ||
        put_int(meta, pos, 1) < 0)
        return NULL;
    Py_ssize_t lid_end = meta->len;
    if (buf_put(meta, "\",\"time_ns\":", 12) < 0 || put_int(meta, time_ns, 0) < 0) return NULL;
    if (buf_put(meta, ",\"trace\":", 9) < 0 || (ok = put_json_str(meta, trace)) <= 0) return NULL;
    if (buf_put(meta, ",\"level\":", 9) < 0 || (ok = put_json_str(meta, level)) <= 0) return NULL;
    if (buf_put(meta, ",\"service\":", 11) < 0 || (ok = put_json_str(meta, service)) <= 0) return NULL;
    if (buf_put(meta, ",\"stream\":", 10) < 0 || (ok = put_json_str(meta, stream)) <= 0) return NULL;
    if (buf_put(meta, ",\"source\":", 10) < 0 ||
        buf_put(meta, PyBytes_AS_STRING(source), PyBytes_GET_SIZE(source)) < 0 || buf_put(meta, "}", 1) < 0)
        return NULL;

    Py_ssize_t size = body + comma + klen + 3 + meta->len + 1;
    *document_size = size;
    PyObject *document = PyBytes_FromStringAndSize(NULL, size);
    if (document == NULL) return NULL;
    char *out = PyBytes_AS_STRING(document);
    memcpy(out, t, (size_t)body);
    out += body;
    if (comma) *out++ = ',';
    *out++ = '"';
    memcpy(out, key, (size_t)klen);
    out += klen;
    *out++ = '"';
    *out++ = ':';
    memcpy(out, meta->data, (size_t)meta->len);
    out += meta->len;
    *out = '}';

    PyObject *values[SL_FIELDS] = {NULL};
    values[SL_LINE_ID] = PyUnicode_DecodeASCII(meta->data + lid_at, lid_end - lid_at, NULL);
    values[SL_INDEX] = PyLong_FromSsize_t(index);
    PyObject *made = (values[SL_LINE_ID] && values[SL_INDEX]) ? line_type->tp_alloc(line_type, 0) : NULL;
    if (made != NULL) {
        values[SL_TRACE_ID] = trace;
        values[SL_TIME_NS] = time_obj;
        values[SL_LEVEL] = level;
        values[SL_SERVICE] = service;
        values[SL_DOCUMENT] = document;
        values[SL_OFFSET] = offset;
        values[SL_ORDERED] = ordered;
        if (find_slots(line_type)) {
            for (int f = 0; f < SL_FIELDS; f++) {
                PyObject **slot = (PyObject **)((char *)made + slot_offsets[f]);
                Py_INCREF(values[f]);
                Py_XSETREF(*slot, values[f]);
            }
        } else {
            for (int f = 0; f < SL_FIELDS; f++) {
                if (PyObject_SetAttr(made, sink_line_attrs[f], values[f]) < 0) {
                    Py_CLEAR(made);
                    break;
                }
            }
        }
    }
    Py_XDECREF(values[SL_LINE_ID]);
    Py_XDECREF(values[SL_INDEX]);
    Py_DECREF(document);
    if (made == NULL && !PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "cannot build a sink line");
    return made;
}

PyDoc_STRVAR(sink_lines_doc,
             "sink_lines(lines, sources, reserved_key, digests, digest_of, line_type, offset, ordered, fallback)\n"
             "-> (list of line_type, total document bytes): the delivered documents of one parsed chunk.");

static PyObject *sink_lines(PyObject *self, PyObject *args) {
    PyObject *lines, *sources, *key_obj, *digests, *digest_of, *line_type, *offset, *fallback;
    int ordered_flag;
    if (!PyArg_ParseTuple(args, "O!O!UO!OO!O!pO:sink_lines", &PyList_Type, &lines, &PyList_Type, &sources, &key_obj,
                          &PyDict_Type, &digests, &digest_of, &PyType_Type, &line_type, &PyLong_Type, &offset,
                          &ordered_flag, &fallback))
        return NULL;
    Py_ssize_t klen = 0;
    const char *key = PyUnicode_AsUTF8AndSize(key_obj, &klen);
    if (key == NULL) PyErr_Clear(); /* not encodable: every line the Python way */
    PyObject *ordered = ordered_flag ? Py_True : Py_False;
    Py_ssize_t count = PyList_GET_SIZE(lines);
    PyObject *out = PyList_New(count);
    if (out == NULL) return NULL;
    Buf meta = {NULL, 0, 0};
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        Py_INCREF(line); /* the fallback may run Python code that changes the list */
        Py_ssize_t size = 0;
        PyObject *made = key == NULL ? NULL
                                     : spliced_line(line, i, sources, key, klen, digests, digest_of,
                                                    (PyTypeObject *)line_type, offset, ordered, &meta, &size);
        if (made == NULL && !PyErr_Occurred()) {
            PyObject *index = PyLong_FromSsize_t(i);
            made = index ? PyObject_CallFunctionObjArgs(fallback, line, index, NULL) : NULL;
            Py_XDECREF(index);
            PyObject *document = made ? PyObject_GetAttr(made, sink_line_attrs[SL_DOCUMENT]) : NULL;
            if (document != NULL && PyBytes_Check(document)) {
                size = PyBytes_GET_SIZE(document);
            } else if (made != NULL) {
                if (document != NULL) PyErr_SetString(PyExc_TypeError, "a sink line's document must be bytes");
                Py_CLEAR(made);
            }
            Py_XDECREF(document);
        }
        Py_DECREF(line);
        if (made == NULL) goto fail;
        total += size;
        PyList_SET_ITEM(out, i, made);
        if (PyList_GET_SIZE(lines) != count) {
            PyErr_SetString(PyExc_RuntimeError, "the chunk's lines changed during sink_lines");
            goto fail;
        }
    }
    PyMem_Free(meta.data);
    return Py_BuildValue("(Nn)", out, total);
fail:
    PyMem_Free(meta.data);
    Py_DECREF(out);
    return NULL;
}


/* ---- The same splice reading the sink record's bytes (the group stage's encoding passed through) ------
 *
 * A sink record is a parsed chunk as orjson wrote it: `{"v":1,"t":"parsed","srcs":[…],"lines":[…]}`
 * (and `"unordered":true`), every string in orjson's escaping. `chunk_layout` finds the parts; then
 * `sink_lines_raw` reads each line straight from the bytes: its strings are copied into the document's
 * metadata as they stand (they are already what orjson.dumps would write), the text is unescaped once
 * into the document, and no Python list, int or str is made for what the document alone needs. Any
 * record not exactly of that shape (other key order, white space, a string escaped otherwise than
 * orjson escapes, invalid UTF-8, a field of another type, an integer beyond 64 bits, a negative
 * position, a text the splice is not sure of) answers None, and the caller decodes it with orjson and
 * splices it through `sink_lines` and its Python reference instead.
 */


PyDoc_STRVAR(chunk_layout_doc, "chunk_layout(data) -> (srcs_start, srcs_end, lines_start, lines_end, unordered, ct)\n"
                               "or None: where the parts of a parsed chunk written by orjson are (lines_end: after its\n"
                               "`]`), and its collection time `ct` (None when absent).");

/* The record's fields after the lines are `"unordered":true` (unordered chunks) and `"ct":<int>` (the
 * collection time: the group stage routes by the rules in effect then; the drain does not need it), in
 * that order, each optional: the group stage forwards logs.parsed records as it received them. */
static PyObject *chunk_layout(PyObject *self, PyObject *args) {
    static const char head[] = "{\"v\":1,\"t\":\"parsed\",\"srcs\":";
    static const char tail[] = ",\"unordered\":true";
    static const char ct_key[] = ",\"ct\":";
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:chunk_layout", &view)) return NULL;
    const char *base = view.buf, *p = base, *end = base + view.len;
    PyObject *out = NULL;
    Py_ssize_t head_len = (Py_ssize_t)sizeof head - 1, tail_len = (Py_ssize_t)sizeof tail - 1;
    Py_ssize_t ct_len = (Py_ssize_t)sizeof ct_key - 1;
    if (expect(&p, end, head, head_len) && p < end && *p == '[') {
        Cursor c = {p, end};
        if (scan_value(&c, 0) == 0) {
            const char *srcs_end = c.p;
            p = c.p;
            if (expect(&p, end, ",\"lines\":", 9) && p < end && *p == '[' && end - p >= 3 && end[-1] == '}') {
                const char *stop = end - 1; /* where the fields after the lines end */
                const char *digit = stop;
                long long ct = 0;
                int has_ct = 0;
                while (digit > p && digit[-1] >= '0' && digit[-1] <= '9') digit--;
                if (digit < stop && digit > p && digit[-1] == '-') digit--;
                if (digit < stop && digit - p > ct_len && memcmp(digit - ct_len, ct_key, (size_t)ct_len) == 0 &&
                    canonical_int(digit, stop, &ct) == stop) {
                    stop = digit - ct_len;
                    has_ct = 1;
                }
                int unordered = stop - p > tail_len && memcmp(stop - tail_len, tail, (size_t)tail_len) == 0;
                const char *lines_end = unordered ? stop - tail_len : stop; /* after the lines' `]` */
                PyObject *ct_value = has_ct ? PyLong_FromLongLong(ct) : Py_NewRef(Py_None);
                if (ct_value != NULL && lines_end - p >= 2 && lines_end[-1] == ']')
                    out = Py_BuildValue("(nnnnOO)", head_len, (Py_ssize_t)(srcs_end - base), (Py_ssize_t)(p - base),
                                        (Py_ssize_t)(lines_end - base), unordered ? Py_True : Py_False, ct_value);
                Py_XDECREF(ct_value);
            }
        }
    }
    PyBuffer_Release(&view);
    if (out == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return out;
}


/* One line of a sink record as read: where its fields are in the record, and its document. */
typedef struct {
    ParsedEntry e;
    Py_ssize_t lid_at, lid_end; /* the line id, from the document's start */
    Py_ssize_t size;            /* the document's bytes */
} RawLine;

/* What reading one record's lines keeps from line to line: buffers, and the digest of the last stream. */
typedef struct {
    Buf doc, scratch; /* one document (for sink_lines_raw), unescaping room */
    Literal sid_seen;
    PyObject *digest; /* of sid_seen (owned) */
    const char *key;
    Py_ssize_t klen;
    PyObject *sources, *digests, *digest_of;
} RawReader;

static void raw_reader_free(RawReader *r) {
    Py_XDECREF(r->digest);
    Py_XDECREF(r->sid_seen.value);
    PyMem_Free(r->doc.data);
    PyMem_Free(r->scratch.data);
}

/* Reads the line at *pp (its `[`), leaves *pp after its `]` and appends the line's document to `out`: the
 * text unescaped, then the reserved key and the metadata object, written where they end up (no copy).
 * 1: read; 0: not sure (the record goes the reference way); -1: an error is set. */
static int raw_line(RawReader *r, const char **pp, const char *end, RawLine *l, Buf *out) {
    const char *p = read_entry(*pp, end, &l->e);
    if (p == NULL) return 0;
    if (l->e.src < 0 || l->e.src >= PyList_GET_SIZE(r->sources) || l->e.pos < 0) return 0;
    const char *const *at = l->e.at, *const *after = l->e.after;
    Py_ssize_t sid_len = after[1] - at[1];
    if (r->digest == NULL || r->sid_seen.len != sid_len || memcmp(r->sid_seen.at, at[1], (size_t)sid_len) != 0) {
        PyObject *sid = literal_str(&r->sid_seen, at[1], after[1], l->e.escaped[1], &r->scratch);
        if (sid == NULL) return -1;
        PyObject *found = stream_digest_of(r->digests, r->digest_of, sid);
        Py_DECREF(sid);
        if (found == NULL) return -1;
        Py_INCREF(found);
        Py_XSETREF(r->digest, found);
    }
    Py_ssize_t dlen;
    const char *d = PyUnicode_CheckExact(r->digest) ? PyUnicode_AsUTF8AndSize(r->digest, &dlen) : NULL;
    if (d == NULL) {
        PyErr_Clear();
        return 0;
    }

    /* the text, unescaped: what the reference splices into */
    Py_ssize_t start = out->len;
    if (unescape_into(out, at[7] + 1, after[7] - 1) < 0) return -1;
    const char *t = out->data + start, *key = r->key;
    Py_ssize_t tlen = out->len - start, klen = r->klen;
    int sure = tlen >= 2 && t[tlen - 1] == '}' && !holds_quoted(t, tlen, key, klen);
    Py_ssize_t body = tlen - 1;
    while (sure && body > 0 && ascii_space((unsigned char)t[body - 1])) body--;
    if (!sure || body == 0 || (unsigned char)t[body - 1] >= 0x80) {
        out->len = start;
        return 0;
    }
    int comma = t[body - 1] != '{';
    out->len = start + body;
    if ((comma && buf_put(out, ",", 1) < 0) || buf_put(out, "\"", 1) < 0 || buf_put(out, key, klen) < 0 ||
        buf_put(out, "\":{\"sid\":", 9) < 0 || buf_put(out, at[1], sid_len) < 0 || buf_put(out, ",\"pos\":", 7) < 0 ||
        buf_put(out, at[2], after[2] - at[2]) < 0 || buf_put(out, ",\"lid\":\"", 8) < 0)
        return -1;
    l->lid_at = out->len - start;
    if (buf_put(out, d, dlen) < 0 || buf_put(out, "-", 1) < 0 || put_int(out, l->e.pos, 1) < 0) return -1;
    l->lid_end = out->len - start;
    if (buf_put(out, "\",\"time_ns\":", 12) < 0 || buf_put(out, at[3], after[3] - at[3]) < 0 ||
        buf_put(out, ",\"trace\":", 9) < 0 || buf_put(out, at[4], after[4] - at[4]) < 0 ||
        buf_put(out, ",\"level\":", 9) < 0 || buf_put(out, at[5], after[5] - at[5]) < 0 ||
        buf_put(out, ",\"service\":", 11) < 0 || buf_put(out, at[6], after[6] - at[6]) < 0 ||
        buf_put(out, ",\"stream\":", 10) < 0 || buf_put(out, at[8], after[8] - at[8]) < 0 ||
        buf_put(out, ",\"source\":", 10) < 0)
        return -1;
    PyObject *source = PyList_GET_ITEM(r->sources, l->e.src);
    if (buf_put(out, PyBytes_AS_STRING(source), PyBytes_GET_SIZE(source)) < 0 || buf_put(out, "}}", 2) < 0)
        return -1;
    l->size = out->len - start;
    *pp = p;
    return 1;
}

/* Readies `r` for a record's lines; 0 when the record must go the reference way (no exception set). */
static int raw_reader_init(RawReader *r, PyObject *key_obj, PyObject *sources, PyObject *digests, PyObject *digest_of,
                           Py_buffer *view, Py_ssize_t lines_start, Py_ssize_t lines_end) {
    memset(r, 0, sizeof *r);
    r->sources = sources;
    r->digests = digests;
    r->digest_of = digest_of;
    r->key = PyUnicode_AsUTF8AndSize(key_obj, &r->klen);
    if (r->key == NULL || lines_start < 0 || lines_end > view->len || lines_end - lines_start < 2) {
        PyErr_Clear();
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sources); i++) {
        if (!PyBytes_CheckExact(PyList_GET_ITEM(sources, i))) return 0;
    }
    return 1;
}

PyDoc_STRVAR(sink_lines_raw_doc,
             "sink_lines_raw(data, lines_start, lines_end, sources, reserved_key, digests, digest_of, line_type,\n"
             "offset, ordered) -> (list of line_type, total document bytes), or None when the record must be\n"
             "decoded and spliced the reference way.");

static PyObject *sink_lines_raw(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t lines_start, lines_end;
    PyObject *sources, *key_obj, *digests, *digest_of, *line_type, *offset;
    int ordered_flag;
    if (!PyArg_ParseTuple(args, "y*nnO!UO!OO!O!p:sink_lines_raw", &view, &lines_start, &lines_end, &PyList_Type,
                          &sources, &key_obj, &PyDict_Type, &digests, &digest_of, &PyType_Type, &line_type,
                          &PyLong_Type, &offset, &ordered_flag))
        return NULL;
    PyObject *out = NULL, *result = NULL;
    RawReader r;
    Literal trace_seen = {NULL, 0, NULL}, level_seen = {NULL, 0, NULL}, service_seen = {NULL, 0, NULL};
    PyTypeObject *type = (PyTypeObject *)line_type;
    PyObject *ordered = ordered_flag ? Py_True : Py_False;
    if (!raw_reader_init(&r, key_obj, sources, digests, digest_of, &view, lines_start, lines_end)) goto unsure;
    if (!find_slots(type)) {
        PyErr_Clear();
        goto unsure;
    }
    const char *p = (const char *)view.buf + lines_start, *end = (const char *)view.buf + lines_end;
    Py_ssize_t total = 0;
    if ((out = PyList_New(0)) == NULL) goto done;
    if (*p++ != '[') goto unsure;
    if (*p == ']') {
        if (p + 1 != end) goto unsure;
        goto finished;
    }
    for (Py_ssize_t index = 0;; index++) {
        RawLine l;
        r.doc.len = 0;
        int got = raw_line(&r, &p, end, &l, &r.doc);
        if (got < 0) goto done;
        if (got == 0) goto unsure;
        PyObject *values[SL_FIELDS] = {NULL};
        values[SL_DOCUMENT] = PyBytes_FromStringAndSize(r.doc.data, l.size);
        values[SL_LINE_ID] = PyUnicode_DecodeASCII(r.doc.data + l.lid_at, l.lid_end - l.lid_at, NULL);
        values[SL_TRACE_ID] = literal_str(&trace_seen, l.e.at[E_TRACE], l.e.after[E_TRACE], l.e.escaped[E_TRACE], &r.scratch);
        values[SL_TIME_NS] = PyLong_FromLongLong(l.e.time_ns);
        values[SL_LEVEL] = literal_str(&level_seen, l.e.at[E_LEVEL], l.e.after[E_LEVEL], l.e.escaped[E_LEVEL], &r.scratch);
        values[SL_SERVICE] = literal_str(&service_seen, l.e.at[E_SERVICE], l.e.after[E_SERVICE], l.e.escaped[E_SERVICE], &r.scratch);
        values[SL_OFFSET] = Py_NewRef(offset);
        values[SL_INDEX] = PyLong_FromSsize_t(index);
        values[SL_ORDERED] = Py_NewRef(ordered);
        PyObject *made = NULL;
        int complete = 1;
        for (int f = 0; f < SL_FIELDS; f++) complete &= values[f] != NULL;
        if (complete) made = type->tp_alloc(type, 0);
        if (made != NULL) {
            /* It holds only str, int, bytes and bool, and the drain never stores a container in it: it
             * cannot be part of a cycle, so the collector need not visit it (CPython untracks tuples of
             * atoms the same way). */
            if (PyObject_GC_IsTracked(made)) PyObject_GC_UnTrack(made);
            for (int f = 0; f < SL_FIELDS; f++) { /* the slots take the references */
                PyObject **slot = (PyObject **)((char *)made + slot_offsets[f]);
                Py_XSETREF(*slot, values[f]);
                values[f] = NULL;
            }
        }
        for (int f = 0; f < SL_FIELDS; f++) Py_XDECREF(values[f]);
        if (made == NULL) goto done;
        int appended = PyList_Append(out, made);
        Py_DECREF(made);
        if (appended < 0) goto done;
        total += l.size;
        int next = next_entry(&p, end);
        if (next < 0) goto unsure;
        if (next == 0) break;
    }
finished:
    result = Py_BuildValue("(On)", out, total);
    goto done;
unsure:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(out);
    Py_XDECREF(trace_seen.value);
    Py_XDECREF(level_seen.value);
    Py_XDECREF(service_seen.value);
    raw_reader_free(&r);
    PyBuffer_Release(&view);
    return result;
}

/* ---- The file sink's form of a sink record: one buffer of documents and a table, no object per line ----
 *
 * Why: the file sink appends documents; a SinkLine per line (a str line id, an int index, a bytes
 * document and the rest) cost more than the splice itself, and the sink then joined the documents again.
 * This writes the record's documents straight into one buffer, each followed by a newline, and per line
 * one table entry of three native int64 (PACK_ENTRY): where its document ends in the buffer, its stream
 * position, and its stream's index in `streams` (the digests, in order of first use), which is what the
 * appending sinks' positions and stream marks need, and beside it each line's event time (int64), which
 * the object-store sinks name objects by and bound (sinks/packed.py reads the table; its Python reference
 * `pack_sink_lines` builds the same from the reference's SinkLines, and tests/unit/agents/test_sink_pack.py
 * holds the two equal).
 */

PyDoc_STRVAR(pack_lines_raw_doc,
             "pack_lines_raw(data, lines_start, lines_end, sources, reserved_key, digests, digest_of)\n"
             "-> (documents, table, streams, times), or None when the record must be decoded and spliced the reference way;\n"
             "times: each line's event time as int64 (what the object-store sinks name objects by and check).");

static PyObject *pack_lines_raw(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t lines_start, lines_end;
    PyObject *sources, *key_obj, *digests, *digest_of;
    if (!PyArg_ParseTuple(args, "y*nnO!UO!O:pack_lines_raw", &view, &lines_start, &lines_end, &PyList_Type, &sources,
                          &key_obj, &PyDict_Type, &digests, &digest_of))
        return NULL;
    PyObject *result = NULL, *streams = NULL, *refs = NULL, *documents = NULL, *table = NULL, *times = NULL;
    PyObject *last_digest = NULL; /* borrowed; `refs` keeps every digest seen alive, so no address is reused */
    int64_t ref = -1;
    Buf docs = {NULL, 0, 0}, entries = {NULL, 0, 0}, stamps = {NULL, 0, 0};
    RawReader r;
    if (!raw_reader_init(&r, key_obj, sources, digests, digest_of, &view, lines_start, lines_end)) goto unsure;
    const char *p = (const char *)view.buf + lines_start, *end = (const char *)view.buf + lines_end;
    if ((streams = PyList_New(0)) == NULL || (refs = PyDict_New()) == NULL) goto done;
    if (*p++ != '[') goto unsure;
    if (*p == ']') {
        if (p + 1 != end) goto unsure;
        goto finished;
    }
    for (;;) {
        RawLine l;
        int got = raw_line(&r, &p, end, &l, &docs);
        if (got < 0) goto done;
        if (got == 0) goto unsure;
        if (r.digest != last_digest) {
            PyObject *known = PyDict_GetItemWithError(refs, r.digest);
            if (known != NULL) {
                ref = PyLong_AsLongLong(known);
            } else {
                if (PyErr_Occurred()) goto done;
                ref = PyList_GET_SIZE(streams);
                PyObject *number = PyLong_FromLongLong(ref);
                int stored = number == NULL ? -1 : PyDict_SetItem(refs, r.digest, number);
                Py_XDECREF(number);
                if (stored < 0 || PyList_Append(streams, r.digest) < 0) goto done;
            }
            last_digest = r.digest;
        }
        if (buf_put(&docs, "\n", 1) < 0) goto done;
        int64_t entry[3] = {(int64_t)docs.len, (int64_t)l.e.pos, ref};
        if (buf_put(&entries, (const char *)entry, (Py_ssize_t)sizeof entry) < 0) goto done;
        int64_t stamp = (int64_t)l.e.time_ns;
        if (buf_put(&stamps, (const char *)&stamp, (Py_ssize_t)sizeof stamp) < 0) goto done;
        int next = next_entry(&p, end);
        if (next < 0) goto unsure;
        if (next == 0) break;
    }
finished:
    documents = PyBytes_FromStringAndSize(docs.data ? docs.data : "", docs.len);
    table = documents ? PyBytes_FromStringAndSize(entries.data ? entries.data : "", entries.len) : NULL;
    times = table ? PyBytes_FromStringAndSize(stamps.data ? stamps.data : "", stamps.len) : NULL;
    if (times != NULL) result = PyTuple_Pack(4, documents, table, streams, times);
    goto done;
unsure:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(documents);
    Py_XDECREF(table);
    Py_XDECREF(times);
    Py_XDECREF(streams);
    Py_XDECREF(refs);
    PyMem_Free(docs.data);
    PyMem_Free(entries.data);
    PyMem_Free(stamps.data);
    raw_reader_free(&r);
    PyBuffer_Release(&view);
    return result;
}

#endif
