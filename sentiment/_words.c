/* The word features of already normalised texts (sentiment/text.py,
 * WordFeatures.from_normalized) looked up in the word vocabulary, in one
 * call for a whole batch: tokens, negation marking, bigrams, contrast and
 * lexicon features, then each feature's column. In Python the features
 * were the largest part of a text's model time (string joins and list
 * building, then a dictionary lookup per feature).
 *
 * The same features as the Python code, by construction: the same token
 * rule as text._TOKEN ([a-zñç0-9_]+(?:'[a-z]+)? or one of !?¡¿.,;:, with
 * the apostrophe dropped as tokens() drops it), the same loops over the
 * same Python sets and dictionaries (handed in by sentiment/model.py), and
 * the same vocabulary. Order aside: the caller counts the columns.
 *
 * by_word() serves the character n-grams (char_wb, which never cross a
 * word): each word's columns come from a cache that Python fills (the
 * n-grams of a word it has not seen are made by scikit-learn's own code),
 * so C only cuts the text into words, looks each up and copies its columns.
 *
 * Optional, like _decision.c: without it sentiment/model.py calls the
 * Python code.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int is_word_char(Py_UCS4 c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == 0xF1 /* ñ */
           || c == 0xE7 /* ç */;
}

static int is_punctuation(Py_UCS4 c)
{
    return c == '!' || c == '?' || c == 0xA1 /* ¡ */ || c == 0xBF /* ¿ */ || c == '.' ||
           c == ',' || c == ';' || c == ':';
}

/* A growing array of int64 (the columns found, or each text's count). */
typedef struct {
    int64_t *items;
    Py_ssize_t size, room;
} Column_list;

/* Room for `more` values after the list's size; -1 on error. */
static int reserve(Column_list *list, Py_ssize_t more)
{
    if (list->size + more <= list->room)
        return 0;
    Py_ssize_t room = list->room ? list->room : 1024;
    while (room < list->size + more)
        room *= 2;
    int64_t *items = PyMem_Realloc(list->items, room * sizeof(int64_t));
    if (!items) {
        PyErr_NoMemory();
        return -1;
    }
    list->items = items;
    list->room = room;
    return 0;
}

static int append(Column_list *list, int64_t value)
{
    if (reserve(list, 1) < 0)
        return -1;
    list->items[list->size++] = value;
    return 0;
}

/* (columns, counts) as int64 bytes, what columns() and by_word() return.
 * (A NULL pointer, nothing found, would make None of a y#.) */
static PyObject *columns_and_counts(const Column_list *found, const Column_list *counts)
{
    return Py_BuildValue("(y#y#)", found->items ? (const char *)found->items : "",
                         found->size * (Py_ssize_t)sizeof(int64_t),
                         counts->items ? (const char *)counts->items : "",
                         counts->size * (Py_ssize_t)sizeof(int64_t));
}

/* texts[i] (borrowed) if it is a str; NULL with a TypeError otherwise. */
static PyObject *text_at(PyObject *texts, Py_ssize_t i)
{
    PyObject *text = PyList_GET_ITEM(texts, i);
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "texts must be str");
        return NULL;
    }
    return text;
}

/* The vocabulary as an open-addressing hash table over the keys' Latin-1
 * bytes (every token is Latin-1): a feature is looked up from the bytes
 * it is made of, without a str object made, hashed and freed for it, and
 * a slot holds the column itself where the dict held a pointer to an int
 * object. Under load the dict's lookups were the largest part of a
 * 100-text batch's time in a worker (look_up 13.7 %, with the bigram
 * strings' making and freeing more). Keys with a character beyond Latin-1
 * (no token has one) are left to the dict, which the table keeps. */
typedef struct {
    uint32_t tag;       /* the hash's upper half: most mismatches end here */
    int32_t column;     /* -1: an empty slot */
    uint32_t offset, length;  /* the key's bytes in the arena */
} Slot;

typedef struct {
    Slot *slots;
    uint64_t mask;
    unsigned char *arena;
    PyObject *vocabulary;
} Table;

#define TABLE_NAME "sentiment._words.table"

static uint64_t hash_of(const unsigned char *data, Py_ssize_t size)
{
    uint64_t hash = 14695981039346656037ULL;  /* FNV-1a */
    for (Py_ssize_t i = 0; i < size; i++) {
        hash ^= data[i];
        hash *= 1099511628211ULL;
    }
    /* Spread the low bits, which pick the slot. */
    return hash ^ (hash >> 29);
}

