/* The word features of already normalised texts (sentiment/text.py,
 * WordFeatures.from_normalized) looked up in the word vocabulary, in one
 * call for a whole batch: tokens, negation marking, bigrams, contrast and
 * lexicon features, then each feature's column. In Python the features
 * were the largest part of a text's model time (string joins and list
 * building, then a dictionary lookup per feature).
 *
 * The same features as the Python code, by construction: the same token
 * rule as text._TOKEN ([a-zñç0-9_]+(?:'[a-z]+)? or one of !?¡¿.,;:, with
 * the apostrophe dropped as tokens() drops it), the same loops asking the
 * same Python sets and lexicon about each token (their answers read into
 * the table when it is made, table()), and the same vocabulary. Order
 * aside: the caller counts the columns.
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
    if (more > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(int64_t) - list->size) {
        PyErr_NoMemory();
        return -1;
    }
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

/* Append `count` values; -1 on error. */
static int append_all(Column_list *list, const int64_t *values, Py_ssize_t count)
{
    if (reserve(list, count) < 0)
        return -1;
    if (count)  /* an empty list may have no items yet: no memcpy from NULL */
        memcpy(list->items + list->size, values, count * sizeof(int64_t));
    list->size += count;
    return 0;
}

/* Room for `size` bytes at *buffer (at least twice the room before, if it
 * grows); -1 on error. */
static int bytes_room(Py_UCS1 **buffer, Py_ssize_t *room, Py_ssize_t size)
{
    if (size <= *room)
        return 0;
    Py_ssize_t grow = size > 2 * *room ? size : 2 * *room;
    Py_UCS1 *grown = PyMem_Realloc(*buffer, grow);
    if (!grown) {
        PyErr_NoMemory();
        return -1;
    }
    *buffer = grown;
    *room = grow;
    return 0;
}

/* Room in `found` for about as many columns as the texts have characters
 * times `per_char`, and in `counts` for one per text, before any is
 * appended: grown from nothing, by doubling, a 100-text batch's character
 * n-grams (~20,000 columns) were copied five times over. Texts must be a
 * list of str (checked as they are read). A guess, not a limit, and at
 * most PRESIZE_MAX characters' worth: beyond that the lists grow as they
 * fill. */
enum { PRESIZE_MAX = 1 << 20 };

