/* The per-echo core of fleetmon's ICMP engine (probes/icmp.py), compiled.
 *
 * Why C: at 100,000 devices pinged 3 times every 30 s, the engine and scheduler cost 6.3 CPU-s a
 * cycle with the echoes as Python objects (sendto through the socket module, recvmsg's tuples,
 * matching, expiry FIFOs, a callback per echo), 3.7 of it user time, against fping's 2.4 (0.2
 * user) for the same echoes; with this core 3.9 (docs/PERFORMANCE.md, sixth round). Python sees
 * one call per device to start it and one tuple per device when it ends.
 *
 * One Core per ICMP socket (address family). It owns, for that socket:
 * - the runs: `count` echoes to one destination, `interval_ns` apart, each waiting
 *   `timeout_ns` for its reply (retries are the Python side's: a new run of one echo);
 * - the send queue (runs whose next echo may leave now) and the due heap (next echoes by time);
 * - the slot table: the echo in flight with each sequence number (65,536);
 * - the expiry heap (deadline of each echo in flight);
 * - the finished list: (token, sent, rtts_ms, reason) per finished run, taken by Python.
 *
 * Replies are matched as probes/icmp.py documents: identifier, sequence, source address and
 * the payload prefix (the engine's random block). Echo replies are handled here; every other
 * datagram (ICMP errors, unknown types) goes back to Python, which parses it and calls fail().
 * RTT: the kernel receive timestamp (SO_TIMESTAMPNS) against CLOCK_REALTIME taken right before
 * sendto, unless that disagrees with the CLOCK_MONOTONIC RTT (a wall-clock step).
 *
 * Not thread-safe: called from the event loop's thread only, with the GIL held throughout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define NSEQ 65536
#define MAX_IP_PACKET 65535
#define PREFIX 16             /* payload bytes compared with the engine's block */
#define CLOCK_SLACK_NS 1000000LL
#define ICMP_ECHO 8
#define ICMP_ECHO_REPLY 0
#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129

static inline int64_t clock_ns(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* ---- a binary min-heap of (key, a, b) -------------------------------------------------- */

typedef struct { int64_t key; int32_t a; uint32_t b; } HeapItem;
typedef struct { HeapItem *v; Py_ssize_t n, cap; } Heap;

static int heap_push(Heap *h, int64_t key, int32_t a, uint32_t b) {
    if (h->n == h->cap) {
        Py_ssize_t cap = h->cap ? h->cap * 2 : 1024;
        HeapItem *v = PyMem_Realloc(h->v, cap * sizeof *v);
        if (v == NULL) { PyErr_NoMemory(); return -1; }
        h->v = v;
        h->cap = cap;
    }
    Py_ssize_t i = h->n++;
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (h->v[parent].key <= key) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = (HeapItem){key, a, b};
    return 0;
}

static void heap_pop(Heap *h) {
    HeapItem last = h->v[--h->n];
    Py_ssize_t i = 0, n = h->n;
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h->v[c + 1].key < h->v[c].key) c++;
        if (h->v[c].key >= last.key) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n) h->v[i] = last;
}

/* Pop the top item into `out` when its key is at most `now`; 0 when there is none. */
static int heap_take(Heap *h, int64_t now, HeapItem *out) {
    if (h->n == 0 || h->v[0].key > now) return 0;
    *out = h->v[0];
    heap_pop(h);
    return 1;
}

/* ---- a FIFO of (run, generation) --------------------------------------------------------- */

typedef struct { int32_t run; uint32_t gen; } QItem;
typedef struct { QItem *v; Py_ssize_t head, n, cap; } Ring;

static int ring_push(Ring *q, int32_t run, uint32_t gen) {
    if (q->n == q->cap) {
        Py_ssize_t cap = q->cap ? q->cap * 2 : 1024;
        QItem *v = PyMem_Malloc(cap * sizeof *v);
        if (v == NULL) { PyErr_NoMemory(); return -1; }
        for (Py_ssize_t i = 0; i < q->n; i++) v[i] = q->v[(q->head + i) % q->cap];
        PyMem_Free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->n) % q->cap] = (QItem){run, gen};
    q->n++;
    return 0;
}

static void ring_pop(Ring *q) {
    q->head = (q->head + 1) % q->cap;
    q->n--;
}

/* ---- runs and echoes --------------------------------------------------------------------- */

