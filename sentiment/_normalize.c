/* The last three steps of text.normalize() in one pass over the text:
 * accents stripped (through text._NORMALIZED, which also turns emoji and ’,
 * or text._STRIPPED, the very table strip_accents translates with), runs of three or more of one character cut to two (the
 * regex (.)\1\1+, whose '.' is anything but a newline), and whitespace
 * collapsed to single spaces with none at either end (" ".join(s.split()),
 * the same Py_UNICODE_ISSPACE). In Python they were three passes and a
 * regex search over every text.
 *
 * The steps are done in their order: a character's stripped form feeds the
 * run count, and the run count sees the text before its whitespace is
 * collapsed (a space between two letters breaks their run). A run of
 * whitespace becomes one space whatever it holds, so the regex's newline
 * rule changes nothing there.
 *
 * And, for the start of normalize(), emoticon_start(): whether an emoticon
 * can begin anywhere in the text.
 *
 * Optional, like _decision.c: without it text.py runs the Python steps.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    Py_UCS4 *items;
    Py_ssize_t size, room;
    Py_UCS4 last;         /* the last character of the text so far (not collapsed) */
    Py_ssize_t run;       /* how many times in a row it has come */
    int space_pending;    /* whitespace seen since the last character kept */
} Output;

static int grow(Output *out, Py_ssize_t more)
{
    if (out->size + more <= out->room)
        return 0;
    Py_ssize_t room = out->room ? out->room : 64;
    while (room < out->size + more)
        room *= 2;
    Py_UCS4 *items = PyMem_Realloc(out->items, room * sizeof(Py_UCS4));
    if (!items) {
        PyErr_NoMemory();
        return -1;
    }
    out->items = items;
    out->room = room;
    return 0;
}

/* One character of the accent-stripped text. */
static int put(Output *out, Py_UCS4 c)
{
    if (c == out->last)
        out->run++;
    else {
        out->last = c;
        out->run = 1;
    }
    if (Py_UNICODE_ISSPACE(c)) {
        out->space_pending = out->size > 0;
        return 0;
    }
    if (out->run > 2)
        return 0;
    if (grow(out, 2) < 0)
        return -1;
    if (out->space_pending) {
        out->items[out->size++] = ' ';
        out->space_pending = 0;
    }
    out->items[out->size++] = c;
    return 0;
}

/* table[c] as strip_accents's str.translate reads it: a str, None to drop
 * the character, or (a missing key) the character itself. */
static int put_stripped(Output *out, PyObject *table, Py_UCS4 c)
{
    PyObject *key = PyLong_FromUnsignedLong(c);
    if (!key)
        return -1;
    PyObject *value = PyObject_GetItem(table, key);
    Py_DECREF(key);
    if (!value) {
        if (!PyErr_ExceptionMatches(PyExc_LookupError))
            return -1;
        PyErr_Clear();
        return put(out, c);
    }
    int result = 0;
    if (PyUnicode_Check(value)) {
        Py_ssize_t length = PyUnicode_GET_LENGTH(value);
        int kind = PyUnicode_KIND(value);
        const void *data = PyUnicode_DATA(value);
        for (Py_ssize_t i = 0; i < length && result == 0; i++)
            result = put(out, PyUnicode_READ(kind, data, i));
    } else if (value != Py_None) {
        PyErr_SetString(PyExc_TypeError, "the accent table must map to str or None");
        result = -1;
    }
    Py_DECREF(value);
    return result;
}

PyDoc_STRVAR(squeeze_doc,
"squeeze(text, table) -> str\n\n"
"text.translate(table) unless text is ASCII without NUL (table: str or None\n"
"for each character it knows, and ASCII characters but NUL left as they are,\n"
"as text._STRIPPED has them), then runs of three\n"
"or more of one character (not a newline) cut to two, then ' '.join of its\n"
"split(): strip_accents, the _ELONGATED substitution and the whitespace\n"
"collapse of text.normalize(), in one pass.");

static PyObject *squeeze(PyObject *self, PyObject *args)
{
    PyObject *text, *table;
    if (!PyArg_ParseTuple(args, "UO", &text, &table))
        return NULL;
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* strip_accents leaves an ASCII text without NUL as it is. */
    int translate = !PyUnicode_IS_ASCII(text);
    for (Py_ssize_t i = 0; i < length && !translate; i++)
        translate = PyUnicode_READ(kind, data, i) == 0;
    Output out = {NULL, 0, 0, (Py_UCS4)-1, 0, 0};
    if (grow(&out, length + 1) < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        /* An ASCII character but NUL is its own stripped form (NFKD leaves
         * it as it is): only the others are looked up. */
        int look_up = translate && (c > 127 || c == 0);
        if ((look_up ? put_stripped(&out, table, c) : put(&out, c)) < 0) {
            PyMem_Free(out.items);
            return NULL;
        }
    }
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out.items, out.size);
    PyMem_Free(out.items);
    return result;
}

PyDoc_STRVAR(emoticon_start_doc,
"emoticon_start(text) -> bool\n\n"
"Whether text._EMOTICON_STARTS, (?:^|\\s)[:;=xX(]|<3|[xX][dD], finds\n"
"anything in the text: where an emoticon could begin.");

/* An emoticon's first character after whitespace or at the start. */
static int opens_emoticon(Py_UCS4 c)
{
    return c == ':' || c == ';' || c == '=' || c == 'x' || c == 'X' || c == '(';
}

/* One pass over the text where re made two searches (for any emoticon
 * character, then for a start) over every text: 7-8 % of a 100-text
 * request's instructions, most of them on texts without any emoticon.
 * re's \s for str is Py_UNICODE_ISSPACE, and ^ only the very start. */
static PyObject *emoticon_start(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "emoticon_start() takes a str");
        return NULL;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    int after_space = 1;  /* ^ */
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (after_space && opens_emoticon(c))
            Py_RETURN_TRUE;
        if ((c == '<' || c == 'x' || c == 'X') && i + 1 < length) {
            Py_UCS4 next = PyUnicode_READ(kind, data, i + 1);
            if (c == '<' ? next == '3' : next == 'd' || next == 'D')
                Py_RETURN_TRUE;
        }
        after_space = Py_UNICODE_ISSPACE(c);
    }
    Py_RETURN_FALSE;
}

static PyMethodDef methods[] = {
    {"squeeze", squeeze, METH_VARARGS, squeeze_doc},
    {"emoticon_start", emoticon_start, METH_O, emoticon_start_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_normalize",
    "Parts of text.normalize() in C (see sentiment/_normalize.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__normalize(void)
{
    return PyModule_Create(&module);
}