static int presize(Column_list *found, Column_list *counts, PyObject *texts, Py_ssize_t per_char)
{
    Py_ssize_t characters = 0, n = PyList_GET_SIZE(texts);
    for (Py_ssize_t i = 0; i < n && characters < PRESIZE_MAX; i++) {
        PyObject *text = PyList_GET_ITEM(texts, i);
        if (PyUnicode_Check(text))
            characters += PyUnicode_GET_LENGTH(text);
    }
    if (characters > PRESIZE_MAX)
        characters = PRESIZE_MAX;
    if (n > PRESIZE_MAX)
        n = PRESIZE_MAX;
    return reserve(found, characters * per_char + 1) < 0 || reserve(counts, n + 1) < 0 ? -1 : 0;
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
 * object. The same slots also say what text.py's word sets and lexicon
 * say of the word, so a text's tokens are classified by the one lookup
 * that finds their column: no str per token, no set lookups (under load
 * the word features were 11 % of a 100-text batch's worker time, most of
 * it making tokens and asking sets about them). A key with a character
 * beyond Latin-1 can never be made from tokens and is left out. */
enum { NEGATOR = 1, BREAKER = 2, PUNCTUATION = 4, TRANSPARENT = 8, CONTRAST = 16, CLAUSE_END = 32 };
#define USED (1u << 31)

typedef struct {
    uint32_t tag;       /* the hash's upper half: most mismatches end here */
    int32_t column;     /* in the vocabulary, or -1 */
    int32_t lexicon;    /* the column of the word's lexicon feature, or -1 */
    uint32_t flags;     /* the word sets it is in; USED: not an empty slot */
    uint32_t offset, length;  /* the key's bytes in the arena */
} Slot;

typedef struct {
    Slot *slots;
    uint64_t mask;
    unsigned char *arena;
    uint32_t used;
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

/* The slot of the key with these bytes and hash_of() hash, or NULL. */
static const Slot *find_hashed(const Table *table, const unsigned char *data, Py_ssize_t size,
                               uint64_t hash)
{
    uint32_t tag = (uint32_t)(hash >> 32);
    for (uint64_t i = hash & table->mask;; i = (i + 1) & table->mask) {
        const Slot *slot = &table->slots[i];
        if (!slot->flags)
            return NULL;
        if (slot->tag == tag && slot->length == (uint64_t)size
            && memcmp(table->arena + slot->offset, data, size) == 0)
            return slot;
    }
}

/* The slot of the key with these bytes, or NULL. */
static const Slot *find(const Table *table, const unsigned char *data, Py_ssize_t size)
{
    return find_hashed(table, data, size, hash_of(data, size));
}

/* A key to look up among others (find_all). */
typedef struct {
    const unsigned char *data;
    Py_ssize_t size;
    uint64_t hash;
    const Slot *slot;
} Lookup;

/* find() of each key, with the memory each needs fetched for all of them
 * first: its first slot, then the bytes of the key there that it will be
 * compared with. Under load a text's lookups each waited on memory twice
 * (the table is 3 MB), one after the other; this way the waits overlap. */
static void find_all(const Table *table, Lookup *keys, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        keys[i].hash = hash_of(keys[i].data, keys[i].size);
        __builtin_prefetch(&table->slots[keys[i].hash & table->mask]);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t tag = (uint32_t)(keys[i].hash >> 32);
        for (uint64_t j = keys[i].hash & table->mask;; j = (j + 1) & table->mask) {
            const Slot *slot = &table->slots[j];
            if (!slot->flags)
                break;
            if (slot->tag == tag && slot->length == (uint64_t)keys[i].size) {
                __builtin_prefetch(table->arena + slot->offset);
                break;
            }
        }
    }
    for (Py_ssize_t i = 0; i < n; i++)
        keys[i].slot = find_hashed(table, keys[i].data, keys[i].size, keys[i].hash);
}

/* The slot of a Latin-1 key, made empty (no column, no lexicon feature, in
 * no set) if it was not there: the arena has room for every key. */
static Slot *slot_for(Table *table, PyObject *key)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(key);
    const unsigned char *data = PyUnicode_1BYTE_DATA(key);
    Slot *slot = (Slot *)find(table, data, length);
    if (slot)
        return slot;
    uint64_t hash = hash_of(data, length);
    uint64_t i = hash & table->mask;
    while (table->slots[i].flags)
        i = (i + 1) & table->mask;
    memcpy(table->arena + table->used, data, length);
    table->slots[i] = (Slot){(uint32_t)(hash >> 32), -1, -1, USED, table->used, (uint32_t)length};
    table->used += (uint32_t)length;
    return &table->slots[i];
}

static void free_table(PyObject *capsule)
{
    Table *table = PyCapsule_GetPointer(capsule, TABLE_NAME);
    if (!table)
        return;
    PyMem_Free(table->slots);
    PyMem_Free(table->arena);
    PyMem_Free(table);
}

/* by_word()'s own cache of the columns of the words it has seen, by the
 * word's Latin-1 bytes (what nearly every normalised word is): the words of
 * a text are cut and looked up without a str object made, hashed and freed
 * for each, and the columns lie in one array. Under load a Python dict
 * lookup of a word took 40 ns, mostly waiting on memory (the dict's entry,
 * then the key's str to compare). Emptied when it holds `limit` words. */
typedef struct {
    uint32_t tag, length;   /* length 0: an empty slot (a word has a byte) */
    uint32_t offset;        /* the word's bytes in keys */
    uint32_t first, count;  /* its columns: columns[first] onwards */
} Known;

typedef struct {
    Known *slots;
    uint64_t mask;
    Py_ssize_t used, limit;
    Py_UCS1 *keys;                  /* every word's bytes, one after another */
    Py_ssize_t keys_size, keys_room;
    Column_list columns;            /* every word's columns, one after another */
} Word_cache;

#define WORD_CACHE_NAME "sentiment._words.word_cache"

/* The slot of the word with these bytes and hash_of() hash, or NULL. */
static const Known *known(const Word_cache *cache, const unsigned char *data, Py_ssize_t size,
                          uint64_t hash)
{
    uint32_t tag = (uint32_t)(hash >> 32);
    for (uint64_t i = hash & cache->mask;; i = (i + 1) & cache->mask) {
        const Known *slot = &cache->slots[i];
        if (!slot->length)
            return NULL;
        if (slot->tag == tag && slot->length == (uint64_t)size
            && memcmp(cache->keys + slot->offset, data, size) == 0)
            return slot;
    }
}

/* known()'s probe, asking for memory instead of comparing: the bytes and
 * columns of the first slot whose tag and length match (the one the word
 * will nearly always be found in), so that known() finds them cached. */
