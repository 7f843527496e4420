/* The json and logfmt access records of a served request, written in C: the common case of
 * `wsgid.logs.access.captured_json` and `captured_logfmt`.
 *
 * Owns: `json_record(...)` and `logfmt_record(...)`, which write the line the Python
 * renderers (`access.python_json`, `access.python_logfmt`) write, byte for byte, into one
 * buffer, without the thirty-odd Python strings an f-string builds (the escaped values, the
 * numbers' text, the pieces' join). They take the values `captured_*` read and handle what a
 * served request usually holds: text that is ASCII, `None`, and ints. Anything else (non-ASCII
 * text, which the Python path decodes as UTF-8 first; a value of another type, a str subclass
 * among them; a number past 64 bits) makes them return None, and the Python renderer writes
 * that record. Text is escaped as `json.encoder.encode_basestring_ascii` and
 * `escape.logfmt` escape ASCII.
 *
 * Built by setup.py beside the mypyc modules; a pure-Python build has no such module, and the
 * Python renderers write every record.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

/* The escaped form of a character takes at most six bytes (\u001f). */
#define ESCAPED_MAX 6

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    char small[1024]; /* a usual record fits: no allocation */
} Buffer;

static int
reserve(Buffer *buf, Py_ssize_t more)
{
    if (buf->len + more <= buf->cap)
        return 0;
    Py_ssize_t cap = buf->cap * 2;
    while (cap < buf->len + more)
        cap *= 2;
    char *data;
    if (buf->data == buf->small) {
        data = PyMem_Malloc(cap);
        if (data != NULL)
            memcpy(data, buf->small, buf->len);
    } else {
        data = PyMem_Realloc(buf->data, cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buf->data = data;
    buf->cap = cap;
    return 0;
}

static int
put(Buffer *buf, const char *text, Py_ssize_t len)
{
    if (reserve(buf, len) < 0)
        return -1;
    memcpy(buf->data + buf->len, text, len);
    buf->len += len;
    return 0;
}

#define PUT_LITERAL(buf, text) put((buf), (text), (Py_ssize_t)(sizeof(text) - 1))

static const char HEX[] = "0123456789abcdef";

/* How each format writes text: ASCII bytes, quoted (JSON) or bare when that is safe (logfmt). */
typedef int (*TextWriter)(Buffer *, const unsigned char *, Py_ssize_t);

/* ASCII bytes in double quotes, `"`, `\` and the control characters escaped (DEL too): the
 * line breaks and tabs by name, \b and \f by name where `named_bf` (JSON's rule; logfmt
 * writes them as \u0008 and \u000c), the others as \u00XX. */
static int
put_quoted(Buffer *buf, const unsigned char *s, Py_ssize_t n, int named_bf)
{
    if (reserve(buf, n * ESCAPED_MAX + 2) < 0)
        return -1;
    char *out = buf->data + buf->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= ' ' && c <= '~' && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        if (c == '"' || c == '\\')
            *out++ = (char)c;
        else if (c == '\n')
            *out++ = 'n';
        else if (c == '\r')
            *out++ = 'r';
        else if (c == '\t')
            *out++ = 't';
        else if (named_bf && c == '\b')
            *out++ = 'b';
        else if (named_bf && c == '\f')
            *out++ = 'f';
        else {
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = HEX[c >> 4];
            *out++ = HEX[c & 0xf];
        }
    }
    *out++ = '"';
    buf->len = out - buf->data;
    return 0;
}

/* ASCII bytes as a JSON string, as encode_basestring_ascii writes them. */
static int
put_json_text(Buffer *buf, const unsigned char *s, Py_ssize_t n)
{
    return put_quoted(buf, s, n, 1);
}

/* ASCII bytes as a logfmt value, as escape.logfmt writes them: bare when not empty and
 * printable without a space, `=`, `"` or `\`; else quoted. */
static int
put_logfmt_text(Buffer *buf, const unsigned char *s, Py_ssize_t n)
{
    int bare = n > 0;
    for (Py_ssize_t i = 0; i < n && bare; i++) {
        unsigned char c = s[i];
        bare = c > ' ' && c <= '~' && c != '=' && c != '"' && c != '\\';
    }
    if (bare)
        return put(buf, (const char *)s, n);
    return put_quoted(buf, s, n, 0);
}

/* Outcomes of the value writers: written, error set, or "not ours" (None from the caller). */
#define DONE 0
#define FAILED -1
#define DECLINED 1

/* A str in the format's way, None as null; other types and non-ASCII text are declined. */
static int
put_text(Buffer *buf, TextWriter text, PyObject *value)
{
    if (value == Py_None)
        return PUT_LITERAL(buf, "null");
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value))
        return DECLINED;
    return text(buf, PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value));
}