/* The column of the key with these bytes, or -1. */
static int64_t find(const Table *table, const unsigned char *data, Py_ssize_t size)
{
    uint64_t hash = hash_of(data, size);
    uint32_t tag = (uint32_t)(hash >> 32);
    for (uint64_t i = hash & table->mask;; i = (i + 1) & table->mask) {
        const Slot *slot = &table->slots[i];
        if (slot->column < 0)
            return -1;
        if (slot->tag == tag && slot->length == (uint64_t)size
            && memcmp(table->arena + slot->offset, data, size) == 0)
            return slot->column;
    }
}

static void free_table(PyObject *capsule)
{
    Table *table = PyCapsule_GetPointer(capsule, TABLE_NAME);
    if (!table)
        return;
    PyMem_Free(table->slots);
    PyMem_Free(table->arena);
    Py_XDECREF(table->vocabulary);
    PyMem_Free(table);
}

PyDoc_STRVAR(table_doc,
"table(vocabulary) -> table\n\n"
"The vocabulary ({feature: column}) as columns() looks features up in it.");

static PyObject *make_table(PyObject *self, PyObject *vocabulary)
{
    if (!PyDict_Check(vocabulary)) {
        PyErr_SetString(PyExc_TypeError, "the vocabulary must be a dict");
        return NULL;
    }
    /* The items as a list of strong references, and every column read
     * before the table is filled: reading a column may run Python code
     * (an int-like object's __index__), which could change the dict. */
    PyObject *items = PyDict_Items(vocabulary), *capsule = NULL;
    Table *table = PyMem_Calloc(1, sizeof(Table));
    int32_t *columns = NULL;
    if (!items || !table) {
        if (!table)
            PyErr_NoMemory();
        goto error;
    }
    Py_ssize_t count = PyList_GET_SIZE(items), bytes = 0;
    if ((uint64_t)count > (uint64_t)INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "the vocabulary is too large for the table");
        goto error;
    }
    if (!(columns = PyMem_Malloc((count ? count : 1) * sizeof(int32_t)))) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(items, k), 0);
        PyObject *value = PyTuple_GET_ITEM(PyList_GET_ITEM(items, k), 1);
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "the vocabulary's features must be str");
            goto error;
        }
        long long column = PyLong_AsLongLong(value);
        if (column == -1 && PyErr_Occurred())
            goto error;
        if (column < 0 || column > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "a column out of the table's range");
            goto error;
        }
        columns[k] = (int32_t)column;
        if (PyUnicode_KIND(key) == PyUnicode_1BYTE_KIND)
            bytes += PyUnicode_GET_LENGTH(key);
    }
    if (bytes > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "the vocabulary is too large for the table");
        goto error;
    }
    uint64_t size = 8;
    while (size < (uint64_t)count + (uint64_t)count / 2 + 1)
        size *= 2;
    table->mask = size - 1;
    table->slots = PyMem_Malloc(size * sizeof(Slot));
    table->arena = PyMem_Malloc(bytes ? bytes : 1);
    if (!table->slots || !table->arena) {
        PyErr_NoMemory();
        goto error;
    }
    for (uint64_t i = 0; i < size; i++)
        table->slots[i].column = -1;
    /* No Python code from here on: the list and its strings stay as read. */
    uint32_t used = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(items, k), 0);
        if (PyUnicode_KIND(key) != PyUnicode_1BYTE_KIND)
            continue;
        Py_ssize_t length = PyUnicode_GET_LENGTH(key);
        const unsigned char *data = PyUnicode_1BYTE_DATA(key);
        uint64_t hash = hash_of(data, length);
        uint64_t i = hash & table->mask;
        while (table->slots[i].column >= 0)
            i = (i + 1) & table->mask;
        memcpy(table->arena + used, data, length);
        table->slots[i] = (Slot){(uint32_t)(hash >> 32), columns[k], used, (uint32_t)length};
        used += (uint32_t)length;
    }
    Py_INCREF(vocabulary);
    table->vocabulary = vocabulary;
    capsule = PyCapsule_New(table, TABLE_NAME, free_table);
    if (!capsule) {
        Py_DECREF(vocabulary);
        table->vocabulary = NULL;
        goto error;
    }
    Py_DECREF(items);
    PyMem_Free(columns);
    return capsule;
error:
    Py_XDECREF(items);
    PyMem_Free(columns);
    if (table) {
        PyMem_Free(table->slots);
        PyMem_Free(table->arena);
        PyMem_Free(table);
    }
    return NULL;
}

