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
 * more (then nothing is left marked). */
static int mark_row(const int64_t *row, Py_ssize_t size, unsigned limit)
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
        const real_t *coef_of = coef.buf, *intercept_of = intercept.buf;      \
        real_t *score = (real_t *)out.buf + r * k;                            \
        for (Py_ssize_t c = 0; c < k; c++)                                    \
            score[c] = 0;                                                     \
        for (Py_ssize_t i = 0; i < m; i++) {                                  \
            real_t value = (real_t)values[i];                                 \
            const real_t *coefficients = coef_of + distinct[i] * k;           \
            for (Py_ssize_t c = 0; c < k; c++)                                \
                score[c] += value * coefficients[c];                          \
        }                                                                     \
        for (Py_ssize_t c = 0; c < k; c++)                                    \
            score[c] += intercept_of[c];                                      \
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

    Py_buffer rows = {0}, columns = {0}, weights = {0}, idf = {0}, starts = {0}, coef = {0},
              intercept = {0}, out = {0};
    int have_rows = rows_obj != Py_None, have_idf = idf_obj != Py_None;
    PyObject *result = NULL;
    int64_t *order = NULL, *distinct = NULL;
    float *values = NULL;
    Py_ssize_t *row_start = NULL;

    if ((have_rows && get_buffer(rows_obj, &rows, "rows", 'i', 0) < 0) ||
        get_buffer(columns_obj, &columns, "columns", 'i', 0) < 0 ||
        get_buffer(weights_obj, &weights, "weights", 'f', 0) < 0 ||
        (have_idf && get_buffer(idf_obj, &idf, "idf", 'f', 0) < 0) ||
        get_buffer(starts_obj, &starts, "starts", 'i', 0) < 0 ||
        get_buffer(coef_obj, &coef, "coef", 'r', 0) < 0)
        goto done;
    /* The scores in the coefficients' type, float32 or float64, as scipy's
     * product of a float32 matrix with them. */
    char real = coef.itemsize == 4 ? 'f' : 'd';
    if (get_buffer(intercept_obj, &intercept, "intercept", real, 0) < 0 ||
        get_buffer(out_obj, &out, "out", real, 1) < 0)
        goto done;

    Py_ssize_t size_of = coef.itemsize;
    Py_ssize_t n = columns.len / 8, k = intercept.len / size_of, n_weights = weights.len / 4;
    Py_ssize_t n_starts = starts.len / 8;
    if (k < 1 || coef.len / size_of % k != 0) {
        PyErr_SetString(PyExc_ValueError, "coef and intercept disagree");
        goto done;
    }
    Py_ssize_t width = coef.len / size_of / k;
    if (n_rows < 0 || out.len / size_of != n_rows * k || (have_rows && rows.len / 8 != n) ||
        (!have_rows && n_rows != 1) || (have_idf && idf.len / 4 != width)) {
        PyErr_SetString(PyExc_ValueError, "the arrays' sizes disagree");
        goto done;
    }
    const int64_t *row_of = rows.buf, *column_of = columns.buf, *block_start = starts.buf;
    const float *weight = weights.buf, *idf_of = idf.buf;

    order = PyMem_Malloc((n ? n : 1) * sizeof(int64_t));
    distinct = PyMem_Malloc((n ? n : 1) * sizeof(int64_t));
    values = PyMem_Malloc((n ? n : 1) * sizeof(float));
    row_start = PyMem_Calloc(n_rows + 2, sizeof(Py_ssize_t));
    if (!order || !distinct || !values || !row_start) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (column_of[i] < 0 || column_of[i] >= width ||
            (have_rows && (row_of[i] < 0 || row_of[i] >= n_rows))) {
            PyErr_SetString(PyExc_ValueError, "a row or column out of range");
            goto done;
        }
    }
    if (make_room(width) < 0)
        goto done;
    /* A count past the table, or past what a seen_count holds, is numpy's. */
    unsigned limit = n_weights < UINT16_MAX ? (unsigned)n_weights : UINT16_MAX;
    Py_ssize_t n_words = summary_words(width);
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

    for (Py_ssize_t r = 0; r < n_rows; r++) {
        int64_t *row = order + row_start[r];
        Py_ssize_t size = row_start[r + 1] - row_start[r];
        if (mark_row(row, size, limit) < 0) {
            result = Py_False;
            goto done;
        }
        /* Each distinct column once, ascending, weighed by how often it
         * occurs; everything marked is cleared on the way. */
        Py_ssize_t m = 0;
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
                        value *= idf_of[c];
                    distinct[m] = c;
                    values[m++] = value;
                    bits &= bits - 1;
                } while (bits);
                word &= word - 1;
            } while (word);
        }
        /* Each block's l2 norm: float32 squares added in float64. */
        for (Py_ssize_t first = 0, b = 0; first < m; b++) {
            int64_t end = b < n_starts ? block_start[b] : INT64_MAX;
            Py_ssize_t last = first;
            double total = 0.0;
            while (last < m && distinct[last] < end) {
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
        if (real == 'f')
            ADD_PRODUCTS(float)
        else
            ADD_PRODUCTS(double)
    }
    result = Py_True;

done:
    PyMem_Free(order);
    PyMem_Free(distinct);
    PyMem_Free(values);
    PyMem_Free(row_start);
    Py_buffer *views[] = {&rows, &columns, &weights, &idf, &starts, &coef, &intercept, &out};
    for (size_t i = 0; i < sizeof(views) / sizeof(*views); i++)
        if (views[i]->obj)
            PyBuffer_Release(views[i]);
    Py_XINCREF(result);
    return result;
}

static PyMethodDef methods[] = {
    {"decision", decision, METH_VARARGS, decision_doc},
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