typedef struct {
    PyObject *token;     /* the caller's object, returned when the run ends; NULL: free */
    PyObject *reason;    /* the last ICMP or send error (str); NULL: none (a timeout) */
    int64_t *rtts;       /* per echo: RTT in ns, -1 for none */
    int32_t *seqs;       /* per echo: its sequence number while in flight, -1 otherwise */
    int cap;             /* entries allocated in rtts and seqs */
    int64_t interval_ns, timeout_ns;
    union { struct sockaddr_in v4; struct sockaddr_in6 v6; } sa;
    uint8_t dst[16];
    int count, size, next_index, inflight, sent;
    uint32_t gen;
    int32_t next_free;
} Run;

typedef struct {
    int32_t owner;       /* its run's id + 1; 0: free (the table starts zeroed: untouched pages) */
    uint16_t index;      /* the echo's index in its run */
    uint16_t gen;        /* bumped at each use: tells stale expiry entries apart */
    int64_t tx_mono, tx_real;
} Slot;

typedef struct {
    PyObject_HEAD
    int fd, family, raw4, dgram;
    unsigned ident;
    Py_buffer block;             /* payload source: the engine's random bytes */
    PyObject *errno_reason;      /* callable(errno) -> str, for send errors */
    Run *runs;
    int32_t runs_cap, free_head;
    Py_ssize_t active;
    Slot *slots;
    unsigned next_seq;
    Py_ssize_t inflight;
    Ring queue;
    Heap due, expiry;
    PyObject *finished;          /* list of (token, sent, rtts_ms, reason) */
    uint8_t *rbuf, *sbuf;
    unsigned long long n_sent, n_received, n_errors, n_send_errors, n_foreign, n_unmatched, n_malformed;
} Core;

static int alen(Core *c) { return c->family == AF_INET ? 4 : 16; }

/* RFC 1071 sum of `data`, folded; 0 or 0xFFFF for a message whose checksum is right. */
static unsigned ones_sum(const uint8_t *data, Py_ssize_t n) {
    uint64_t sum = 0;
    Py_ssize_t i = 0;
    for (; i + 1 < n; i += 2) sum += (unsigned)(data[i] << 8 | data[i + 1]);
    if (n & 1) sum += (unsigned)data[n - 1] << 8;
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return (unsigned)sum;
}

static void release_run(Core *c, int32_t id) {
    Run *r = &c->runs[id];
    for (int i = 0; i < r->next_index && i < r->count; i++) {
        if (r->seqs[i] >= 0) {
            c->slots[r->seqs[i]].owner = 0;
            r->seqs[i] = -1;
            c->inflight--;
        }
    }
    r->inflight = 0;
    Py_CLEAR(r->token);
    Py_CLEAR(r->reason);
    r->gen++;
    r->next_free = c->free_head;
    c->free_head = id;
    c->active--;
}

/* The run's last echo ended: hand (token, sent, rtts_ms, reason) to Python, free the run. */
static int finish_run(Core *c, int32_t id) {
    Run *r = &c->runs[id];
    int answered = 0;
    for (int i = 0; i < r->count; i++) answered += r->rtts[i] >= 0;
    PyObject *rtts = PyTuple_New(answered);
    if (rtts == NULL) return -1;
    for (int i = 0, j = 0; i < r->count; i++) {
        if (r->rtts[i] < 0) continue;
        /* ns / 1e6 as Python computes it: the nearest double to the value in ms */
        PyObject *ms = PyFloat_FromDouble((double)r->rtts[i] / 1e6);
        if (ms == NULL) { Py_DECREF(rtts); return -1; }
        PyTuple_SET_ITEM(rtts, j++, ms);
    }
    PyObject *item = Py_BuildValue("(OiNO)", r->token, r->sent, rtts, r->reason ? r->reason : Py_None);
    if (item == NULL) return -1;
    int rc = PyList_Append(c->finished, item);
    Py_DECREF(item);
    release_run(c, id);
    return rc;
}

/* Echo `index` of run `id` ended (its slot, if any, already freed): rtt_ns >= 0 for a reply,
 * else `reason` (borrowed; NULL for a timeout). */