/* One call's arguments, the columns it has found so far, and a buffer for
 * the strings it builds from pieces. */
typedef struct {
    Table *table;
    PyObject *lexicon, *negators, *breakers, *punctuation, *transparent, *contrast,
        *clause_end;
    long scope;
    Column_list *columns;
    Py_UCS1 *buffer;
    Py_ssize_t room;
} Context;

static Py_UCS1 *buffer_of(Context *context, Py_ssize_t size)
{
    if (size > context->room) {
        Py_UCS1 *buffer = PyMem_Realloc(context->buffer, size);
        if (!buffer) {
            PyErr_NoMemory();
            return NULL;
        }
        context->buffer = buffer;
        context->room = size;
    }
    return context->buffer;
}

/* Adds the column of the feature with these Latin-1 bytes, if the
 * vocabulary knows it; -1 on error. */
static int look_up_bytes(Context *context, const unsigned char *data, Py_ssize_t size)
{
    int64_t column = find(context->table, data, size);
    return column < 0 ? 0 : append(context->columns, column);
}

/* look_up_bytes of a str feature (any str: a lexicon's too). */
static int look_up(Context *context, PyObject *feature)
{
    if (PyUnicode_Check(feature) && PyUnicode_KIND(feature) == PyUnicode_1BYTE_KIND)
        return look_up_bytes(context, PyUnicode_1BYTE_DATA(feature),
                             PyUnicode_GET_LENGTH(feature));
    PyObject *column = PyDict_GetItemWithError(context->table->vocabulary, feature);
    if (!column)
        return PyErr_Occurred() ? -1 : 0;
    long long value = PyLong_AsLongLong(column);
    if (value == -1 && PyErr_Occurred())
        return -1;
    return append(context->columns, value);
}

/* prefix + word (both Latin-1, as every token is) in the context's
 * buffer; its length, or -1. */
static Py_ssize_t prefixed_bytes(Context *context, const char *prefix, PyObject *word)
{
    Py_ssize_t p = (Py_ssize_t)strlen(prefix), n = PyUnicode_GET_LENGTH(word);
    Py_UCS1 *buffer = buffer_of(context, p + n);
    if (!buffer)
        return -1;
    memcpy(buffer, prefix, p);
    memcpy(buffer + p, PyUnicode_1BYTE_DATA(word), n);
    return p + n;
}

/* prefix + word as a new str. */
static PyObject *prefixed(Context *context, const char *prefix, PyObject *word)
{
    Py_ssize_t size = prefixed_bytes(context, prefix, word);
    return size < 0 ? NULL : PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, context->buffer,
                                                        size);
}

/* The tokens of normalised text, as text.tokens() gives them: a new list. */
static PyObject *tokens_of(Context *context, PyObject *text)
{
    if (PyUnicode_READY(text) < 0)
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    PyObject *tokens = PyList_New(0);
    Py_UCS1 *buffer = buffer_of(context, n + 1);
    if (!tokens || !buffer)
        goto error;
    for (Py_ssize_t i = 0; i < n;) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        Py_ssize_t size = 0;
        if (is_word_char(c)) {
            while (i < n && is_word_char(c = PyUnicode_READ(kind, data, i))) {
                buffer[size++] = (Py_UCS1)c;
                i++;
            }
            /* (?:'[a-z]+)?, the apostrophe itself dropped (tokens()). */
            if (i + 1 < n && PyUnicode_READ(kind, data, i) == '\'') {
                Py_UCS4 next = PyUnicode_READ(kind, data, i + 1);
                if (next >= 'a' && next <= 'z') {
                    i++;
                    while (i < n && (c = PyUnicode_READ(kind, data, i)) >= 'a' && c <= 'z') {
                        buffer[size++] = (Py_UCS1)c;
                        i++;
                    }
                }
            }
        } else if (is_punctuation(c)) {
            buffer[size++] = (Py_UCS1)c;
            i++;
        } else {
            i++;
            continue;
        }
        PyObject *token = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buffer, size);
        if (!token || PyList_Append(tokens, token) < 0) {
            Py_XDECREF(token);
            goto error;
        }
        Py_DECREF(token);
    }
    return tokens;
error:
    Py_XDECREF(tokens);
    return NULL;
}

