/* Kafka's murmur2 of a record key in C: the hash the Java client's default partitioner, librdkafka's
 * murmur2 partitioner and aiokafka's DefaultPartitioner pick a key's partition by. aiokafka's is pure
 * Python (a few microseconds a key, a fifth of the Kafka sink's CPU on a batch of many traces); this
 * gives the same unsigned 32-bit value (kafka_io/key_partitions.py; tests/unit/kafka_io/
 * test_key_partitions.py checks it against aiokafka's on generated keys).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static uint32_t murmur2_of(const unsigned char *data, Py_ssize_t length) {
    const uint32_t m = 0x5bd1e995u;
    const int r = 24;
    uint32_t h = 0x9747b28cu ^ (uint32_t)length;
    Py_ssize_t whole = length / 4;
    for (Py_ssize_t i = 0; i < whole; i++) {
        const unsigned char *p = data + 4 * i;
        uint32_t k = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const unsigned char *tail = data + (length & ~(Py_ssize_t)3);
    switch (length % 4) {
        case 3: h ^= (uint32_t)tail[2] << 16; /* fall through */
        case 2: h ^= (uint32_t)tail[1] << 8;  /* fall through */
        case 1: h ^= (uint32_t)tail[0]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

static PyObject *murmur2(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "murmur2 takes bytes");
        return NULL;
    }
    return PyLong_FromUnsignedLong(murmur2_of((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

static PyMethodDef methods[] = {
    {"murmur2", murmur2, METH_O, "Kafka's murmur2 of a key (unsigned 32-bit), as aiokafka.partitioner.murmur2"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_murmur2", "kafka_io/key_partitions.py's hash in C", -1,
                                    methods};

PyMODINIT_FUNC PyInit__murmur2(void) { return PyModule_Create(&module); }
