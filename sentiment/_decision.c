/* The arithmetic of the model's fast path (sentiment/model.py, FastPath)
 * in one call per request instead of some forty numpy calls: counting each
 * row's feature columns, tf weights, idf, each block's l2 norm, and the dot
 * product with the classifier's coefficients.
 *
 * Every operation is the one scikit-learn and scipy perform, in the same
 * order and the same precision, so the scores are theirs to the last bit:
 * float32 tf-idf values, each block's sum of float32 squares added in
 * float64 in column order, float64 division rounded back to float32, then
 * float64 products added in column order from zero, plus the intercept.
 * Compiled with -ffp-contract=off, so no multiply and add are fused where
 * scipy's own loop keeps them apart.
 *
 * Optional: sentiment/model.py uses it when it was built (pip install -e .
 * builds it) and does the same in numpy otherwise.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Each row's distinct columns, ascending, with their counts, without a
 * sort: a count per column, a bit per column and a bit per 64 columns
 * that have any bit set. Marking a row's columns is one pass; reading the
 * bits back in order visits only the set ones (a row of ~250 columns out
 * of ~130,000: a quicksort of the row took half of this file's time).
 * Kept from call to call and left all zero after each row; the GIL is held
 * for the whole of a call, so one set per process serves every thread. */
static uint16_t *seen_count;
static uint64_t *seen_bits, *seen_words;
static Py_ssize_t seen_width;

/* How many of seen_bits's and seen_words's words `width` columns take. */
static Py_ssize_t bit_words(Py_ssize_t width) { return (width + 63) / 64; }
static Py_ssize_t summary_words(Py_ssize_t width) { return (bit_words(width) + 63) / 64; }

static int make_room(Py_ssize_t width)
{
    if (width <= seen_width)
        return 0;
    uint16_t *count = PyMem_Calloc(width, sizeof(uint16_t));
    uint64_t *bits = PyMem_Calloc(bit_words(width), sizeof(uint64_t));
    uint64_t *words = PyMem_Calloc(summary_words(width), sizeof(uint64_t));
    if (!count || !bits || !words) {
        PyMem_Free(count);
        PyMem_Free(bits);
        PyMem_Free(words);
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(seen_count);
    PyMem_Free(seen_bits);
    PyMem_Free(seen_words);
    seen_count = count;
    seen_bits = bits;
    seen_words = words;
    seen_width = width;
    return 0;
}

/* Marks the row's columns; 0, or -1 when a column occurs `limit` times or
 * more (then nothing is left marked). Each new column's idf (packed: and
 * its coefficients beside it, 16 bytes for three classes) is fetched
 * meanwhile, where score_rows waited on each in turn: the model is 2 MB,
 * which the rest of a request pushes out of the core's cache.
 * decision_of_blocks inside 100-text requests, median of 600, six rounds
 * taking turns: 0.45-0.64 -> 0.33-0.47 ms; in a loop over one batch, whose
 * model stays cached, no gain (the thirteenth round's measure). */
static int mark_row(const int64_t *row, Py_ssize_t size, unsigned limit, const float *idf_of,
                    Py_ssize_t idf_stride)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        int64_t c = row[i];
        unsigned count = ++seen_count[c];
        if (count >= limit) {
            for (Py_ssize_t j = 0; j <= i; j++) {
                seen_count[row[j]] = 0;
                seen_bits[row[j] >> 6] = 0;
                seen_words[row[j] >> 12] = 0;
            }
            return -1;
        }
        if (count == 1) {
            if (idf_of)
                __builtin_prefetch(idf_of + c * idf_stride);
            seen_bits[c >> 6] |= (uint64_t)1 << (c & 63);
            seen_words[c >> 12] |= (uint64_t)1 << ((c >> 6) & 63);
        }
    }
    return 0;
}