static void fetch_known(const Word_cache *cache, Py_ssize_t size, uint64_t hash)
{
    uint32_t tag = (uint32_t)(hash >> 32);
    for (uint64_t i = hash & cache->mask;; i = (i + 1) & cache->mask) {
        const Known *slot = &cache->slots[i];
        if (!slot->length)
            return;
        if (slot->tag == tag && slot->length == (uint64_t)size) {
            __builtin_prefetch(cache->keys + slot->offset);
            if (cache->columns.items) {
                __builtin_prefetch(cache->columns.items + slot->first);
                if (slot->count > 8)
                    __builtin_prefetch(cache->columns.items + slot->first + 8);
            }
            return;
        }
    }
}

static void forget_all(Word_cache *cache)
{
    memset(cache->slots, 0, (cache->mask + 1) * sizeof(Known));
    cache->used = 0;
    cache->keys_size = cache->columns.size = 0;
}

/* Keeps the word's columns (int64, `count` of them); -1 on error. A word
 * already there (another thread's, while missing() ran) is left as it is.
 * `hash`: hash_of() the word's bytes. */
static int remember_word(Word_cache *cache, const unsigned char *data, Py_ssize_t size,
                         uint64_t hash, const int64_t *columns, Py_ssize_t count)
{
    if (known(cache, data, size, hash) || size > UINT32_MAX || count > UINT32_MAX)
        return 0;  /* (too large: never the case for a word; just not kept) */
    if (cache->used >= cache->limit || cache->keys_size + size > UINT32_MAX
        || cache->columns.size + count > UINT32_MAX)
        forget_all(cache);
    Py_ssize_t first = cache->columns.size;
    if (bytes_room(&cache->keys, &cache->keys_room, cache->keys_size + size) < 0 ||
        append_all(&cache->columns, columns, count) < 0)
        return -1;
    uint64_t i = hash & cache->mask;
    while (cache->slots[i].length)
        i = (i + 1) & cache->mask;
    memcpy(cache->keys + cache->keys_size, data, size);
    cache->slots[i] = (Known){(uint32_t)(hash >> 32), (uint32_t)size, (uint32_t)cache->keys_size,
                              (uint32_t)first, (uint32_t)count};
    cache->keys_size += size;
    cache->used++;
    return 0;
}

static void free_word_cache(PyObject *capsule)
{
    Word_cache *cache = PyCapsule_GetPointer(capsule, WORD_CACHE_NAME);
    if (!cache)
        return;
    PyMem_Free(cache->slots);
    PyMem_Free(cache->keys);
    PyMem_Free(cache->columns.items);
    PyMem_Free(cache);
}

PyDoc_STRVAR(word_cache_doc,
"word_cache(limit) -> cache\n\n"
"An empty cache for by_word(), emptied whenever it holds `limit` words.");

static PyObject *word_cache(PyObject *self, PyObject *args)
{
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "n", &limit))
        return NULL;
    if (limit < 1 || limit > (Py_ssize_t)1 << 28) {
        PyErr_SetString(PyExc_ValueError, "limit must be between 1 and 2**28");
        return NULL;
    }
    /* At most half full: a miss ends at an empty slot soon. */
    uint64_t size = 16;
    while (size < (uint64_t)limit * 2)
        size *= 2;
    Word_cache *cache = PyMem_Calloc(1, sizeof(Word_cache));
    if (cache)
        cache->slots = PyMem_Calloc(size, sizeof(Known));
    if (!cache || !cache->slots) {
        PyMem_Free(cache);
        return PyErr_NoMemory();
    }
    cache->mask = size - 1;
    cache->limit = limit;
    PyObject *capsule = PyCapsule_New(cache, WORD_CACHE_NAME, free_word_cache);
    if (!capsule) {
        PyMem_Free(cache->slots);
        PyMem_Free(cache);
    }
    return capsule;
}

/* A column read from Python: 0 <= column <= INT32_MAX, or -1 with an error. */
static int32_t column_from(PyObject *value)
{
    long long column = PyLong_AsLongLong(value);
    if (column == -1 && PyErr_Occurred())
        return -1;
    if (column < 0 || column > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a column out of the table's range");
        return -1;
    }
    return (int32_t)column;
}

static int is_latin1(PyObject *key) { return PyUnicode_KIND(key) == PyUnicode_1BYTE_KIND; }

