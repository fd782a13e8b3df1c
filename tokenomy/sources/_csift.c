/* The line sift of tokenomy/sources/_sift.py in C, at memory speed.
 *
 * A Claude Code transcript is mostly bytes a usage report never reads: "progress" lines (hook and
 * tool progress), "user" lines (prompts and tool results) and the content blocks of assistant
 * messages. A line's top-level "type" comes before any nested value, so it can be read off the
 * line's first bytes without parsing the rest. sift() drops progress lines, cuts user lines down
 * to that prefix (which still carries the session, cwd, version and branch) and empties assistant
 * messages' content arrays, so the JSON decoder reads about a sixth of the bytes. _sift.py holds
 * the rule in words and the pure-Python fallback (all but the skim); the tests hold this code to
 * a byte-at-a-time model of the rule (tests/sources/test_sources_sift.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static const char TYPE_KEY[] = "\"type\":\"";
#define TYPE_KEY_LEN 8
#define MAX_PREFIX 4096 /* the type field must start within this many bytes of the line */

/* Whether a '}' is followed, past blanks, by a '{' in [s, end): two objects written back to back
 * on one line (the decoder reads both, so such a line is kept whole). */
static int glued(const char *s, const char *end) {
    while (end - s >= 2) {
        const char *q = memchr(s, '}', (size_t)(end - s - 1));
        if (q == NULL) return 0;
        const char *r = q + 1;
        while (r < end && (*r == ' ' || *r == '\t' || *r == '\r')) r++;
        if (r < end && *r == '{') return 1;
        s = q + 1;
    }
    return 0;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* In [s, cap): the first '{' or '[' (returned), and in *type the first "type":" that starts
 * before it and ends by cap (NULL if none). 16 bytes at a time: a quote followed by "ty" is
 * rare enough to check each one whole. */
static const char *prefix_scan(const char *s, const char *cap, const char **type) {
    const __m128i brace = _mm_set1_epi8('{'), bracket = _mm_set1_epi8('['), quote = _mm_set1_epi8('"');
    const __m128i t = _mm_set1_epi8('t'), y = _mm_set1_epi8('y');
    const char *found = NULL;
    while (cap - s >= 18) {
        __m128i a = _mm_loadu_si128((const __m128i *)s);
        __m128i b = _mm_loadu_si128((const __m128i *)(s + 1));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + 2));
        unsigned mo = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(a, brace), _mm_cmpeq_epi8(a, bracket)));
        unsigned mt = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(a, quote), _mm_and_si128(_mm_cmpeq_epi8(b, t), _mm_cmpeq_epi8(c, y))));
        if (mo) mt &= (1u << __builtin_ctz(mo)) - 1u; /* only candidates before the opener */
        while (found == NULL && mt) {
            const char *q = s + __builtin_ctz(mt);
            if (cap - q >= TYPE_KEY_LEN && memcmp(q, TYPE_KEY, TYPE_KEY_LEN) == 0) found = q;
            mt &= mt - 1u;
        }
        if (mo) {
            *type = found;
            return s + __builtin_ctz(mo);
        }
        s += 16;
    }
    for (; s < cap; s++) {
        if (*s == '{' || *s == '[') break;
        if (found == NULL && cap - s >= TYPE_KEY_LEN && memcmp(s, TYPE_KEY, TYPE_KEY_LEN) == 0) found = s;
    }
    *type = found;
    return s;
}

#else /* the same, a byte at a time */

static const char *prefix_scan(const char *s, const char *cap, const char **type) {
    const char *found = NULL;
    for (; s < cap; s++) {
        if (*s == '{' || *s == '[') break;
        if (found == NULL && cap - s >= TYPE_KEY_LEN && memcmp(s, TYPE_KEY, TYPE_KEY_LEN) == 0) found = s;
    }
    *type = found;
    return s;
}

#endif

/* The ']' that closes the array opening at p, or NULL when the line ends first (a write cut short)
 * or its brackets do not pair up (then the decoder judges the line). Strings are skipped whole,
 * a quote at a time: most of an array of content blocks is long strings. */
static const char *array_end(const char *p, const char *eol) {
    uint64_t stack = 0; /* one bit per open bracket: 1 for '{', 0 for '[' */
    int depth = 0;
    for (const char *s = p; s < eol; s++) {
        char c = *s;
        if (c == '"') {
            const char *q = s + 1;
            for (;;) {
                q = memchr(q, '"', (size_t)(eol - q));
                if (q == NULL) return NULL;
                const char *b = q;
                while (b[-1] == '\\') b--; /* stops at the opening quote at the latest */
                if (((q - b) & 1) == 0) break; /* an even run of backslashes: the quote is real */
                q++;
            }
            s = q;
        } else if (c == '[' || c == '{') {
            if (depth == 64) return NULL;
            stack = (stack << 1) | (c == '{');
            depth++;
        } else if (c == ']' || c == '}') {
            if (depth == 0 || (int)(stack & 1) != (c == '}')) return NULL;
            stack >>= 1;
            if (--depth == 0) return s;
        }
    }
    return NULL;
}