/* text.mark_negation: a new list of words. */
static PyObject *marked(Context *context, PyObject *tokens)
{
    PyObject *words = PyList_New(0);
    if (!words)
        return NULL;
    long scope = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tokens); i++) {
        PyObject *token = PyList_GET_ITEM(tokens, i), *word = token;
        int found = PySet_Contains(context->punctuation, token);
        if (found < 0)
            goto error;
        if (found) {
            scope = 0;
            continue;
        }
        if ((found = PySet_Contains(context->breakers, token)) < 0)
            goto error;
        if (found) {
            scope = 0;
            if (PyList_Append(words, token) < 0)
                goto error;
            continue;
        }
        if (scope) {
            if ((found = PySet_Contains(context->transparent, token)) < 0)
                goto error;
            if (!found) {
                scope--;
                if (!(word = prefixed(context, "NEG_", token)))
                    goto error;
                int failed = PyList_Append(words, word);
                Py_DECREF(word);
                if (failed < 0)
                    goto error;
                word = NULL;
            }
        }
        if (word && PyList_Append(words, word) < 0)
            goto error;
        if ((found = PySet_Contains(context->negators, token)) < 0)
            goto error;
        if (found)
            scope = context->scope;
    }
    return words;
error:
    Py_DECREF(words);
    return NULL;
}

static int bigrams(Context *context, PyObject *words)
{
    for (Py_ssize_t i = 0; i + 1 < PyList_GET_SIZE(words); i++) {
        PyObject *left = PyList_GET_ITEM(words, i), *right = PyList_GET_ITEM(words, i + 1);
        Py_ssize_t l = PyUnicode_GET_LENGTH(left), r = PyUnicode_GET_LENGTH(right);
        Py_UCS1 *buffer = buffer_of(context, l + 1 + r);
        if (!buffer)
            return -1;
        memcpy(buffer, PyUnicode_1BYTE_DATA(left), l);
        buffer[l] = ' ';
        memcpy(buffer + l + 1, PyUnicode_1BYTE_DATA(right), r);
        if (look_up_bytes(context, buffer, l + 1 + r) < 0)
            return -1;
    }
    return 0;
}

/* text.contrast_features. */
static int after_contrast(Context *context, PyObject *tokens)
{
    int after = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tokens); i++) {
        PyObject *token = PyList_GET_ITEM(tokens, i);
        int found = PySet_Contains(context->clause_end, token);
        if (found < 0)
            return -1;
        if (found) {
            after = 0;
            continue;
        }
        if ((found = PySet_Contains(context->contrast, token)) < 0)
            return -1;
        if (found) {
            after = 1;
            continue;
        }
        if (!after)
            continue;
        if ((found = PySet_Contains(context->punctuation, token)) < 0)
            return -1;
        if (found)
            continue;
        Py_ssize_t size = prefixed_bytes(context, "AFTER_BUT_", token);
        if (size < 0 || look_up_bytes(context, context->buffer, size) < 0)
            return -1;
    }
    return 0;
}

static int features_of(Context *context, PyObject *text)
{
    PyObject *tokens = tokens_of(context, text), *words = NULL;
    int result = -1;
    if (!tokens || !(words = marked(context, tokens)))
        goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++)
        if (look_up(context, PyList_GET_ITEM(words, i)) < 0)
            goto done;
    if (bigrams(context, words) < 0 || after_contrast(context, tokens) < 0)
        goto done;
    if (context->lexicon != Py_None) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++) {
            PyObject *feature = PyDict_GetItemWithError(context->lexicon,
                                                        PyList_GET_ITEM(words, i));
            if (!feature) {
                if (PyErr_Occurred())
                    goto done;
                continue;
            }
            int truth = PyObject_IsTrue(feature);
            if (truth < 0 || (truth && look_up(context, feature) < 0))
                goto done;
        }
    }
    result = 0;
done:
    Py_XDECREF(tokens);
    Py_XDECREF(words);
    return result;
}

PyDoc_STRVAR(columns_doc,
"columns(texts, table, lexicon, negators, breakers, punctuation, transparent,\n"
"        contrast, clause_end, scope) -> (columns, counts)\n\n"
"The vocabulary columns of every word feature of each normalised text (a\n"
"list of str), as text.WordFeatures.from_normalized makes them, repeats\n"
"kept, unknown features left out: columns as int64 bytes, all texts one\n"
"after another, and counts (int64 bytes) how many of them each text has.\n"
"lexicon: {word: feature} or None; the sets as in sentiment/text.py.");