static int finish_echo(Core *c, int32_t id, int index, int64_t rtt_ns, PyObject *reason) {
    Run *r = &c->runs[id];
    if (rtt_ns >= 0) {
        r->rtts[index] = rtt_ns;
    } else if (reason != NULL) {
        Py_INCREF(reason);
        Py_XSETREF(r->reason, reason);  /* an ICMP or send error says more than a timeout */
    }
    if (r->next_index < r->count || r->inflight > 0) return 0;
    return finish_run(c, id);
}

static void free_slot(Core *c, int seq) {
    Slot *s = &c->slots[seq];
    Run *r = &c->runs[s->owner - 1];
    r->seqs[s->index] = -1;
    r->inflight--;
    c->inflight--;
    s->owner = 0;
}

/* ---- the type ---------------------------------------------------------------------------- */

static void Core_dealloc(Core *c) {
    if (c->runs != NULL) {
        for (int32_t i = 0; i < c->runs_cap; i++) {
            Py_XDECREF(c->runs[i].token);
            Py_XDECREF(c->runs[i].reason);
            PyMem_Free(c->runs[i].rtts);
            PyMem_Free(c->runs[i].seqs);
        }
        PyMem_Free(c->runs);
    }
    PyMem_Free(c->slots);
    PyMem_Free(c->queue.v);
    PyMem_Free(c->due.v);
    PyMem_Free(c->expiry.v);
    PyMem_Free(c->rbuf);
    PyMem_Free(c->sbuf);
    if (c->block.obj != NULL) PyBuffer_Release(&c->block);
    Py_XDECREF(c->errno_reason);
    Py_XDECREF(c->finished);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int Core_init(Core *c, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "family", "raw", "ident", "block", "errno_reason", "first_seq", NULL};
    int raw;
    PyObject *errno_reason;
    if (c->finished != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Core initialised twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iipIy*O|I", kwlist, &c->fd, &c->family, &raw, &c->ident,
                                     &c->block, &errno_reason, &c->next_seq))
        return -1;
    if (c->family != AF_INET && c->family != AF_INET6) {
        PyErr_SetString(PyExc_ValueError, "family must be AF_INET or AF_INET6");
        return -1;
    }
    if (c->block.len < MAX_IP_PACKET || c->ident > 0xFFFF || c->next_seq > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "block must hold 65,535 bytes, ident and first_seq fit 16 bits");
        return -1;
    }
    if (!PyCallable_Check(errno_reason)) {
        PyErr_SetString(PyExc_TypeError, "errno_reason must be callable");
        return -1;
    }
    c->raw4 = raw && c->family == AF_INET;
    c->dgram = !raw;
    Py_INCREF(errno_reason);
    c->errno_reason = errno_reason;
    c->free_head = -1;
    c->slots = PyMem_Calloc(NSEQ, sizeof *c->slots);
    c->rbuf = PyMem_Malloc(MAX_IP_PACKET + 1);  /* +1: a full buffer means truncation */
    c->sbuf = PyMem_Malloc(MAX_IP_PACKET + 1);
    c->finished = PyList_New(0);
    if (c->slots == NULL || c->rbuf == NULL || c->sbuf == NULL || c->finished == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int32_t alloc_run(Core *c, int count) {
    if (c->free_head < 0) {
        int32_t cap = c->runs_cap ? c->runs_cap * 2 : 1024;
        Run *runs = PyMem_Realloc(c->runs, cap * sizeof *runs);
        if (runs == NULL) { PyErr_NoMemory(); return -1; }
        memset(runs + c->runs_cap, 0, (cap - c->runs_cap) * sizeof *runs);
        for (int32_t i = cap - 1; i >= c->runs_cap; i--) {
            runs[i].next_free = c->free_head;
            c->free_head = i;
        }
        c->runs = runs;
        c->runs_cap = cap;
    }
    int32_t id = c->free_head;
    Run *r = &c->runs[id];
    if (r->cap < count) {
        int64_t *rtts = PyMem_Realloc(r->rtts, count * sizeof *rtts);
        if (rtts != NULL) r->rtts = rtts;
        int32_t *seqs = PyMem_Realloc(r->seqs, count * sizeof *seqs);
        if (seqs != NULL) r->seqs = seqs;
        if (rtts == NULL || seqs == NULL) { PyErr_NoMemory(); return -1; }
        r->cap = count;
    }
    c->free_head = r->next_free;
    return id;
}

PyDoc_STRVAR(start_doc,
"start(token, dst, scope_id, count, interval_ns, timeout_ns, size) -> handle\n\n"
"Queue `count` echoes (1-100) of `size` payload bytes (0-65,000) to `dst` (packed, 4 or 16\n"
"bytes; IPv6 link-local with `scope_id`), `interval_ns` apart, each waiting `timeout_ns`.\n"
"The first may leave at the next send(). The handle is for cancel().");

static PyObject *Core_start(Core *c, PyObject *args) {
    PyObject *token;
    Py_buffer dst;
    unsigned scope;
    int count, size;
    long long interval_ns, timeout_ns;
    if (!PyArg_ParseTuple(args, "Oy*IiLLi", &token, &dst, &scope, &count, &interval_ns, &timeout_ns, &size))
        return NULL;
    if (dst.len != alen(c) || count < 1 || count > 1000 || size < 0 || size > 65000 || interval_ns < 0
        || timeout_ns <= 0) {
        PyBuffer_Release(&dst);
        PyErr_SetString(PyExc_ValueError, "bad destination length, count, size, interval or timeout");
        return NULL;
    }
    int32_t id = alloc_run(c, count);
    if (id < 0) { PyBuffer_Release(&dst); return NULL; }
    Run *r = &c->runs[id];
    memcpy(r->dst, dst.buf, dst.len);
    PyBuffer_Release(&dst);
    memset(&r->sa, 0, sizeof r->sa);
    if (c->family == AF_INET) {
        r->sa.v4.sin_family = AF_INET;
        memcpy(&r->sa.v4.sin_addr, r->dst, 4);
    } else {
        r->sa.v6.sin6_family = AF_INET6;
        memcpy(&r->sa.v6.sin6_addr, r->dst, 16);
        r->sa.v6.sin6_scope_id = scope;
    }
    for (int i = 0; i < count; i++) { r->rtts[i] = -1; r->seqs[i] = -1; }
    r->count = count;
    r->size = size;
    r->interval_ns = interval_ns;
    r->timeout_ns = timeout_ns;
    r->next_index = r->inflight = r->sent = 0;
    r->reason = NULL;
    if (ring_push(&c->queue, id, r->gen) < 0) {
        r->next_free = c->free_head;
        c->free_head = id;
        return NULL;
    }
    Py_INCREF(token);
    r->token = token;
    c->active++;
    return PyLong_FromLongLong(((long long)r->gen << 32) | (uint32_t)id);
}

PyDoc_STRVAR(cancel_doc,
"cancel(handle) -> bool\n\nForget the run (nothing of it is returned); False if it ended already.");

static PyObject *Core_cancel(Core *c, PyObject *arg) {
    long long handle = PyLong_AsLongLong(arg);
    if (handle == -1 && PyErr_Occurred()) return NULL;
    int32_t id = (int32_t)(handle & 0xFFFFFFFF);
    uint32_t gen = (uint32_t)(handle >> 32);
    if (id < 0 || id >= c->runs_cap || c->runs[id].token == NULL || c->runs[id].gen != gen) Py_RETURN_FALSE;
    release_run(c, id);
    Py_RETURN_TRUE;
}

/* The echo request of `r` with sequence `seq` into c->sbuf; returns its length. */
static Py_ssize_t build(Core *c, Run *r, unsigned seq) {
    uint8_t *p = c->sbuf;
    p[0] = c->family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
    p[1] = 0;
    p[2] = p[3] = 0;  /* the kernel sums ICMPv6 (RFC 4443 2.3) and datagram sockets */
    p[4] = c->ident >> 8;
    p[5] = c->ident & 0xFF;
    p[6] = seq >> 8;
    p[7] = seq & 0xFF;
    memcpy(p + 8, c->block.buf, r->size);
    if (c->raw4) {
        unsigned sum = ones_sum(p, 8 + r->size);
        unsigned check = ~sum & 0xFFFF;
        p[2] = check >> 8;
        p[3] = check & 0xFF;
    }
    return 8 + r->size;
}

static int alloc_seq(Core *c) {
    for (int i = 0; i < NSEQ; i++) {
        unsigned seq = c->next_seq;
        c->next_seq = (seq + 1) & 0xFFFF;
        if (c->slots[seq].owner == 0) return (int)seq;
    }
    return -1;
}

PyDoc_STRVAR(send_doc,
"send(budget) -> int\n\n"
"Send up to `budget` queued echoes; returns the attempts (a failed send ends its echo with the\n"
"errno's reason). Stops early when the socket would block or every sequence number is in\n"
"flight: the rest waits for the next call.");

static PyObject *Core_send(Core *c, PyObject *arg) {
    long budget = PyLong_AsLong(arg);
    if (budget == -1 && PyErr_Occurred()) return NULL;
    long done = 0;
    socklen_t salen = c->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    while (done < budget && c->queue.n) {
        QItem q = c->queue.v[c->queue.head];
        Run *r = &c->runs[q.run];
        if (r->token == NULL || r->gen != q.gen) { ring_pop(&c->queue); continue; }  /* cancelled */
        int seq = alloc_seq(c);
        if (seq < 0) break;
        Py_ssize_t len = build(c, r, (unsigned)seq);
        int64_t tx_mono = 0, tx_real = 0;
        int err = 0;
        for (int attempt = 1; attempt <= 2; attempt++) {
            tx_mono = clock_ns(CLOCK_MONOTONIC);
            tx_real = clock_ns(CLOCK_REALTIME);
            if (sendto(c->fd, c->sbuf, len, 0, (struct sockaddr *)&r->sa, salen) >= 0) { err = 0; break; }
            err = errno;
            /* On a datagram socket a send may fail with the pending error of an earlier ICMP
             * error (IP_RECVERR) about another target: now cleared, one more try tells. */
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ENOBUFS || !c->dgram) break;
        }
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ENOBUFS) break;
        ring_pop(&c->queue);
        int32_t id = q.run;
        int index = r->next_index++;
        r->sent++;
        done++;
        if (r->next_index < r->count && heap_push(&c->due, tx_mono + r->interval_ns, id, r->gen) < 0) return NULL;
        if (err) {
            c->n_send_errors++;
            PyObject *reason = PyObject_CallFunction(c->errno_reason, "i", err);
            if (reason == NULL) return NULL;
            int rc = finish_echo(c, id, index, -1, reason);
            Py_DECREF(reason);
            if (rc < 0) return NULL;
            continue;
        }
        c->n_sent++;
        Slot *s = &c->slots[seq];
        s->owner = id + 1;
        s->index = (uint16_t)index;
        s->gen++;
        s->tx_mono = tx_mono;
        s->tx_real = tx_real;
        r->seqs[index] = seq;
        r->inflight++;
        c->inflight++;
        if (heap_push(&c->expiry, tx_mono + r->timeout_ns, seq, s->gen) < 0) return NULL;
    }
    return PyLong_FromLong(done);
}