static int get_buffer(PyObject *object, Py_buffer *view, const char *name, char kind,
                      int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(object, view, flags) < 0)
        return -1;
    const char *format = view->format ? view->format : "B";
    if (*format == '<' || *format == '=' || *format == '@')
        format++;
    int ok;
    switch (kind) {
    case 'i': /* int64 */
        ok = view->itemsize == 8 && (*format == 'l' || *format == 'q');
        break;
    case 'f':
        ok = view->itemsize == 4 && *format == 'f';
        break;
    case 'r': /* float32 or float64 */
        ok = (view->itemsize == 4 && *format == 'f') || (view->itemsize == 8 && *format == 'd');
        break;
    default: /* 'd' */
        ok = view->itemsize == 8 && *format == 'd';
        break;
    }
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: wrong item type '%s'", name, view->format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#define ADD_PRODUCTS(real_t) {                                             \
        const real_t *coef_of = (const real_t *)m->coef_of;                   \
        const real_t *intercept_of = m->intercept.buf;                        \
        real_t *score = (real_t *)m->out.buf + r * k;                         \
        /* One class at a time, its sum in a register: summed through the    \
         * output array, each addition waited for the store of the one       \
         * before it. Each class gets the same additions, in order. */      \
        for (Py_ssize_t c = 0; c < k; c++) {                                  \
            real_t sum = 0;                                                   \
            for (Py_ssize_t i = 0; i < size_m; i++)                           \
                sum += (real_t)values[i] * coef_of[distinct[i] * coef_stride + c]; \
            score[c] = sum + intercept_of[c];                                 \
        }                                                                     \
    }

/* The model's side of a call: weights, idf, starts, coef, intercept, out. */
typedef struct {
    Py_buffer weights, idf, starts, coef, intercept, out;
    int have_idf;
    char real;          /* 'f' or 'd': the coefficients' type */
    Py_ssize_t k, width, n_weights, n_starts;
    /* Where column c's idf and coefficients are: idf_of[c * idf_stride],
     * coef_of[c * coef_stride] onwards (packed: both in coef's rows). */
    const float *idf_of;
    const char *coef_of;
    Py_ssize_t idf_stride, coef_stride;
} Model;

static void release_model(Model *m)
{
    Py_buffer *views[] = {&m->weights, &m->idf, &m->starts, &m->coef, &m->intercept, &m->out};
    for (size_t i = 0; i < sizeof(views) / sizeof(*views); i++)
        if (views[i]->obj)
            PyBuffer_Release(views[i]);
}

/* The model's buffers, checked against each other and n_rows; -1 on error
 * (release_model then still to be called). */
static int open_model(Model *m, PyObject *weights, PyObject *idf, PyObject *starts,
                      PyObject *coef, PyObject *intercept, PyObject *out, Py_ssize_t n_rows,
                      int packed)
{
    m->have_idf = idf != Py_None;
    if (packed && m->have_idf) {
        PyErr_SetString(PyExc_ValueError, "packed coefficients hold the idf: idf must be None");
        return -1;
    }
    if (get_buffer(weights, &m->weights, "weights", 'f', 0) < 0 ||
        (m->have_idf && get_buffer(idf, &m->idf, "idf", 'f', 0) < 0) ||
        get_buffer(starts, &m->starts, "starts", 'i', 0) < 0 ||
        get_buffer(coef, &m->coef, "coef", 'r', 0) < 0)
        return -1;
    /* The scores in the coefficients' type, float32 or float64, as scipy's
     * product of a float32 matrix with them. */
    m->real = m->coef.itemsize == 4 ? 'f' : 'd';
    if (get_buffer(intercept, &m->intercept, "intercept", m->real, 0) < 0 ||
        get_buffer(out, &m->out, "out", m->real, 1) < 0)
        return -1;
    Py_ssize_t size_of = m->coef.itemsize;
    m->k = m->intercept.len / size_of;
    m->n_weights = m->weights.len / 4;
    m->n_starts = m->starts.len / 8;
    if (packed && m->real != 'f') {
        PyErr_SetString(PyExc_TypeError, "packed coefficients must be float32");
        return -1;
    }
    Py_ssize_t row = m->k + (packed ? 1 : 0);
    if (m->k < 1 || m->coef.len / size_of % row != 0) {
        PyErr_SetString(PyExc_ValueError, "coef and intercept disagree");
        return -1;
    }
    m->width = m->coef.len / size_of / row;
    if (n_rows < 0 || m->out.len / size_of != n_rows * m->k ||
        (m->have_idf && m->idf.len / 4 != m->width)) {
        PyErr_SetString(PyExc_ValueError, "the arrays' sizes disagree");
        return -1;
    }
    m->coef_stride = row;
    if (packed) {
        m->have_idf = 1;
        m->idf_of = m->coef.buf;
        m->idf_stride = row;
        m->coef_of = (const char *)m->coef.buf + size_of;
    } else {
        m->idf_of = m->have_idf ? m->idf.buf : NULL;
        m->idf_stride = 1;
        m->coef_of = m->coef.buf;
    }
    return 0;
}

