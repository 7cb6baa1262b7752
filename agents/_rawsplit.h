/* The parse stage's read of a raw record's bytes (split_raw) and the join of its encoded entries into a
 * parsed record (join_parsed): included once, by agents/_linescan.c, after the line scan it shares with
 * `split` (line_fields, FieldSpec). Every function is static.
 */
#ifndef LOGWEAVE_RAWSPLIT_H
#define LOGWEAVE_RAWSPLIT_H

#include "parsers/_logfmt.h"

/* ---- The parse stage reading a raw record's bytes: no str, list or int per line ----------------------
 *
 * Why: `split` takes lines orjson decoded into Python lists, and the parsed entries it makes are encoded by
 * orjson again; decoding the raw record, building the entries and encoding them cost ~0.75 us per line, two
 * thirds of the parse stage. A raw record written by orjson already holds each line's text as the JSON string
 * the parsed record needs, and its position and stream too: `split_raw` reads the record's bytes, unescapes
 * each text into a scratch buffer only to scan it (the same `line_fields` as `split`), and writes each parsed
 * entry's encoding straight into its partition's buffer, copying the literals as they stand.
 *
 * It answers only for a record exactly as orjson writes a raw chunk (version 1 or 2: key order, no white
 * space, every string in orjson's escaping, integers within 64 bits, each line a list of an integer, two
 * strings and two integers); for any other record it answers None before any output, and the caller decodes
 * the record and parses it with `split` and the reference. A line it is not sure of goes to `slow`, as in
 * `split`. tests/unit/agents/test_parse_raw.py holds its records byte-equal to the decoded path's.
 *
 * A segment whose source is parsed as logfmt (first, or after JSON: `source_of` says which) has each common
 * logfmt line turned into its record's JSON text first (agents/parsers/_logfmt.h, as its `logfmt_json` does
 * for decoded lines), which is scanned and written as the entry's text; every
 * other line of such a segment goes to `slow`, which runs the source's parser chain.
 */

/* One partition's entries of the segment being read, each written without its `[<source index>` (the
 * merge writes that, agents/encoded_lines.py), and where each ends in the body (native uint32). */
typedef struct {
    Buf body, ends;
} PartOut;

/* A raw line entry [pos, "text", "stream", source_ns, flags] in orjson's exact form: its literals. */
typedef struct {
    const char *pos_at, *pos_after, *text_at, *text_after, *stream_at, *stream_after;
    int text_escaped, stream_escaped;
    long long pos, source_ns, flags;
} RawEntry;

/* Reads it, the text unescaped into `text` (emptied first); NULL when it is not in that form, or (with an
 * error set) memory ran out. */
static const char *read_raw_entry(const char *p, const char *end, RawEntry *e, Buf *text) {
    if (p >= end || *p++ != '[') return NULL;
    e->pos_at = p;
    if ((p = canonical_int(p, end, &e->pos)) == NULL || p >= end || *p != ',') return NULL;
    e->pos_after = p++;
    e->text_at = p;
    text->len = 0;
    if ((p = canonical_unescape(p, end, text, &e->text_escaped)) == NULL || p >= end || *p != ',') return NULL;
    e->text_after = p++;
    e->stream_at = p;
    if ((p = canonical_string(p, end, &e->stream_escaped)) == NULL || p >= end || *p != ',') return NULL;
    e->stream_after = p++;
    if ((p = canonical_int(p, end, &e->source_ns)) == NULL || p >= end || *p++ != ',') return NULL;
    if ((p = canonical_int(p, end, &e->flags)) == NULL || p >= end || *p++ != ']') return NULL;
    return p;
}

static int put_end(PartOut *part) {
    if (part->body.len > (Py_ssize_t)UINT32_MAX) { /* a body past 4 GiB: its ends would not fit */
        PyErr_SetString(PyExc_OverflowError, "split_raw: one partition's entries of a record exceed 4 GiB");
        return -1;
    }
    uint32_t at = (uint32_t)part->body.len;
    return buf_put(&part->ends, (const char *)&at, (Py_ssize_t)sizeof at);
}