PyDoc_STRVAR(table_doc,
"table(vocabulary, lexicon, negators, breakers, punctuation, transparent,\n"
"      contrast, clause_end) -> table\n\n"
"The vocabulary ({feature: column}) as columns() looks features up in it,\n"
"with what the lexicon ({word: feature} or None) and the word sets (of\n"
"str, as in sentiment/text.py) say of each word.");

static PyObject *make_table(PyObject *self, PyObject *args)
{
    PyObject *vocabulary, *lexicon, *given[6];
    if (!PyArg_ParseTuple(args, "O!OOOOOOO", &PyDict_Type, &vocabulary, &lexicon, &given[0],
                          &given[1], &given[2], &given[3], &given[4], &given[5]))
        return NULL;
    static const uint32_t flag_of[6] = {NEGATOR, BREAKER, PUNCTUATION, TRANSPARENT, CONTRAST,
                                        CLAUSE_END};
    if (lexicon != Py_None && !PyDict_Check(lexicon)) {
        PyErr_SetString(PyExc_TypeError, "lexicon must be a dict or None");
        return NULL;
    }
    /* Everything read into lists of strong references, and every column
     * and truth value worked out, before the table is filled: reading a
     * column may run Python code (an int-like object's __index__), which
     * could change the dicts and sets. */
    PyObject *items = PyDict_Items(vocabulary), *lexicon_items = NULL, *members[6] = {0};
    PyObject *capsule = NULL;
    Table *table = PyMem_Calloc(1, sizeof(Table));
    int32_t *columns = NULL, *lexicon_columns = NULL;
    if (!items || !table) {
        if (!table)
            PyErr_NoMemory();
        goto error;
    }
    for (int s = 0; s < 6; s++) {
        if (!PyAnySet_Check(given[s])) {
            PyErr_SetString(PyExc_TypeError, "the word sets must be sets");
            goto error;
        }
        if (!(members[s] = PySequence_List(given[s])))
            goto error;
    }
    if (lexicon != Py_None && !(lexicon_items = PyDict_Items(lexicon)))
        goto error;
    Py_ssize_t count = PyList_GET_SIZE(items);
    Py_ssize_t lexicon_count = lexicon_items ? PyList_GET_SIZE(lexicon_items) : 0;
    uint64_t keys = (uint64_t)count + (uint64_t)lexicon_count, bytes = 0;
    columns = PyMem_Malloc((count ? count : 1) * sizeof(int32_t));
    lexicon_columns = PyMem_Malloc((lexicon_count ? lexicon_count : 1) * sizeof(int32_t));
    if (!columns || !lexicon_columns) {
        PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(items, k), 0);
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "the vocabulary's features must be str");
            goto error;
        }
        if ((columns[k] = column_from(PyTuple_GET_ITEM(PyList_GET_ITEM(items, k), 1))) < 0)
            goto error;
        if (is_latin1(key))
            bytes += PyUnicode_GET_LENGTH(key);
    }
    for (int s = 0; s < 6; s++) {
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(members[s]); k++) {
            PyObject *member = PyList_GET_ITEM(members[s], k);
            if (!PyUnicode_Check(member)) {
                PyErr_SetString(PyExc_TypeError, "the word sets must hold str");
                goto error;
            }
            keys++;
            if (is_latin1(member))
                bytes += PyUnicode_GET_LENGTH(member);
        }
    }
    /* A word's lexicon feature, if true, counts where the vocabulary has it
     * (from_normalized's filter(None, ...), then the vocabulary's get). */
    for (Py_ssize_t k = 0; k < lexicon_count; k++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(lexicon_items, k), 0);
        PyObject *feature = PyTuple_GET_ITEM(PyList_GET_ITEM(lexicon_items, k), 1);
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "the lexicon's words must be str");
            goto error;
        }
        if (is_latin1(key))
            bytes += PyUnicode_GET_LENGTH(key);
        lexicon_columns[k] = -1;
        int truth = PyObject_IsTrue(feature);
        if (truth < 0)
            goto error;
        if (!truth)
            continue;
        PyObject *column = PyDict_GetItemWithError(vocabulary, feature);
        if (!column) {
            if (PyErr_Occurred())
                goto error;
            continue;
        }
        Py_INCREF(column);
        lexicon_columns[k] = column_from(column);
        Py_DECREF(column);
        if (lexicon_columns[k] < 0)
            goto error;
    }
    if (bytes > UINT32_MAX || keys > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "the vocabulary is too large for the table");
        goto error;
    }
    uint64_t size = 8;
    while (size < keys + keys / 2 + 1)
        size *= 2;
    table->mask = size - 1;
    table->slots = PyMem_Calloc(size, sizeof(Slot));
    table->arena = PyMem_Malloc(bytes ? bytes : 1);
    if (!table->slots || !table->arena) {
        PyErr_NoMemory();
        goto error;
    }
    /* No Python code from here on: the lists and their strings stay as read. */
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(items, k), 0);
        if (is_latin1(key))
            slot_for(table, key)->column = columns[k];
    }
    for (int s = 0; s < 6; s++)
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(members[s]); k++) {
            PyObject *member = PyList_GET_ITEM(members[s], k);
            if (is_latin1(member))
                slot_for(table, member)->flags |= flag_of[s];
        }
    for (Py_ssize_t k = 0; k < lexicon_count; k++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(lexicon_items, k), 0);
        if (is_latin1(key))
            slot_for(table, key)->lexicon = lexicon_columns[k];
    }
    capsule = PyCapsule_New(table, TABLE_NAME, free_table);
    if (!capsule)
        goto error;
    table = NULL;