/* The scores of n_rows rows into m->out: row r's columns (each checked to
 * be in range already) are order[row_start[r]] to order[row_start[r + 1]],
 * in any order, repeats kept. Py_True, Py_False (a count beyond the
 * weights table: out unfinished), or NULL with an error. */
static PyObject *score_rows(const Model *m, const int64_t *order, const Py_ssize_t *row_start,
                            Py_ssize_t n_rows)
{
    Py_ssize_t n = row_start[n_rows], k = m->k;
    const int64_t *block_start = m->starts.buf;
    const float *weight = m->weights.buf, *idf_of = m->idf_of;
    Py_ssize_t idf_stride = m->idf_stride, coef_stride = m->coef_stride;
    int have_idf = m->have_idf;
    PyObject *result = NULL;
    int64_t *distinct = PyMem_Malloc((n ? n : 1) * sizeof(int64_t));
    float *values = PyMem_Malloc((n ? n : 1) * sizeof(float));
    if (!distinct || !values) {
        PyErr_NoMemory();
        goto done;
    }
    if (make_room(m->width) < 0)
        goto done;
    /* A count past the table, or past what a seen_count holds, is numpy's. */
    unsigned limit = m->n_weights < UINT16_MAX ? (unsigned)m->n_weights : UINT16_MAX;
    Py_ssize_t n_words = summary_words(m->width);
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        const int64_t *row = order + row_start[r];
        Py_ssize_t size = row_start[r + 1] - row_start[r];
        if (mark_row(row, size, limit, idf_of, idf_stride) < 0) {
            result = Py_False;
            goto done;
        }
        /* Each distinct column once, ascending, weighed by how often it
         * occurs; everything marked is cleared on the way. */
        Py_ssize_t size_m = 0;
        for (Py_ssize_t w = 0; w < n_words; w++) {
            uint64_t word = seen_words[w];
            if (!word)
                continue;
            seen_words[w] = 0;
            do {
                Py_ssize_t b = w * 64 + __builtin_ctzll(word);
                uint64_t bits = seen_bits[b];
                seen_bits[b] = 0;
                do {
                    int64_t c = b * 64 + __builtin_ctzll(bits);
                    float value = weight[seen_count[c]];
                    seen_count[c] = 0;
                    if (have_idf)
                        value *= idf_of[c * idf_stride];
                    distinct[size_m] = c;
                    values[size_m++] = value;
                    bits &= bits - 1;
                } while (bits);
                word &= word - 1;
            } while (word);
        }
        /* Each block's l2 norm: float32 squares added in float64. */
        for (Py_ssize_t first = 0, b = 0; first < size_m; b++) {
            int64_t end = b < m->n_starts ? block_start[b] : INT64_MAX;
            Py_ssize_t last = first;
            double total = 0.0;
            while (last < size_m && distinct[last] < end) {
                float square = values[last] * values[last];
                total += (double)square;
                last++;
            }
            if (total != 0.0) {
                double norm = sqrt(total);
                for (Py_ssize_t i = first; i < last; i++)
                    values[i] = (float)((double)values[i] / norm);
            }
            first = last;
        }
        /* csr_matvecs: from zero, each product added in column order. */
        if (m->real == 'f')
            ADD_PRODUCTS(float)
        else
            ADD_PRODUCTS(double)
    }
    result = Py_True;
done:
    PyMem_Free(distinct);
    PyMem_Free(values);
    return result;
}

PyDoc_STRVAR(decision_doc,
"decision(rows, columns, n_rows, weights, idf, starts, coef, intercept, out) -> bool\n\n"
"For each of n_rows rows, the decision scores of its tf-idf features into\n"
"out (n_rows x k). columns (int64) are every feature occurrence,\n"
"repeats kept, in any order; rows (int64, the row of each, or None when\n"
"n_rows is 1). weights (float32): the tf weight of a count, by count. idf\n"
"(float32, one per column, or None). starts (int64): the first column of\n"
"each block after the first; each block of a row gets its own l2 norm.\n"
"coef (float32 or float64, columns x k, C order), intercept and out of its type.\n"
"False, with out unfinished, when a count is beyond the weights table.");