/* A level name as it stands in JSON (printable ASCII without `"` or `\`), else NULL: the reference encodes it. */
static const char *plain_name(PyObject *name, Py_ssize_t *len) {
    const char *text = PyUnicode_AsUTF8AndSize(name, len);
    if (text == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < *len; i++)
        if (!plain_ascii[(unsigned char)text[i]]) return NULL;
    return text;
}

/* The parsed entry of a line the scan understood, into its partition's buffer. */
static int put_parsed(PartOut *part, const char *sid_at, const char *sid_after, const RawEntry *e,
                      const LineFields *got, const char *level, Py_ssize_t level_len, const char *text_at,
                      const char *text_after) {
    Buf *b = &part->body;
    Py_ssize_t service_len = got->service_len < 0 ? 0 : got->service_len;
    if (buf_reserve(b, (sid_after - sid_at) + (e->pos_after - e->pos_at) + 24 + got->trace_len + level_len +
                           service_len + (text_after - text_at) + (e->stream_after - e->stream_at) + 16) < 0)
        return -1;
    char *o = b->data + b->len;
#define PUT(src, n) (memcpy(o, (src), (size_t)(n)), o += (n))
    *o++ = ',';
    PUT(sid_at, sid_after - sid_at);
    *o++ = ',';
    PUT(e->pos_at, e->pos_after - e->pos_at);
    *o++ = ',';
    b->len = o - b->data;
    if (put_int(b, got->time_ns, 0) < 0) return -1; /* room reserved: put_int does not move the data */
    o = b->data + b->len;
    PUT(",\"", 2);
    PUT(got->trace, got->trace_len);
    PUT("\",\"", 3);
    PUT(level, level_len);
    PUT("\",\"", 3);
    if (service_len > 0) PUT(got->service, service_len); /* no service: NULL, which memcpy may not take */
    PUT("\",", 2);
    PUT(text_at, text_after - text_at);
    *o++ = ',';
    PUT(e->stream_at, e->stream_after - e->stream_at);
    *o++ = ']';
#undef PUT
    b->len = o - b->data;
    return put_end(part);
}

/* What `slow` gave for one line: None (a dead letter, recorded by it), or (partition, orjson's encoding of the
 * entry, source index 0), appended to that partition without its `[0`. 0 done, -1 an error is set. */
static int put_slow(PyObject *given, PartOut *parts, long partitions, long *touched, long *n_touched) {
    if (given == Py_None) return 0;
    PyObject *number, *encoded;
    if (!PyTuple_Check(given) || PyTuple_GET_SIZE(given) != 2 || !PyLong_Check(number = PyTuple_GET_ITEM(given, 0)) ||
        !PyBytes_Check(encoded = PyTuple_GET_ITEM(given, 1))) {
        PyErr_SetString(PyExc_TypeError, "slow() must return None or (partition, encoded entry)");
        return -1;
    }
    long partition = PyLong_AsLong(number);
    if (partition == -1 && PyErr_Occurred()) return -1;
    const char *data = PyBytes_AS_STRING(encoded);
    Py_ssize_t len = PyBytes_GET_SIZE(encoded);
    if (partition < 0 || partition >= partitions || len < 4 || memcmp(data, "[0,", 3) != 0 || data[len - 1] != ']') {
        PyErr_SetString(PyExc_ValueError, "slow() gave a partition out of range or an entry not of source 0");
        return -1;
    }
    PartOut *part = &parts[partition];
    if (part->ends.len == 0) touched[(*n_touched)++] = partition;
    return buf_put(&part->body, data + 2, len - 2) < 0 ? -1 : put_end(part);
}