error:
    Py_XDECREF(items);
    Py_XDECREF(lexicon_items);
    for (int s = 0; s < 6; s++)
        Py_XDECREF(members[s]);
    PyMem_Free(columns);
    PyMem_Free(lexicon_columns);
    if (table) {
        PyMem_Free(table->slots);
        PyMem_Free(table->arena);
        PyMem_Free(table);
    }
    return capsule;
}

/* A token of a text: its bytes in Context.chars and its slot (or NULL). */
typedef struct {
    Py_ssize_t start, length;
    const Slot *slot;
} Token;

/* A word of text.mark_negation: a token, NEG_-prefixed or not, and its slot. */
typedef struct {
    Py_ssize_t token;
    int negated;
    const Slot *slot;
} Word;

/* One call's table, the columns it has found so far, and its buffers. */
typedef struct {
    const Table *table;
    long scope;
    Column_list *columns;
    Py_UCS1 *chars, *buffer;         /* the tokens' bytes; a feature's bytes */
    Py_ssize_t chars_room, room;
    Token *tokens;
    Word *words;
    Lookup *lookups;
    Py_ssize_t tokens_room;          /* of tokens, of words and of lookups */
} Context;

/* Adds the column of the slot, if the vocabulary has one; -1 on error. */
static int add_column(Context *context, const Slot *slot)
{
    return slot && slot->column >= 0 ? append(context->columns, slot->column) : 0;
}

/* The slot of prefix + the token's bytes + suffix, or NULL (and NULL with
 * an error set when the buffer cannot grow). */
static const Slot *find_joined(Context *context, const char *prefix, const Token *token,
                               const char *suffix)
{
    Py_ssize_t p = (Py_ssize_t)strlen(prefix), s = (Py_ssize_t)strlen(suffix);
    if (bytes_room(&context->buffer, &context->room, p + token->length + s) < 0)
        return NULL;
    memcpy(context->buffer, prefix, p);
    memcpy(context->buffer + p, context->chars + token->start, token->length);
    memcpy(context->buffer + p + token->length, suffix, s);
    return find(context->table, context->buffer, p + token->length + s);
}

/* The tokens of normalised text as text.tokens() cuts them, each with its
 * slot, into context->tokens; how many, or -1. */