/* Request bytes (the path, the query) as the format writes their latin-1 text. */
static int
put_bytes(Buffer *buf, TextWriter text, PyObject *value)
{
    if (!PyBytes_CheckExact(value))
        return DECLINED;
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(value);
    Py_ssize_t n = PyBytes_GET_SIZE(value);
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] & 0x80)
            return DECLINED;
    return text(buf, s, n);
}

/* Text wsgid wrote itself (the time, the method, the protocol, the pid): as it is. */
static int
put_raw(Buffer *buf, PyObject *value)
{
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value))
        return DECLINED;
    return put(buf, (const char *)PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value));
}

/* An int as str() prints it. */
static int
put_int(Buffer *buf, PyObject *value)
{
    if (!PyLong_CheckExact(value))
        return DECLINED;
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow)
        return DECLINED;
    if (n == -1 && PyErr_Occurred())
        return FAILED;
    char digits[24];
    char *end = digits + sizeof(digits);
    char *p = end;
    /* Unsigned, so that the smallest long long negates. */
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (n < 0)
        *--p = '-';
    return put(buf, p, end - p);
}

/* REMOTE_PORT as `access._port` writes it: ASCII digits as the number they spell, anything
 * else (absent, not text, other scripts' digits) null. */
static int
put_port(Buffer *buf, PyObject *value)
{
    if (value == NULL || !PyUnicode_Check(value) || !PyUnicode_IS_ASCII(value)
        || PyUnicode_GET_LENGTH(value) == 0)
        return PUT_LITERAL(buf, "null");
    const char *s = (const char *)PyUnicode_1BYTE_DATA(value);
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return PUT_LITERAL(buf, "null");
    while (n > 1 && *s == '0') { /* as int() reads it: "0042" is 42 */
        s++;
        n--;
    }
    return put(buf, s, n);
}

/* The environ keys the record reads, interned at import. */
static PyObject *REMOTE_ADDR, *REMOTE_PORT, *USER_AGENT, *REFERER, *REQUEST_ID;

/* environ[key] for put_text: an absent key is null, as environ.get gives None.
 *
 * The value is a borrowed reference, written before anything else can run: a later lookup may
 * run Python code (a key of the app's whose hash collides, with its own __eq__), which could
 * remove this one from the environ. */
static int
put_environ_text(Buffer *buf, TextWriter text, PyObject *environ, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(environ, key);
    if (value == NULL) {
        if (PyErr_Occurred())
            return FAILED;
        return PUT_LITERAL(buf, "null");
    }
    return put_text(buf, text, value);
}

/* environ["REMOTE_PORT"] for put_port (borrowed, as in put_environ_text). */
static int
put_environ_port(Buffer *buf, PyObject *environ)
{
    PyObject *value = PyDict_GetItemWithError(environ, REMOTE_PORT);
    if (value == NULL && PyErr_Occurred())
        return FAILED;
    return put_port(buf, value);
}

/* A format: what goes before each of the record's sixteen values (keys in ACCESS_KEYS order,
 * spelled as the Python renderers spell them), what ends the record, and how text is written. */
typedef struct {
    const char *text;
    Py_ssize_t len;
} Piece;

#define PIECE(text) {(text), (Py_ssize_t)(sizeof(text) - 1)}

typedef struct {
    Piece before[16];
    Piece end;
    TextWriter text;
} Format;

static const Format JSON = {
    {
        PIECE("{\"timestamp\":\""), PIECE("\",\"remote_addr\":"), PIECE(",\"remote_port\":"),
        PIECE(",\"remote_user\":"), PIECE(",\"method\":\""), PIECE("\",\"path\":"),
        PIECE(",\"query\":"), PIECE(",\"protocol\":\""), PIECE("\",\"status\":"),
        PIECE(",\"bytes_sent\":"), PIECE(",\"request_bytes\":"), PIECE(",\"duration_us\":"),
        PIECE(",\"user_agent\":"), PIECE(",\"referer\":"), PIECE(",\"request_id\":"),
        PIECE(",\"pid\":"),
    },
    PIECE("}"),
    put_json_text,
};