/* The outputs of the segment just read, {partition: (body, ends)}, and the partition buffers emptied. */
static PyObject *segment_outputs(PartOut *parts, long *touched, long *n_touched) {
    PyObject *out = PyDict_New();
    for (long i = 0; out != NULL && i < *n_touched; i++) {
        PartOut *part = &parts[touched[i]];
        PyObject *key = PyLong_FromLong(touched[i]);
        PyObject *value = Py_BuildValue("(y#y#)", part->body.data ? part->body.data : "", part->body.len,
                                        part->ends.data ? part->ends.data : "", part->ends.len);
        if (key == NULL || value == NULL || PyDict_SetItem(out, key, value) < 0) Py_CLEAR(out);
        Py_XDECREF(key);
        Py_XDECREF(value);
        part->body.len = part->ends.len = 0;
    }
    *n_touched = 0;
    return out;
}

/* The buffers of a split_raw call, kept for the next one: fresh buffers for every record cost page faults and
 * copies while they grew (a tenth of the split). Only a call that finds them free takes them (`slow` could call
 * split_raw again); a buffer grown past KEPT_CAP is given back after the call. */
#define KEPT_CAP (4 << 20)
typedef struct {
    PartOut *parts;
    long *touched;
    long partitions; /* the room in `parts` and `touched` */
    Buf scratch;
    int busy;
} Workspace;

static Workspace kept_workspace;

/* `kept_workspace` when free, else `fresh` (zeroed); NULL when memory ran out (an error is set). */
static Workspace *workspace_take(Workspace *fresh, long partitions) {
    Workspace *w = kept_workspace.busy ? fresh : &kept_workspace;
    if (w->partitions < partitions) {
        PartOut *parts = PyMem_Realloc(w->parts, (size_t)partitions * sizeof *parts);
        if (parts == NULL) return (Workspace *)PyErr_NoMemory();
        memset(parts + w->partitions, 0, (size_t)(partitions - w->partitions) * sizeof *parts);
        w->parts = parts;
        long *touched = PyMem_Realloc(w->touched, (size_t)partitions * sizeof *touched);
        if (touched == NULL) return (Workspace *)PyErr_NoMemory();
        w->touched = touched;
        w->partitions = partitions;
    }
    w->busy = 1;
    return w;
}

static void buf_release(Buf *b, int keep) {
    b->len = 0;
    if (!keep || b->cap > KEPT_CAP) {
        PyMem_Free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

static void workspace_give(Workspace *w) {
    int keep = w == &kept_workspace;
    for (long i = 0; i < w->partitions; i++) {
        buf_release(&w->parts[i].body, keep);
        buf_release(&w->parts[i].ends, keep);
    }
    buf_release(&w->scratch, keep);
    w->busy = 0;
    if (!keep) {
        PyMem_Free(w->parts);
        PyMem_Free(w->touched);
    }
}

/* Source modes `source_of` answers with: read as JSON lines, or logfmt first, or JSON then logfmt. */
enum { MODE_JSON = 1, MODE_LOGFMT = 2, MODE_JSON_LOGFMT = 3 };

/* A logfmt segment's line (unescaped in `text`) as its record's JSON text in `json`, and that text as the JSON
 * string literal an entry holds in `literal`: 1; 0 when the line is not common logfmt (the chain takes it);
 * -1 when memory ran out. */
static int logfmt_line(Record *r, const Buf *text, Buf *json, Buf *literal) {
    Py_ssize_t n = logfmt_common(text->data, text->len);
    if (n < 0 || !read_record(r, text->data, n)) return 0;
    Py_ssize_t size = record_json_len(r);
    json->len = literal->len = 0;
    if (buf_reserve(json, size) < 0) return -1;
    record_json_write(r, json->data);
    json->len = size;
    if (buf_reserve(literal, 2 * size + 2) < 0) return -1; /* printable ASCII: a quote or backslash takes two */
    char *o = literal->data;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)json->data[i];
        if (c == '"' || c == '\\') o = json_escape_ascii(o, c);
        else *o++ = (char)c;
    }
    *o++ = '"';
    literal->len = o - literal->data;
    return 1;
}