static PyObject *decision(PyObject *self, PyObject *args)
{
    PyObject *rows_obj, *columns_obj, *weights_obj, *idf_obj, *starts_obj, *coef_obj,
        *intercept_obj, *out_obj;
    Py_ssize_t n_rows;
    if (!PyArg_ParseTuple(args, "OOnOOOOOO", &rows_obj, &columns_obj, &n_rows, &weights_obj,
                          &idf_obj, &starts_obj, &coef_obj, &intercept_obj, &out_obj))
        return NULL;

    Py_buffer rows = {0}, columns = {0};
    Model m = {0};
    int have_rows = rows_obj != Py_None;
    PyObject *result = NULL;
    int64_t *order = NULL;
    Py_ssize_t *row_start = NULL;

    if ((have_rows && get_buffer(rows_obj, &rows, "rows", 'i', 0) < 0) ||
        get_buffer(columns_obj, &columns, "columns", 'i', 0) < 0 ||
        open_model(&m, weights_obj, idf_obj, starts_obj, coef_obj, intercept_obj, out_obj,
                   n_rows, 0) < 0)
        goto done;
    Py_ssize_t n = columns.len / 8;
    if ((have_rows && rows.len / 8 != n) || (!have_rows && n_rows != 1)) {
        PyErr_SetString(PyExc_ValueError, "the arrays' sizes disagree");
        goto done;
    }
    const int64_t *row_of = rows.buf, *column_of = columns.buf;
    order = PyMem_Malloc((n ? n : 1) * sizeof(int64_t));
    row_start = PyMem_Calloc(n_rows + 2, sizeof(Py_ssize_t));
    if (!order || !row_start) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (column_of[i] < 0 || column_of[i] >= m.width ||
            (have_rows && (row_of[i] < 0 || row_of[i] >= n_rows))) {
            PyErr_SetString(PyExc_ValueError, "a row or column out of range");
            goto done;
        }
    }
    /* Every row's columns together: a counting sort by row. */
    if (have_rows) {
        for (Py_ssize_t i = 0; i < n; i++)
            row_start[row_of[i] + 2]++;
        for (Py_ssize_t r = 2; r <= n_rows + 1; r++)
            row_start[r] += row_start[r - 1];
        for (Py_ssize_t i = 0; i < n; i++)
            order[row_start[row_of[i] + 1]++] = column_of[i];
    } else {
        memcpy(order, column_of, n * sizeof(int64_t));
        row_start[1] = n;
    }
    result = score_rows(&m, order, row_start, n_rows);

done:
    PyMem_Free(order);
    PyMem_Free(row_start);
    if (rows.obj)
        PyBuffer_Release(&rows);
    if (columns.obj)
        PyBuffer_Release(&columns);
    release_model(&m);
    Py_XINCREF(result);
    return result;
}

PyDoc_STRVAR(decision_of_blocks_doc,
"decision_of_blocks(blocks, n_rows, weights, idf, starts, coef, intercept, out,\n"
"                   packed=False) -> bool\n\n"
"decision() of the columns that each vectorizer found, as they come out\n"
"of sentiment/_words.c: blocks is a list of (columns, counts, offset), the\n"
"columns (int64 bytes) of row 0, then of row 1 and so on, counts (int64\n"
"bytes) how many each of the n_rows rows has, and offset what to add to\n"
"each (the block's first column in coef). packed: each row of coef (float32,\n"
"columns x (k + 1)) is the column's idf then its k coefficients, and idf is\n"
"None: one fetch from memory per column where there were two. The rest as\n"
"for decision().");