static Py_ssize_t tokens_of(Context *context, PyObject *text)
{
    if (PyUnicode_READY(text) < 0)
        return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* At most one token per character, and no more bytes than characters. */
    if (bytes_room(&context->chars, &context->chars_room, n + 1) < 0)
        return -1;
    if (n > context->tokens_room) {
        Token *tokens = PyMem_Realloc(context->tokens, n * sizeof(Token));
        if (tokens)
            context->tokens = tokens;
        Word *words = PyMem_Realloc(context->words, n * sizeof(Word));
        if (words)
            context->words = words;
        Lookup *lookups = PyMem_Realloc(context->lookups, n * sizeof(Lookup));
        if (lookups)
            context->lookups = lookups;
        if (!tokens || !words || !lookups) {
            PyErr_NoMemory();
            return -1;
        }
        context->tokens_room = n;
    }
    Py_UCS1 *chars = context->chars;
    Py_ssize_t count = 0, used = 0;
    for (Py_ssize_t i = 0; i < n;) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        Py_ssize_t start = used;
        if (is_word_char(c)) {
            while (i < n && is_word_char(c = PyUnicode_READ(kind, data, i))) {
                chars[used++] = (Py_UCS1)c;
                i++;
            }
            /* (?:'[a-z]+)?, the apostrophe itself dropped (tokens()). */
            if (i + 1 < n && PyUnicode_READ(kind, data, i) == '\'') {
                Py_UCS4 next = PyUnicode_READ(kind, data, i + 1);
                if (next >= 'a' && next <= 'z') {
                    i++;
                    while (i < n && (c = PyUnicode_READ(kind, data, i)) >= 'a' && c <= 'z') {
                        chars[used++] = (Py_UCS1)c;
                        i++;
                    }
                }
            }
        } else if (is_punctuation(c)) {
            chars[used++] = (Py_UCS1)c;
            i++;
        } else {
            i++;
            continue;
        }
        Token *token = &context->tokens[count++];
        token->start = start;
        token->length = used - start;
    }
    Lookup *lookups = context->lookups;
    for (Py_ssize_t t = 0; t < count; t++)
        lookups[t] = (Lookup){chars + context->tokens[t].start, context->tokens[t].length, 0, NULL};
    find_all(context->table, lookups, count);
    for (Py_ssize_t t = 0; t < count; t++)
        context->tokens[t].slot = lookups[t].slot;
    return count;
}

static uint32_t flags_of(const Token *token) { return token->slot ? token->slot->flags : 0; }

/* text.mark_negation over the tokens, into context->words; how many, or -1. */
static Py_ssize_t marked(Context *context, Py_ssize_t n_tokens)
{
    Py_ssize_t count = 0;
    long scope = 0;
    for (Py_ssize_t i = 0; i < n_tokens; i++) {
        const Token *token = &context->tokens[i];
        uint32_t flags = flags_of(token);
        if (flags & PUNCTUATION) {
            scope = 0;
            continue;
        }
        Word *word = &context->words[count++];
        *word = (Word){i, 0, token->slot};
        if (flags & BREAKER) {
            scope = 0;
            continue;
        }
        if (scope && !(flags & TRANSPARENT)) {
            scope--;
            word->negated = 1;
            word->slot = find_joined(context, "NEG_", token, "");
            if (!word->slot && PyErr_Occurred())
                return -1;
        }
        if (flags & NEGATOR)
            scope = context->scope;
    }
    return count;
}

/* The word's bytes (NEG_ and the token's) at `out`; how many. */
static Py_ssize_t word_bytes(const Context *context, const Word *word, Py_UCS1 *out)
{
    const Token *token = &context->tokens[word->token];
    Py_ssize_t p = word->negated ? 4 : 0;
    memcpy(out, "NEG_", p);
    memcpy(out + p, context->chars + token->start, token->length);
    return p + token->length;
}

/* Each pair of neighbouring words, joined by a space: all of them written
 * one after another in the buffer, then looked up together. */
static int bigrams(Context *context, Py_ssize_t n_words)
{
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i + 1 < n_words; i++)
        total += 4 + context->tokens[context->words[i].token].length + 1
                 + 4 + context->tokens[context->words[i + 1].token].length;
    if (bytes_room(&context->buffer, &context->room, total ? total : 1) < 0)
        return -1;
    Py_ssize_t n = 0, used = 0;
    for (Py_ssize_t i = 0; i + 1 < n_words; i++) {
        Py_UCS1 *out = context->buffer + used;
        Py_ssize_t l = word_bytes(context, &context->words[i], out);
        out[l] = ' ';
        Py_ssize_t r = word_bytes(context, &context->words[i + 1], out + l + 1);
        context->lookups[n++] = (Lookup){out, l + 1 + r, 0, NULL};
        used += l + 1 + r;
    }
    find_all(context->table, context->lookups, n);
    for (Py_ssize_t i = 0; i < n; i++)
        if (add_column(context, context->lookups[i].slot) < 0)
            return -1;
    return 0;
}

/* text.contrast_features. */
static int after_contrast(Context *context, Py_ssize_t n_tokens)
{
    int after = 0;
    for (Py_ssize_t i = 0; i < n_tokens; i++) {
        const Token *token = &context->tokens[i];
        uint32_t flags = flags_of(token);
        if (flags & CLAUSE_END)
            after = 0;
        else if (flags & CONTRAST)
            after = 1;
        else if (after && !(flags & PUNCTUATION)) {
            const Slot *slot = find_joined(context, "AFTER_BUT_", token, "");
            if ((!slot && PyErr_Occurred()) || add_column(context, slot) < 0)
                return -1;
        }
    }
    return 0;
}