PyDoc_STRVAR(split_raw_doc,
"split_raw(data, fields, levels, partitions, max_bytes, rfc_fast, epoch_unit, source_of, slow, renamed)\n"
"-> (ct, line_count, [{partition: (body, ends)} per segment]) or None\n\n"
"`split` reading a decompressed `logs.raw` record's bytes. For each segment it first calls\n"
"`source_of(segment, src_start, src_end, sid_start, sid_end, ct)` (offsets of the literals in `data`, and\n"
"the record's collection time), which returns False to have the record decoded instead (None is then\n"
"returned), True to read its lines as JSON, or 2 (logfmt first) or 3 (JSON, then logfmt): its common logfmt\n"
"lines are read as their records' JSON text, every other line goes to `slow`. `renamed`: the keys the\n"
"parser chain renames (a logfmt line holding one goes to `slow`). Each output's body holds its parsed\n"
"entries back to back, each as orjson writes it but without its leading `[0`; `ends` holds where each\n"
"entry ends, as native uint32. Lines the scan is not sure of go to\n"
"`slow(segment, start, end)` (the offsets of the raw entry in `data`), which returns None or\n"
"(partition, orjson.dumps(entry)).\n"
"None: the record is not exactly as orjson writes a raw chunk (then neither callback changed anything\n"
"the caller keeps only on success).");