static const Format LOGFMT = {
    {
        PIECE("timestamp="), PIECE(" remote_addr="), PIECE(" remote_port="),
        PIECE(" remote_user="), PIECE(" method="), PIECE(" path="), PIECE(" query="),
        PIECE(" protocol="), PIECE(" status="), PIECE(" bytes_sent="), PIECE(" request_bytes="),
        PIECE(" duration_us="), PIECE(" user_agent="), PIECE(" referer="), PIECE(" request_id="),
        PIECE(" pid="),
    },
    PIECE(""),
    put_logfmt_text,
};

#define NARGS 12

static PyObject *
record(const Format *format, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != NARGS) {
        PyErr_Format(PyExc_TypeError, "a record takes %d arguments (%zd given)", NARGS, nargs);
        return NULL;
    }
    PyObject *timestamp = args[0], *environ = args[1], *user = args[2], *method = args[3],
             *path = args[4], *query = args[5], *protocol = args[6], *status = args[7],
             *sent = args[8], *received = args[9], *duration = args[10], *pid = args[11];
    if (!PyDict_CheckExact(environ))
        Py_RETURN_NONE;
    TextWriter text = format->text;
    const Piece *before = format->before;
    Buffer buf;
    buf.data = buf.small;
    buf.len = 0;
    buf.cap = sizeof(buf.small);
    int outcome = DONE;
#define STEP(i, call)                                                                      \
    do {                                                                                   \
        if (outcome == DONE)                                                               \
            outcome = put(&buf, before[i].text, before[i].len);                            \
        if (outcome == DONE)                                                               \
            outcome = (call);                                                              \
    } while (0)
    STEP(0, put_raw(&buf, timestamp));
    STEP(1, put_environ_text(&buf, text, environ, REMOTE_ADDR));
    STEP(2, put_environ_port(&buf, environ));
    STEP(3, put_text(&buf, text, user));
    STEP(4, put_raw(&buf, method));
    STEP(5, put_bytes(&buf, text, path));
    STEP(6, put_bytes(&buf, text, query));
    STEP(7, put_raw(&buf, protocol));
    STEP(8, put_int(&buf, status));
    STEP(9, put_int(&buf, sent));
    STEP(10, put_int(&buf, received));
    STEP(11, put_int(&buf, duration));
    STEP(12, put_environ_text(&buf, text, environ, USER_AGENT));
    STEP(13, put_environ_text(&buf, text, environ, REFERER));
    STEP(14, put_environ_text(&buf, text, environ, REQUEST_ID));
    STEP(15, put_raw(&buf, pid));
#undef STEP
    if (outcome == DONE)
        outcome = put(&buf, format->end.text, format->end.len);
    PyObject *result = NULL;
    if (outcome == DONE) {
        result = PyUnicode_New(buf.len, 127);
        if (result != NULL)
            memcpy(PyUnicode_1BYTE_DATA(result), buf.data, buf.len);
    } else if (outcome == DECLINED) {
        result = Py_NewRef(Py_None);
    }
    if (buf.data != buf.small)
        PyMem_Free(buf.data);
    return result;
}

static PyObject *
json_record(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    return record(&JSON, args, nargs);
}

static PyObject *
logfmt_record(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    return record(&LOGFMT, args, nargs);
}

#define RECORD_ARGS                                                                        \
    "(timestamp, environ, remote_user, method, path, query, protocol, status, bytes_sent,"  \
    " request_bytes, duration_us, pid) -> str | None\n\n"

static PyMethodDef methods[] = {
    {"json_record", (PyCFunction)(void (*)(void))json_record, METH_FASTCALL,
     "json_record" RECORD_ARGS
     "The json access record of a served request, or None when it needs the Python path."},
    {"logfmt_record", (PyCFunction)(void (*)(void))logfmt_record, METH_FASTCALL,
     "logfmt_record" RECORD_ARGS
     "The logfmt access record of a served request, or None when it needs the Python path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsgid.logs.records",
    .m_doc = "The json and logfmt access records of a served request, in C (see records.c).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit_records(void)
{
    REMOTE_ADDR = PyUnicode_InternFromString("REMOTE_ADDR");
    REMOTE_PORT = PyUnicode_InternFromString("REMOTE_PORT");
    USER_AGENT = PyUnicode_InternFromString("HTTP_USER_AGENT");
    REFERER = PyUnicode_InternFromString("HTTP_REFERER");
    REQUEST_ID = PyUnicode_InternFromString("wsgid.request_id");
    if (!REMOTE_ADDR || !REMOTE_PORT || !USER_AGENT || !REFERER || !REQUEST_ID)
        return NULL;
    return PyModule_Create(&module);
}