static int features_of(Context *context, PyObject *text)
{
    Py_ssize_t n_tokens = tokens_of(context, text), n_words;
    if (n_tokens < 0 || (n_words = marked(context, n_tokens)) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n_words; i++)
        if (add_column(context, context->words[i].slot) < 0)
            return -1;
    if (bigrams(context, n_words) < 0 || after_contrast(context, n_tokens) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n_words; i++) {
        const Slot *slot = context->words[i].slot;
        if (slot && slot->lexicon >= 0 && append(context->columns, slot->lexicon) < 0)
            return -1;
    }
    return 0;
}

PyDoc_STRVAR(columns_doc,
"columns(texts, table, scope) -> (columns, counts)\n\n"
"The vocabulary columns of every word feature of each normalised text (a\n"
"list of str), as text.WordFeatures.from_normalized makes them with a\n"
"negation scope of `scope` words, repeats kept, unknown features left out:\n"
"columns as int64 bytes, all texts one after another, and counts (int64\n"
"bytes) how many of them each text has. table: from table().");

static PyObject *columns(PyObject *self, PyObject *args)
{
    PyObject *texts, *table;
    Context context = {0};
    if (!PyArg_ParseTuple(args, "O!Ol", &PyList_Type, &texts, &table, &context.scope))
        return NULL;
    if (!(context.table = PyCapsule_GetPointer(table, TABLE_NAME)))
        return NULL;
    Column_list found = {0}, counts = {0};
    context.columns = &found;
    PyObject *result = NULL;
    /* A text's word features: ~0.3 columns a character, at most 0.6 on the
     * corpus. */
    if (presize(&found, &counts, texts, 1) < 0)
        goto done;
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
    PyMem_Free(context.chars);
    PyMem_Free(context.buffer);
    PyMem_Free(context.tokens);
    PyMem_Free(context.words);
    PyMem_Free(context.lookups);
    return result;
}

/* Append the int64 values in `columns` (bytes) to `list`. */
static int extend(Column_list *list, PyObject *columns)
{
    if (!PyBytes_Check(columns) || PyBytes_GET_SIZE(columns) % sizeof(int64_t)) {
        PyErr_SetString(PyExc_TypeError, "a word's columns must be int64 bytes");
        return -1;
    }
    return append_all(list, (const int64_t *)PyBytes_AS_STRING(columns),
                      PyBytes_GET_SIZE(columns) / (Py_ssize_t)sizeof(int64_t));
}

PyDoc_STRVAR(by_word_doc,
"by_word(texts, cache, missing, words=None) -> (columns, counts)\n\n"
"The columns of each text (a list of str) word by word, as str.split() cuts\n"
"it: cache[word] (int64 bytes), or missing(word) for a word not in the cache\n"
"(it gives the bytes, and may keep them in the cache). With `words`, a\n"
"word_cache(), a word of Latin-1 characters is looked up there instead and\n"
"missing(word)'s bytes are kept there. The result as for columns(). For\n"
"character n-grams that never cross a word (char_wb).");

/* The columns of a Latin-1 word (its bytes and their hash_of(); `word` its
 * str, or NULL to make one if needed) from the word cache, or from
 * missing(), then kept there; -1 on error. Nothing of the cache is held
 * across missing(), whose Python code may let another thread change it. */
static int latin1_word(Column_list *found, Word_cache *cache, PyObject *missing,
                       const unsigned char *data, Py_ssize_t size, uint64_t hash,
                       PyObject *word)
{
    const Known *slot = known(cache, data, size, hash);
    if (slot)  /* (append_all runs no Python code: the cache stays as it is;
                * with no columns kept yet, items may be NULL) */
        return slot->count ? append_all(found, cache->columns.items + slot->first, slot->count)
                           : 0;
    PyObject *made = word ? NULL : PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, data, size);
    if (!word && !made)
        return -1;
    PyObject *columns = PyObject_CallOneArg(missing, word ? word : made);
    Py_XDECREF(made);
    if (!columns)
        return -1;
    /* extend() refuses anything but int64 bytes before they are kept. */
    int failed = extend(found, columns) < 0 ||
        remember_word(cache, data, size, hash, (const int64_t *)PyBytes_AS_STRING(columns),
                      PyBytes_GET_SIZE(columns) / (Py_ssize_t)sizeof(int64_t)) < 0;
    Py_DECREF(columns);
    return failed ? -1 : 0;
}