static PyObject *columns(PyObject *self, PyObject *args)
{
    PyObject *texts, *table;
    Context context = {0};
    if (!PyArg_ParseTuple(args, "O!OOOOOOOOl", &PyList_Type, &texts, &table,
                          &context.lexicon, &context.negators, &context.breakers,
                          &context.punctuation, &context.transparent, &context.contrast,
                          &context.clause_end, &context.scope))
        return NULL;
    if (!(context.table = PyCapsule_GetPointer(table, TABLE_NAME)))
        return NULL;
    if (context.lexicon != Py_None && !PyDict_Check(context.lexicon)) {
        PyErr_SetString(PyExc_TypeError, "lexicon must be a dict or None");
        return NULL;
    }
    PyObject *sets[] = {context.negators, context.breakers, context.punctuation,
                        context.transparent, context.contrast, context.clause_end};
    for (size_t i = 0; i < sizeof(sets) / sizeof(*sets); i++) {
        if (!PyAnySet_Check(sets[i])) {
            PyErr_SetString(PyExc_TypeError, "the word sets must be sets");
            return NULL;
        }
    }
    Column_list found = {0}, counts = {0};
    context.columns = &found;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(texts); i++) {
        PyObject *text = text_at(texts, i);
        Py_ssize_t before = found.size;
        if (!text || features_of(&context, text) < 0
            || append(&counts, found.size - before) < 0)
            goto done;
    }
    result = columns_and_counts(&found, &counts);
done:
    PyMem_Free(found.items);
    PyMem_Free(counts.items);
    PyMem_Free(context.buffer);
    return result;
}

/* Append the int64 values in `columns` (bytes) to `list`. */
static int extend(Column_list *list, PyObject *columns)
{
    if (!PyBytes_Check(columns) || PyBytes_GET_SIZE(columns) % sizeof(int64_t)) {
        PyErr_SetString(PyExc_TypeError, "a word's columns must be int64 bytes");
        return -1;
    }
    Py_ssize_t count = PyBytes_GET_SIZE(columns) / (Py_ssize_t)sizeof(int64_t);
    if (reserve(list, count) < 0)
        return -1;
    memcpy(list->items + list->size, PyBytes_AS_STRING(columns), count * sizeof(int64_t));
    list->size += count;
    return 0;
}

PyDoc_STRVAR(by_word_doc,
"by_word(texts, cache, missing) -> (columns, counts)\n\n"
"The columns of each text (a list of str) word by word, as str.split() cuts\n"
"it: cache[word] (int64 bytes), or missing(word) for a word not in the cache\n"
"(it gives the bytes, and may keep them in the cache). The result as for\n"
"columns(). For character n-grams that never cross a word (char_wb).");

static PyObject *by_word(PyObject *self, PyObject *args)
{
    PyObject *texts, *cache, *missing;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyList_Type, &texts, &PyDict_Type, &cache, &missing))
        return NULL;
    if (!PyCallable_Check(missing)) {
        PyErr_SetString(PyExc_TypeError, "missing must be callable");
        return NULL;
    }
    Column_list found = {0}, counts = {0};
    PyObject *result = NULL;
    /* missing() is Python code that could change the list: its size is
     * read again each time round. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(texts); i++) {
        PyObject *text = text_at(texts, i);
        PyObject *words = text ? PyUnicode_Split(text, NULL, -1) : NULL;
        if (!words)
            goto done;
        Py_ssize_t before = found.size;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(words); j++) {
            PyObject *word = PyList_GET_ITEM(words, j);
            PyObject *columns = PyDict_GetItemWithError(cache, word);
            if (columns)
                Py_INCREF(columns);
            else if (!PyErr_Occurred())
                columns = PyObject_CallOneArg(missing, word);
            int failed = !columns || extend(&found, columns) < 0;
            Py_XDECREF(columns);
            if (failed) {
                Py_DECREF(words);
                goto done;
            }
        }
        Py_DECREF(words);
        if (append(&counts, found.size - before) < 0)
            goto done;
    }
    result = columns_and_counts(&found, &counts);
done:
    PyMem_Free(found.items);
    PyMem_Free(counts.items);
    return result;
}

static PyMethodDef methods[] = {
    {"columns", columns, METH_VARARGS, columns_doc},
    {"table", make_table, METH_O, table_doc},
    {"by_word", by_word, METH_VARARGS, by_word_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_words",
    "The word features in C (see sentiment/_words.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__words(void)
{
    return PyModule_Create(&module);
}