/* Whether the value opening at o is preceded by the key `key` ("name": , len bytes). */
static int keyed(const char *line, const char *o, const char *key, size_t len) {
    return (size_t)(o - line) > len && memcmp(o - len, key, len) == 0;
}

enum action { KEEP, DROP, CUT, SKIM };

/* What to do with the line [line, eol). CUT: keep [line, *a) and close it with "}". SKIM: leave
 * out (*a, *b), the blocks of the content array "message":{..."content":[...] (the decoder reads
 * every other field of the line). */
static enum action classify(const char *line, const char *eol, int keep_content, const char **a, const char **b) {
    if (eol - line < 2 || line[0] != '{') return KEEP;
    const char *last = eol;
    while (last > line && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r')) last--;
    if (last - line < 2 || last[-1] != '}') return KEEP; /* cut short: let the decoder count it */
    const char *cap = line + 1 + MAX_PREFIX < eol ? line + 1 + MAX_PREFIX : eol;
    const char *m;
    const char *o = prefix_scan(line + 1, cap, &m);
    if (m != NULL) {
        const char *v = m + TYPE_KEY_LEN;
        if (eol - v >= 9 && memcmp(v, "progress\"", 9) == 0) return glued(line, eol) ? KEEP : DROP;
        if (!keep_content && eol - v >= 5 && memcmp(v, "user\"", 5) == 0) {
            if (glued(line, eol)) return KEEP;
            *a = v + 5;
            return CUT;
        }
    }
    if (keep_content || o >= cap || *o != '{' || !keyed(line, o, "\"message\":", 10)) return KEEP;
    const char *mcap = o + 1 + MAX_PREFIX < eol ? o + 1 + MAX_PREFIX : eol;
    const char *c = prefix_scan(o + 1, mcap, &m);
    if (c >= mcap || *c != '[' || !keyed(o, c, "\"content\":", 10)) return KEEP;
    const char *close = array_end(c, eol);
    if (close == NULL || close == c + 1) return KEEP;
    *a = c + 1;
    *b = close;
    return SKIM;
}

static PyObject *sift(PyObject *self, PyObject *args) {
    PyObject *block;
    int keep_content = 0;
    /* bytes only: immutable, so nothing can change them while the GIL is released below */
    if (!PyArg_ParseTuple(args, "Sp", &block, &keep_content)) return NULL;
    const char *src = PyBytes_AS_STRING(block);
    Py_ssize_t n = PyBytes_GET_SIZE(block);
    /* a CUT line shrinks by at least one byte, but "}\n" may add one to an unterminated last line;
     * a SKIM line only shrinks */
    PyObject *out = PyBytes_FromStringAndSize(NULL, n + 1);
    if (out == NULL) return NULL;
    char *dst = PyBytes_AS_STRING(out);
    char *w = dst;
    Py_ssize_t dropped = 0;
    Py_BEGIN_ALLOW_THREADS
    const char *end = src + n;
    const char *p = src;
    const char *keep_from = src; /* start of the run of kept lines not yet copied */
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL) eol = end;
        const char *next = eol < end ? eol + 1 : end;
        const char *a = NULL, *b = NULL;
        enum action act = classify(p, eol, keep_content, &a, &b);
        if (act == SKIM) {
            memcpy(w, keep_from, (size_t)(a - keep_from));
            w += a - keep_from;
            keep_from = b; /* the rest of the line is copied with the run it starts */
        } else if (act != KEEP) {
            memcpy(w, keep_from, (size_t)(p - keep_from));
            w += p - keep_from;
            if (act == DROP) {
                dropped++;
            } else {
                memcpy(w, p, (size_t)(a - p));
                w += a - p;
                *w++ = '}';
                *w++ = '\n';
            }
            keep_from = next;
        }
        p = next;
    }
    memcpy(w, keep_from, (size_t)(end - keep_from));
    w += end - keep_from;
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&out, w - dst) < 0) return NULL;
    return Py_BuildValue("(Nn)", out, dropped);
}

static PyMethodDef methods[] = {
    {"sift", sift, METH_VARARGS,
     "sift(block, keep_content) -> (bytes, dropped): drop progress lines; unless keep_content, cut user "
     "lines to their prefix and leave out the blocks of assistant messages."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_csift", NULL, -1, methods};

PyMODINIT_FUNC PyInit__csift(void) { return PyModule_Create(&module); }