static PyObject *split_raw(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *fields, *levels, *source_of, *slow, *renamed;
    long partitions;
    Py_ssize_t max_bytes;
    int rfc_fast;
    long long epoch_unit;
    if (!PyArg_ParseTuple(args, "y*OO!lnpLOOO:split_raw", &view, &fields, &PyDict_Type, &levels, &partitions,
                          &max_bytes, &rfc_fast, &epoch_unit, &source_of, &slow, &renamed))
        return NULL;
    Record *record = NULL; /* a logfmt segment's pairs, allocated at the first one */
    Buf json = {NULL, 0, 0}, literal = {NULL, 0, 0};
    PyObject *result = NULL, *segments = NULL;
    Workspace fresh = {NULL, NULL, 0, {NULL, 0, 0}, 0}, *w = NULL;
    PartOut *parts = NULL;
    long *touched = NULL, n_touched = 0;
    Buf *scratch = NULL;
    LevelSeen seen = {{0}, 0, NULL};
    PyObject *level_named = NULL; /* the level whose JSON spelling is in level_text (borrowed: `levels` holds it) */
    const char *level_text = "";
    Py_ssize_t level_text_len = 0;
    char trace_seen[MAX_TRACE];
    Py_ssize_t trace_seen_len = -1;
    long trace_part = 0;
    FieldSpec spec;
    if (partitions < 1) {
        PyErr_SetString(PyExc_ValueError, "partitions must be at least 1");
        PyBuffer_Release(&view);
        return NULL;
    }
    if (field_spec_load(&spec, fields) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if ((w = workspace_take(&fresh, partitions)) == NULL || (segments = PyList_New(0)) == NULL) goto done;
    parts = w->parts, touched = w->touched, scratch = &w->scratch;
    const char *base = view.buf, *p = base, *end = base + view.len;
    long long ct = 0, lines = 0;
    int version;
    if (expect(&p, end, "{\"v\":2,\"t\":\"raw\",\"ct\":", 22)) {
        version = 2;
        if ((p = canonical_int(p, end, &ct)) == NULL || !expect(&p, end, ",\"segs\":[", 9)) goto unsure;
        if (expect(&p, end, "]}", 2)) goto finished;
    } else if (expect(&p, end, "{\"v\":1,\"t\":\"raw\",\"src\":", 23)) {
        version = 1;
    } else {
        goto unsure;
    }
    for (Py_ssize_t segment = 0;; segment++) {
        if (version == 2 && !expect(&p, end, "{\"src\":", 7)) goto unsure;
        if (p >= end || *p != '{') goto unsure;
        Cursor c = {p, end};
        if (scan_value(&c, 0) < 0) goto unsure;
        const char *src_at = p, *src_after = c.p;
        p = c.p;
        int sid_escaped;
        if (!expect(&p, end, ",\"sid\":", 7)) goto unsure;
        const char *sid_at = p;
        if ((p = canonical_string(p, end, &sid_escaped)) == NULL) goto unsure;
        const char *sid_after = p;
        if (version == 1 && (!expect(&p, end, ",\"ct\":", 6) || (p = canonical_int(p, end, &ct)) == NULL)) goto unsure;
        if (!expect(&p, end, ",\"lines\":[", 10)) goto unsure;
        PyObject *take = PyObject_CallFunction(source_of, "nnnnnL", segment, (Py_ssize_t)(src_at - base),
                                               (Py_ssize_t)(src_after - base), (Py_ssize_t)(sid_at - base),
                                               (Py_ssize_t)(sid_after - base), ct);
        if (take == NULL) goto done;
        long mode = PyLong_CheckExact(take) ? PyLong_AsLong(take) : PyObject_IsTrue(take);
        Py_DECREF(take);
        if (mode == -1 && PyErr_Occurred()) goto done;
        if (mode < 0 || mode > MODE_JSON_LOGFMT) {
            PyErr_SetString(PyExc_ValueError, "source_of() must return a bool, 2 or 3");
            goto done;
        }
        if (mode == 0) goto unsure;
        if (mode >= MODE_LOGFMT && record == NULL) {
            if ((record = PyMem_Malloc(sizeof *record)) == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            if (load_renamed(record, renamed) < 0) goto done;
        }
        if (!expect(&p, end, "]", 1)) {
            for (;;) {
                RawEntry e;
                const char *entry_at = p;
                if ((p = read_raw_entry(p, end, &e, scratch)) == NULL) {
                    if (PyErr_Occurred()) goto done;
                    goto unsure;
                }
                lines++;
                int known = 0;
                LineFields got;
                const char *text_at = e.text_at, *text_after = e.text_after;
                if (e.flags == 0) {
                    const char *text = scratch->data;
                    Py_ssize_t size = scratch->len;
                    int as_json = mode == MODE_JSON || (mode == MODE_JSON_LOGFMT && size > 0 && text[0] == '{');
                    if (!as_json) { /* a logfmt line: its record's JSON, or the chain */
                        int converted = logfmt_line(record, scratch, &json, &literal);
                        if (converted < 0) goto done;
                        text = converted ? json.data : NULL;
                        size = converted ? json.len : 0;
                        text_at = literal.data, text_after = literal.data + literal.len;
                    }
                    if (text != NULL && size >= 2 && size <= max_bytes && text[0] == '{' && text[size - 1] == '}') {
                        known = line_fields(text, size, &spec.index, levels, rfc_fast, epoch_unit, &seen, &got);
                        if (known < 0) goto done;
                    }
                }
                if (known && got.level != level_named) { /* a stream's lines mostly share a level */
                    level_text_len = 0;
                    level_text = got.level == NULL ? "" : plain_name(got.level, &level_text_len);
                    level_named = level_text != NULL ? got.level : NULL;
                }
                if (known && level_text == NULL) known = 0;
                if (known) {
                    if (!got.timed) got.time_ns = e.source_ns ? e.source_ns : ct;
                    if (got.trace_len != trace_seen_len || memcmp(trace_seen, got.trace, (size_t)got.trace_len) != 0) {
                        memcpy(trace_seen, got.trace, (size_t)got.trace_len); /* at most MAX_TRACE bytes */
                        trace_seen_len = got.trace_len;
                        trace_part = (long)(crc32_of(got.trace, got.trace_len) % (unsigned long)partitions);
                    }
                    PartOut *part = &parts[trace_part];
                    if (part->ends.len == 0) touched[n_touched++] = trace_part;
                    if (put_parsed(part, sid_at, sid_after, &e, &got, level_text, level_text_len, text_at, text_after) < 0)
                        goto done;
                } else {
                    PyObject *given = PyObject_CallFunction(slow, "nnn", segment, (Py_ssize_t)(entry_at - base),
                                                            (Py_ssize_t)(p - base));
                    if (given == NULL) goto done;
                    int put = put_slow(given, parts, partitions, touched, &n_touched);
                    Py_DECREF(given);
                    if (put < 0) goto done;
                }
                if (expect(&p, end, ",", 1)) continue;
                if (expect(&p, end, "]", 1)) break;
                goto unsure;
            }
        }
        PyObject *outputs = segment_outputs(parts, touched, &n_touched);
        if (outputs == NULL) goto done;
        int appended = PyList_Append(segments, outputs);
        Py_DECREF(outputs);
        if (appended < 0) goto done;
        if (!expect(&p, end, "}", 1)) goto unsure;
        if (version == 1) break;
        if (expect(&p, end, ",", 1)) continue;
        if (expect(&p, end, "]}", 2)) break;
        goto unsure;
    }
finished:
    if (p != end) goto unsure;
    result = Py_BuildValue("(LLO)", ct, lines, segments);
    goto done;
unsure:
    result = Py_NewRef(Py_None);
done:
    workspace_give(w != NULL ? w : &fresh);
    PyMem_Free(record);
    PyMem_Free(json.data);
    PyMem_Free(literal.data);
    Py_XDECREF(seen.level);
    Py_XDECREF(segments);
    field_spec_free(&spec);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(join_parsed_doc,
"join_parsed(head, pieces, tail) -> bytes\n\n"
"`head`, then the entries of `pieces` [(source index, body, ends), ...] as `split_raw` writes them, each\n"
"opened with `[<source index>` and separated by commas, then `tail`: a parsed record's `lines` array as\n"
"orjson writes it, within the record's other fields.");

static PyObject *join_parsed(PyObject *self, PyObject *args) {
    Py_buffer head, tail;
    PyObject *pieces;
    if (!PyArg_ParseTuple(args, "y*O!y*:join_parsed", &head, &PyList_Type, &pieces, &tail)) return NULL;
    PyObject *result = NULL;
    Buf out = {NULL, 0, 0};
    if (buf_put(&out, head.buf, head.len) < 0) goto done;
    int first = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pieces); i++) {
        PyObject *piece = PyList_GET_ITEM(pieces, i), *body, *ends;
        long long index;
        if (!PyTuple_Check(piece) || PyTuple_GET_SIZE(piece) != 3 || !PyBytes_Check(body = PyTuple_GET_ITEM(piece, 1)) ||
            !PyBytes_Check(ends = PyTuple_GET_ITEM(piece, 2)) || !exact_int(PyTuple_GET_ITEM(piece, 0), &index) ||
            index < 0 || PyBytes_GET_SIZE(ends) % 4 != 0) {
            PyErr_SetString(PyExc_TypeError, "pieces must be (source index >= 0, body, ends) tuples");
            goto done;
        }
        const char *data = PyBytes_AS_STRING(body);
        Py_ssize_t size = PyBytes_GET_SIZE(body), count = PyBytes_GET_SIZE(ends) / 4;
        char digits[24];
        int n = snprintf(digits, sizeof digits, "[%lld", index);
        if (buf_reserve(&out, size + count * (n + 1)) < 0) goto done;
        uint32_t start = 0;
        for (Py_ssize_t k = 0; k < count; k++) {
            uint32_t stop;
            memcpy(&stop, PyBytes_AS_STRING(ends) + 4 * k, sizeof stop);
            if (stop < start || stop > (uint32_t)size) {
                PyErr_SetString(PyExc_ValueError, "an entry's end lies outside its body");
                goto done;
            }
            char *o = out.data + out.len;
            if (!first) *o++ = ',';
            first = 0;
            memcpy(o, digits, (size_t)n);
            memcpy(o + n, data + start, stop - start);
            out.len = (o + n + (stop - start)) - out.data;
            start = stop;
        }
    }
    if (buf_put(&out, tail.buf, tail.len) < 0) goto done;
    result = PyBytes_FromStringAndSize(out.data, out.len);
done:
    PyMem_Free(out.data);
    PyBuffer_Release(&head);
    PyBuffer_Release(&tail);
    return result;
}

#endif