static PyObject *decision_of_blocks(PyObject *self, PyObject *args)
{
    PyObject *blocks_obj, *weights_obj, *idf_obj, *starts_obj, *coef_obj, *intercept_obj,
        *out_obj;
    Py_ssize_t n_rows;
    int packed = 0;
    if (!PyArg_ParseTuple(args, "O!nOOOOOO|p", &PyList_Type, &blocks_obj, &n_rows, &weights_obj,
                          &idf_obj, &starts_obj, &coef_obj, &intercept_obj, &out_obj, &packed))
        return NULL;
    Model m = {0};
    PyObject *result = NULL;
    int64_t *order = NULL, *offsets = NULL;
    Py_ssize_t *row_start = NULL, *next = NULL;
    const int64_t **columns = NULL, **counts = NULL;
    /* A tuple of the blocks, each a tuple: what they hold stays alive and
     * unchanged whatever Python code an offset's __index__ runs. */
    PyObject *blocks = PyList_AsTuple(blocks_obj);
    if (!blocks)
        return NULL;
    Py_ssize_t n_blocks = PyTuple_GET_SIZE(blocks);
    columns = PyMem_Calloc(n_blocks ? n_blocks : 1, sizeof(*columns));
    counts = PyMem_Calloc(n_blocks ? n_blocks : 1, sizeof(*counts));
    offsets = PyMem_Calloc(n_blocks ? n_blocks : 1, sizeof(*offsets));
    if (!columns || !counts || !offsets) {
        PyErr_NoMemory();
        goto done;
    }
    if (open_model(&m, weights_obj, idf_obj, starts_obj, coef_obj, intercept_obj, out_obj,
                   n_rows, packed) < 0)
        goto done;
    if (!(row_start = PyMem_Calloc(n_rows + 1, sizeof(Py_ssize_t))) ||
        !(next = PyMem_Calloc(n_rows + 1, sizeof(Py_ssize_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    /* Each block checked; each row's size over all blocks. */
    for (Py_ssize_t b = 0; b < n_blocks; b++) {
        PyObject *block = PyTuple_GET_ITEM(blocks, b), *columns_obj, *counts_obj;
        long long offset;
        if (!PyTuple_Check(block) || PyTuple_GET_SIZE(block) != 3 ||
            !PyBytes_Check(columns_obj = PyTuple_GET_ITEM(block, 0)) ||
            !PyBytes_Check(counts_obj = PyTuple_GET_ITEM(block, 1))) {
            PyErr_SetString(PyExc_TypeError,
                            "a block must be (columns, counts, offset), int64 bytes and an int");
            goto done;
        }
        if ((offset = PyLong_AsLongLong(PyTuple_GET_ITEM(block, 2))) == -1 && PyErr_Occurred())
            goto done;
        Py_ssize_t total = PyBytes_GET_SIZE(columns_obj) / 8;
        if (PyBytes_GET_SIZE(columns_obj) % 8 || PyBytes_GET_SIZE(counts_obj) != n_rows * 8) {
            PyErr_SetString(PyExc_ValueError, "a block's sizes disagree with n_rows");
            goto done;
        }
        columns[b] = (const int64_t *)PyBytes_AS_STRING(columns_obj);
        counts[b] = (const int64_t *)PyBytes_AS_STRING(counts_obj);
        offsets[b] = offset;
        Py_ssize_t seen = 0;
        for (Py_ssize_t r = 0; r < n_rows; r++) {
            if (counts[b][r] < 0 || counts[b][r] > total - seen) {
                PyErr_SetString(PyExc_ValueError, "a block's counts disagree with its columns");
                goto done;
            }
            seen += counts[b][r];
            row_start[r + 1] += counts[b][r];
        }
        if (seen != total) {
            PyErr_SetString(PyExc_ValueError, "a block's counts disagree with its columns");
            goto done;
        }
        for (Py_ssize_t i = 0; i < total; i++) {
            int64_t column = columns[b][i];
            if (column < 0 || offset < 0 || offset >= m.width || column >= m.width - offset) {
                PyErr_SetString(PyExc_ValueError, "a row or column out of range");
                goto done;
            }
        }
    }
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        row_start[r + 1] += row_start[r];
        next[r] = row_start[r];
    }
    Py_ssize_t n = row_start[n_rows];
    if (!(order = PyMem_Malloc((n ? n : 1) * sizeof(int64_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    /* Every row's columns together, block after block. */
    for (Py_ssize_t b = 0; b < n_blocks; b++) {
        const int64_t *column_of = columns[b];
        for (Py_ssize_t r = 0; r < n_rows; r++)
            for (int64_t j = 0; j < counts[b][r]; j++)
                order[next[r]++] = *column_of++ + offsets[b];
    }
    result = score_rows(&m, order, row_start, n_rows);

done:
    Py_DECREF(blocks);
    PyMem_Free(columns);
    PyMem_Free(counts);
    PyMem_Free(offsets);
    PyMem_Free(order);
    PyMem_Free(row_start);
    PyMem_Free(next);
    release_model(&m);
    Py_XINCREF(result);
    return result;
}

static PyMethodDef methods[] = {
    {"decision", decision, METH_VARARGS, decision_doc},
    {"decision_of_blocks", decision_of_blocks, METH_VARARGS, decision_of_blocks_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_decision",
    "The fast path's arithmetic in C (see sentiment/_decision.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__decision(void)
{
    return PyModule_Create(&module);
}