PyDoc_STRVAR(submit_due_doc,
"submit_due(now_ns)\n\nQueue the next echoes whose time (CLOCK_MONOTONIC ns) has come.");

static PyObject *Core_submit_due(Core *c, PyObject *arg) {
    long long now = PyLong_AsLongLong(arg);
    if (now == -1 && PyErr_Occurred()) return NULL;
    HeapItem it;
    while (heap_take(&c->due, now, &it)) {
        Run *r = &c->runs[it.a];
        if (r->token != NULL && r->gen == it.b && ring_push(&c->queue, it.a, it.b) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(expire_doc,
"expire(now_ns)\n\nEnd as timed out every echo whose deadline (CLOCK_MONOTONIC ns) has passed;\n"
"read() first, so that a reply waiting in the socket is not taken for a loss.");

static PyObject *Core_expire(Core *c, PyObject *arg) {
    long long now = PyLong_AsLongLong(arg);
    if (now == -1 && PyErr_Occurred()) return NULL;
    HeapItem it;
    while (heap_take(&c->expiry, now, &it)) {
        Slot *s = &c->slots[it.a];
        if (s->owner == 0 || s->gen != it.b) continue;  /* answered or cancelled */
        int32_t id = s->owner - 1;
        int index = s->index;
        free_slot(c, it.a);
        if (finish_echo(c, id, index, -1, NULL) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

/* The slot of the echo `seq` sent to `src` (packed), or NULL (counted as unmatched). */
static Slot *match(Core *c, unsigned ident, unsigned seq, const uint8_t *src) {
    if (ident != c->ident) { c->n_foreign++; return NULL; }
    Slot *s = &c->slots[seq];
    if (s->owner == 0 || memcmp(c->runs[s->owner - 1].dst, src, alen(c)) != 0) { c->n_unmatched++; return NULL; }
    return s;
}

static int on_reply(Core *c, const uint8_t *icmp, Py_ssize_t len, const uint8_t *src, int64_t rx_real) {
    unsigned ident = icmp[4] << 8 | icmp[5], seq = icmp[6] << 8 | icmp[7];
    Slot *s = match(c, ident, seq, src);
    if (s == NULL) return 0;
    Run *r = &c->runs[s->owner - 1];
    Py_ssize_t want = r->size < PREFIX ? r->size : PREFIX;
    if (len - 8 < want || memcmp(icmp + 8, c->block.buf, want) != 0) {
        c->n_foreign++;  /* right numbers, someone else's payload */
        return 0;
    }
    int64_t rtt = clock_ns(CLOCK_MONOTONIC) - s->tx_mono;
    if (rx_real >= 0) {
        int64_t kernel_rtt = rx_real - s->tx_real;
        if (kernel_rtt >= 0 && kernel_rtt <= rtt + CLOCK_SLACK_NS) rtt = kernel_rtt;
    }
    int32_t id = s->owner - 1;
    int index = s->index;
    free_slot(c, (int)seq);
    if (rtt > r->timeout_ns) return finish_echo(c, id, index, -1, NULL);  /* late: lost, like fping */
    c->n_received++;
    return finish_echo(c, id, index, rtt, NULL);
}

PyDoc_STRVAR(read_doc,
"read(limit) -> list[bytes]\n\n"
"Read up to `limit` datagrams (until the socket would block). Echo replies are matched here;\n"
"every other datagram (the IPv4 header included on raw IPv4 sockets) is returned for Python\n"
"to parse (ICMP errors quoting an echo: fail()).");

static PyObject *Core_read(Core *c, PyObject *arg) {
    long limit = PyLong_AsLong(arg);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    PyObject *others = PyList_New(0);
    if (others == NULL) return NULL;
    union { struct sockaddr_in v4; struct sockaddr_in6 v6; } name;
    char control[512];
    struct iovec iov = {c->rbuf, MAX_IP_PACKET + 1};
    for (long i = 0; i < limit; i++) {
        struct msghdr msg = {&name, sizeof name, &iov, 1, control, sizeof control, 0};
        ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            /* A datagram socket reports each ICMP error once more as a pending socket
             * error; the details were (or will be) read from the error queue. */
            continue;
        }
        if (n > MAX_IP_PACKET || (msg.msg_flags & MSG_TRUNC)) { c->n_malformed++; continue; }
        int64_t rx_real = -1;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS
                && cm->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                rx_real = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
            }
        }
        const uint8_t *src = c->family == AF_INET ? (const uint8_t *)&name.v4.sin_addr
                                                 : (const uint8_t *)&name.v6.sin6_addr;
        const uint8_t *icmp = c->rbuf;
        Py_ssize_t len = n;
        if (c->raw4) {
            unsigned ihl = (c->rbuf[0] & 0x0F) * 4;
            if (len >= 20 && c->rbuf[0] >> 4 == 4 && ihl >= 20 && len >= ihl + 8) {
                icmp += ihl;
                len -= ihl;
            } else {
                len = 0;  /* not a whole IPv4 datagram: Python's parser says so */
            }
        }
        int reply = c->family == AF_INET ? ICMP_ECHO_REPLY : ICMP6_ECHO_REPLY;
        if (len >= 8 && icmp[0] == reply) {
            if (c->raw4 && ones_sum(icmp, len) % 0xFFFF != 0) {
                c->n_malformed++;  /* raw sockets see ICMP before the kernel checks its sum */
                continue;
            }
            if (on_reply(c, icmp, len, src, rx_real) < 0) { Py_DECREF(others); return NULL; }
            continue;
        }
        PyObject *item = PyBytes_FromStringAndSize((const char *)c->rbuf, n);
        if (item == NULL || PyList_Append(others, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(others);
            return NULL;
        }
        Py_DECREF(item);
    }
    return others;
}

PyDoc_STRVAR(fail_doc,
"fail(ident, seq, dst, reason) -> bool\n\n"
"An ICMP error quoting echo (ident, seq) sent to `dst` (packed): end that echo with `reason`.\n"
"False (and counted foreign or unmatched) when no such echo is in flight.");

static PyObject *Core_fail(Core *c, PyObject *args) {
    unsigned ident, seq;
    Py_buffer dst;
    PyObject *reason;
    if (!PyArg_ParseTuple(args, "IIy*U", &ident, &seq, &dst, &reason)) return NULL;
    if (dst.len != alen(c) || seq > 0xFFFF) {
        PyBuffer_Release(&dst);
        c->n_unmatched++;
        Py_RETURN_FALSE;
    }
    Slot *s = match(c, ident, seq, dst.buf);
    PyBuffer_Release(&dst);
    if (s == NULL) Py_RETURN_FALSE;
    c->n_errors++;
    int32_t id = s->owner - 1;
    int index = s->index;
    free_slot(c, (int)seq);
    if (finish_echo(c, id, index, -1, reason) < 0) return NULL;
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(take_finished_doc,
"take_finished() -> list[(token, sent, rtts_ms, reason | None)]\n\n"
"The runs ended since the last call, in the order they ended: echoes attempted, the RTTs of\n"
"the answered ones in send order (ms), and the last ICMP or send error (None: timeouts only).");

static PyObject *Core_take_finished(Core *c, PyObject *Py_UNUSED(ignored)) {
    PyObject *done = c->finished;
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL) return NULL;
    c->finished = fresh;
    return done;
}

PyDoc_STRVAR(next_due_doc,
"next_due() -> int | None\n\nThe earliest next-echo time or deadline (CLOCK_MONOTONIC ns), if any.");

static PyObject *Core_next_due(Core *c, PyObject *Py_UNUSED(ignored)) {
    int64_t due = INT64_MAX;
    if (c->due.n) due = c->due.v[0].key;
    if (c->expiry.n && c->expiry.v[0].key < due) due = c->expiry.v[0].key;
    if (due == INT64_MAX) Py_RETURN_NONE;
    return PyLong_FromLongLong(due);
}

PyDoc_STRVAR(queued_doc, "queued() -> int\n\nEchoes waiting in the send queue (cancelled ones until sent past).");

static PyObject *Core_queued(Core *c, PyObject *Py_UNUSED(ignored)) { return PyLong_FromSsize_t(c->queue.n); }

PyDoc_STRVAR(state_doc,
"state() -> (queued, runs, in_flight)\n\n"
"Echoes waiting in the send queue (cancelled ones until sent past), runs not ended, echoes\n"
"awaiting a reply.");

static PyObject *Core_state(Core *c, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("(nnn)", c->queue.n, c->active, c->inflight);
}

PyDoc_STRVAR(counters_doc,
"counters() -> dict\n\nsent, received, errors, send_errors, foreign, unmatched, malformed (since created).");

static PyObject *Core_counters(Core *c, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("{sKsKsKsKsKsKsK}", "sent", c->n_sent, "received", c->n_received, "errors", c->n_errors,
                         "send_errors", c->n_send_errors, "foreign", c->n_foreign, "unmatched", c->n_unmatched,
                         "malformed", c->n_malformed);
}

static PyMethodDef Core_methods[] = {
    {"start", (PyCFunction)Core_start, METH_VARARGS, start_doc},
    {"cancel", (PyCFunction)Core_cancel, METH_O, cancel_doc},
    {"send", (PyCFunction)Core_send, METH_O, send_doc},
    {"submit_due", (PyCFunction)Core_submit_due, METH_O, submit_due_doc},
    {"expire", (PyCFunction)Core_expire, METH_O, expire_doc},
    {"read", (PyCFunction)Core_read, METH_O, read_doc},
    {"fail", (PyCFunction)Core_fail, METH_VARARGS, fail_doc},
    {"take_finished", (PyCFunction)Core_take_finished, METH_NOARGS, take_finished_doc},
    {"next_due", (PyCFunction)Core_next_due, METH_NOARGS, next_due_doc},
    {"queued", (PyCFunction)Core_queued, METH_NOARGS, queued_doc},
    {"state", (PyCFunction)Core_state, METH_NOARGS, state_doc},
    {"counters", (PyCFunction)Core_counters, METH_NOARGS, counters_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "probes._icmpcore.Core",
    .tp_doc = PyDoc_STR("Core(fd, family, raw, ident, block, errno_reason, first_seq=0): the echoes of one ICMP socket."),
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "probes._icmpcore", "The per-echo core of probes.icmp (see the C source's header).",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__icmpcore(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