/* How many words of a text latin1_text() looks up together. */
enum { AHEAD = 32 };

/* The words of a Latin-1 text, cut as str.split() cuts them; -1 on error.
 * AHEAD words at a time, with the memory each needs fetched for all of
 * them first, as find_all() does for the word table: its slot, then the
 * bytes and columns of the slot it will be found in. Looked up one after
 * the other, each word waited on memory three times: under load the rest
 * of a request pushes the cache's few MB out of the core's own cache
 * (by_word on a 100-text batch: 0.02 ms in a loop, 0.12-0.20 inside
 * requests). The prefetches only read: missing() may change the cache
 * meanwhile, and latin1_word() finds each word again (from its hash). */
static int latin1_text(Column_list *found, Word_cache *cache, PyObject *missing, PyObject *text)
{
    const unsigned char *data = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), i = 0;
    while (i < size) {
        Py_ssize_t starts[AHEAD], sizes[AHEAD];
        uint64_t hashes[AHEAD];
        int n = 0;
        while (n < AHEAD && i < size) {
            while (i < size && Py_UNICODE_ISSPACE(data[i]))
                i++;
            Py_ssize_t start = i;
            while (i < size && !Py_UNICODE_ISSPACE(data[i]))
                i++;
            if (i > start) {
                starts[n] = start;
                sizes[n] = i - start;
                hashes[n] = hash_of(data + start, i - start);
                __builtin_prefetch(&cache->slots[hashes[n] & cache->mask]);
                n++;
            }
        }
        for (int j = 0; j < n; j++)
            fetch_known(cache, sizes[j], hashes[j]);
        for (int j = 0; j < n; j++)
            if (latin1_word(found, cache, missing, data + starts[j], sizes[j], hashes[j],
                            NULL) < 0)
                return -1;
    }
    return 0;
}

static PyObject *by_word(PyObject *self, PyObject *args)
{
    PyObject *texts, *cache, *missing, *words_obj = Py_None;
    if (!PyArg_ParseTuple(args, "O!O!O|O", &PyList_Type, &texts, &PyDict_Type, &cache, &missing,
                          &words_obj))
        return NULL;
    if (!PyCallable_Check(missing)) {
        PyErr_SetString(PyExc_TypeError, "missing must be callable");
        return NULL;
    }
    Word_cache *words = NULL;
    if (words_obj != Py_None && !(words = PyCapsule_GetPointer(words_obj, WORD_CACHE_NAME)))
        return NULL;
    Column_list found = {0}, counts = {0};
    PyObject *result = NULL;
    /* A text's character n-grams: ~2.9 columns a character, at most 3.6 on
     * the corpus. */
    if (presize(&found, &counts, texts, 4) < 0)
        goto done;
    /* missing() is Python code that could change the list: its size is
     * read again each time round, and the text held meanwhile. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(texts); i++) {
        PyObject *text = text_at(texts, i);
        if (!text)
            goto done;
        Py_ssize_t before = found.size;
        if (words && is_latin1(text)) {
            Py_INCREF(text);
            int failed = latin1_text(&found, words, missing, text) < 0;
            Py_DECREF(text);
            if (failed)
                goto done;
        } else {
            PyObject *split = PyUnicode_Split(text, NULL, -1);
            if (!split)
                goto done;
            for (Py_ssize_t j = 0; j < PyList_GET_SIZE(split); j++) {
                PyObject *word = PyList_GET_ITEM(split, j);
                int failed;
                if (words && is_latin1(word)) {
                    const Py_UCS1 *bytes = PyUnicode_1BYTE_DATA(word);
                    Py_ssize_t size = PyUnicode_GET_LENGTH(word);
                    failed = latin1_word(&found, words, missing, bytes, size,
                                         hash_of(bytes, size), word) < 0;
                } else {
                    PyObject *columns = PyDict_GetItemWithError(cache, word);
                    if (columns)
                        Py_INCREF(columns);
                    else if (!PyErr_Occurred())
                        columns = PyObject_CallOneArg(missing, word);
                    failed = !columns || extend(&found, columns) < 0;
                    Py_XDECREF(columns);
                }
                if (failed) {
                    Py_DECREF(split);
                    goto done;
                }
            }
            Py_DECREF(split);
        }
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
    {"table", make_table, METH_VARARGS, table_doc},
    {"by_word", by_word, METH_VARARGS, by_word_doc},
    {"word_cache", word_cache, METH_VARARGS, word_cache_doc},
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
