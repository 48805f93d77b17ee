/*
 * The pacing engine's numeric kernels, compiled: queue position costs, Erlang A, horizon costs.
 *
 * Why C: a cold decision used to make a few hundred small numpy calls (1-4 us each of fixed
 * cost) for little arithmetic. Here each kernel is one call with plain floats and ints; the
 * Python modules (queueing.py, horizon.py) keep the models' documentation, their caches and
 * their public classes, and call these. The maths is the one described there, step for step:
 *
 * - position tables: queue position j's virtual wait is a sum of j + 1 exponential stages,
 *   approximated by a gamma distribution with the same mean and stage count; its tails are
 *   exact Poisson sums up to 60 stages and Wilson-Hilferty beyond;
 * - Erlang A (M/M/N+M): birth-death weights c_k lambda^k, figures and their derivatives in
 *   u = log lambda, safeguarded Newton on u for the largest rate within the goals;
 * - horizon costs: the expected queue costs of eight "free minus queue" distributions, each a
 *   sum of independent binomial and Poisson counts, by Parseval over one window (closed-form
 *   characteristic functions, one FFT of the queue's cost over the window).
 *
 * - the progressive plan's search over offer counts (progressive.py), each batch one horizon
 *   evaluation, so a plan is one call.
 *
 * tests/unit/engine/test_engine_reference.py checks every kernel against straightforward loops
 * (streams/engine/reference.py, which the engine also falls back on where this does not build).
 * State: a few position tables and four slots of prepared horizon transforms are kept between
 * calls (the calls of one decision share them; their buffers are the process's, allocated once),
 * each with the squares of one offer's transform and, for the current search only (an epoch: one
 * top-level call), its transformed cost window (and its shift to the last start) and the offers'
 * powers of the counts it evaluated; every call holds the GIL throughout, so they need no lock.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <complex.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_STAGES 60
#define NEGLIGIBLE_WEIGHT 1e-12
#define NEGLIGIBLE_BELOW_MODE 1e-20
#define EXTRAPOLATED_STEP 1e-6
#define SLICES 3
#define WINDOW_SIGMAS 7.0
#define WINDOW_PAD 4
#define MAX_TERMS 24
/* Products of transforms below e^-45 in modulus are left out of the Parseval sums. */
#define NEGLIGIBLE_LOG_PRODUCT -45.0
#define MAX_ROWS 8
/* A row whose transform's modulus is provably below e^-50 at a frequency is not computed there. */
#define NEGLIGIBLE_ROW 50.0
#define LEVELS 16 /* offer counts below 2^16 use the prepared squares; larger ones power() */
#define MEMO 16   /* offer counts whose powers one search keeps */
#define MAX_BATCH 16 /* offer counts one batch of the progressive search evaluates */
/* The vectorised loops' callers are compiled twice on x86-64 with GCC: for AVX2 (four doubles a
   step instead of two) and for the baseline, chosen at load time by the CPU. AVX2 without FMA
   (and -ffp-contract=off in setup.py) makes the same roundings: the results are bit-identical. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* ------------------------------------------------------------------------------------------ */
/* Queue position tables                                                                        */

/* One group's position table, priced on demand: increments per position (abandon, late, lost)
 * and cumulative sums with a leading 0. A few tables are kept (the last used ones): one decision
 * looks up the same table several times. */
typedef struct {
    int used;
    long agents, positions;
    double handle_s, patience_s, short_s, sl_s;
    long priced, capacity;
    double mean_wait; /* running sum of the stage means up to the last priced position */
    double *inc;      /* 3 x capacity: abandon, late, lost */
    double *cum;      /* 3 x (capacity + 1) */
} Table;

#define TABLES 4
/* A table's buffers hold this many positions at first (48 KB each: a 1,000-agent group's first
   few hundred), grown by doubling, kept, and touched when allocated (see touch). */
#define MIN_TABLE_POSITIONS 2048

/* Writes one byte of every page of a new buffer, so that the system maps its pages now (through a
   volatile pointer: a memset of fresh memory to 0 may become calloc's, which leaves them unmapped). */
static void touch(void *buffer, size_t size) {
    volatile char *bytes = buffer;
    for (size_t i = 0; i < size; i += 4096) bytes[i] = 0;
}

static Table tables[TABLES];
static int next_table = 0;

/* P(Gamma(stages, 1) > x) = P(Poisson(x) < stages). */
static double gamma_tail(long stages, double x) {
    if (x <= 0) return 1.0;
    if (stages <= EXACT_STAGES) {
        /* the counter is a double (whole numbers below 2^53: exact) so no conversion per term */
        double term = exp(-(x < 745.0 ? x : 745.0)), total = term, last = (double)stages;
        for (double i = 1.0; i < last; i += 1.0) {
            term *= x / i;
            total += term;
        }
        return total < 1.0 ? total : 1.0;
    }
    double n = (double)stages;
    double z = (cbrt(x / n) - (1 - 1 / (9 * n))) * sqrt(9 * n);
    return z < 9.0 ? 0.5 * erfc(z * M_SQRT1_2) : 0.0;
}

static int table_reserve(Table *t, long count) {
    if (count <= t->capacity) return 0;
    long capacity = t->capacity ? t->capacity : MIN_TABLE_POSITIONS;
    while (capacity < count) capacity *= 2;
    double *inc = malloc(sizeof(double) * 3 * capacity), *cum = malloc(sizeof(double) * 3 * (capacity + 1));
    if (!inc || !cum) {
        free(inc);
        free(cum);
        PyErr_NoMemory();
        return -1;
    }
    touch(inc, sizeof(double) * 3 * capacity);
    touch(cum, sizeof(double) * 3 * (capacity + 1));
    for (int r = 0; r < 3; r++) {
        if (t->priced) {
            memcpy(inc + r * capacity, t->inc + r * t->capacity, sizeof(double) * t->priced);
            memcpy(cum + r * (capacity + 1), t->cum + r * (t->capacity + 1), sizeof(double) * (t->priced + 1));
        } else {
            cum[r * (capacity + 1)] = 0.0;
        }
    }
    free(t->inc);
    free(t->cum);
    t->inc = inc;
    t->cum = cum;
    t->capacity = capacity;
    return 0;
}

/* The table of these arguments (found or started afresh). */
static Table *table_for(long agents, double handle_s, double patience_s, double short_s, double sl_s,
                        long positions) {
    for (int i = 0; i < TABLES; i++) {
        Table *t = &tables[i];
        if (t->used && t->agents == agents && t->handle_s == handle_s && t->patience_s == patience_s &&
            t->short_s == short_s && t->sl_s == sl_s && t->positions == positions)
            return t;
    }
    Table *t = &tables[next_table];
    next_table = (next_table + 1) % TABLES;
    t->used = 1;
    t->agents = agents;
    t->handle_s = handle_s;
    t->patience_s = patience_s;
    t->short_s = short_s;
    t->sl_s = sl_s;
    t->positions = positions;
    t->priced = 0;
    t->mean_wait = 0.0;
    if (t->capacity) {
        for (int r = 0; r < 3; r++) t->cum[r * (t->capacity + 1)] = 0.0;
    }
    return t;
}

/* Price positions up to count (at most the table's positions). */
static int table_price(Table *t, long count) {
    if (count > t->positions) count = t->positions;
    if (count <= t->priced) return 0;
    if (table_reserve(t, count) < 0) return -1;
    double service = (double)t->agents / t->handle_s, gamma = 1.0 / t->patience_s;
    double keep_short = exp(-gamma * t->short_s);
    long cap = t->capacity;
    for (long j = t->priced; j < count; j++) {
        t->mean_wait += 1.0 / (service + (double)j * gamma);
        long stages = j + 1;
        double rate = (double)stages / t->mean_wait;
        double served = pow(rate / (rate + gamma), (double)stages);
        double short_tail = gamma_tail(stages, rate * t->short_s);
        double short_served = gamma_tail(stages, (rate + gamma) * t->short_s);
        double late = gamma_tail(stages, (rate + gamma) * t->sl_s);
        /* (x > 0 ? x : 0) is fmax(x, 0) without the library call: the same number but for a
           zero's sign, which no sum of these keeps */
        double a = keep_short * short_tail - served * short_served, l = served * late;
        a = a > 0.0 ? a : 0.0;
        l = l > 0.0 ? l : 0.0;
        double lost = 1.0 - served;
        t->inc[j] = a;
        t->inc[cap + j] = l;
        t->inc[2 * cap + j] = lost;
        t->cum[j + 1] = t->cum[j] + a;
        t->cum[(cap + 1) + j + 1] = t->cum[(cap + 1) + j] + l;
        t->cum[2 * (cap + 1) + j + 1] = t->cum[2 * (cap + 1) + j] + lost;
    }
    t->priced = count;
    return 0;
}

/* Cumulative cost (row 0 abandon, 1 late, 2 lost) of a queue of `length`; beyond the table every
 * further position costs like the last one. The table must be priced that far (or fully). */
static double table_at(const Table *t, int row, long length) {
    const double *c = t->cum + row * (t->capacity + 1);
    if (length <= 0) return 0.0;
    long last = t->positions;
    if (length <= last) return c[length];
    return c[last] + (double)(length - last) * (c[last] - c[last - 1]);
}

static int parse_table(PyObject *args, Table **out, long *extra) {
    long agents, positions;
    double handle_s, patience_s, short_s, sl_s;
    *extra = 0;
    if (!PyArg_ParseTuple(args, "lddddl|l", &agents, &handle_s, &patience_s, &short_s, &sl_s, &positions, extra))
        return -1;
    if (agents < 1 || positions < 1 || !(handle_s > 0) || !(patience_s > 0) || !(short_s >= 0) || !(sl_s >= 0)) {
        PyErr_SetString(PyExc_ValueError, "position costs need agents >= 1, positions >= 1, handle and patience > 0, "
                                          "short and service-level thresholds >= 0");
        return -1;
    }
    *out = table_for(agents, handle_s, patience_s, short_s, sl_s, positions);
    return 0;
}

PyDoc_STRVAR(position_table_doc,
             "position_table(agents, handle_s, patience_s, short_s, sl_s, positions, count) -> bytes\n\n"
             "Cumulative (abandon, late, lost) costs of queues of length 0..count (count <= positions), as\n"
             "3 x (count + 1) float64 values, row by row.");

static PyObject *position_table(PyObject *self, PyObject *args) {
    Table *t;
    long count;
    if (parse_table(args, &t, &count) < 0) return NULL;
    if (count < 0 || count > t->positions) {
        PyErr_SetString(PyExc_ValueError, "count must be within 0..positions");
        return NULL;
    }
    if (table_price(t, count) < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(sizeof(double) * 3 * (count + 1)));
    if (!out) return NULL;
    double *data = (double *)PyBytes_AS_STRING(out);
    for (int r = 0; r < 3; r++) memcpy(data + r * (count + 1), t->cum + r * (t->capacity + 1), sizeof(double) * (count + 1));
    return out;
}

PyDoc_STRVAR(position_at_doc,
             "position_at(agents, handle_s, patience_s, short_s, sl_s, positions, length) -> (abandons, late)\n\n"
             "Expected counted abandons and late answers among `length` queued interactions (extrapolated\n"
             "linearly past the table).");

static PyObject *position_at(PyObject *self, PyObject *args) {
    Table *t;
    long length;
    if (parse_table(args, &t, &length) < 0) return NULL;
    if (table_price(t, length) < 0) return NULL;
    return Py_BuildValue("(dd)", table_at(t, 0, length), table_at(t, 1, length));
}

/* ------------------------------------------------------------------------------------------ */
/* Erlang A                                                                                     */

typedef struct {
    long agents, max_queue, states; /* states = agents + max_queue + 1 */
    double service, queue_base, gamma; /* death rates: k * service up to the agents, then
                                          queue_base + j * gamma (see death_rate) */
    Table *table;
    double *w;                       /* scratch weights */
} ErlangA;

typedef struct {
    double rate, in_system, abandonment, service_level; /* the steady state */
    double abandon_d, level_d, in_system_d;             /* derivatives in u = log rate */
} Steady;

static int erlang_init(ErlangA *m, long agents, double handle_s, double patience_s, Table *table) {
    double service = 1.0 / handle_s, gamma = 1.0 / patience_s;
    m->agents = agents;
    m->max_queue = table->positions - 1;
    m->states = agents + m->max_queue + 1;
    m->table = table;
    m->service = service;
    m->queue_base = (double)agents * service;
    m->gamma = gamma;
    m->w = malloc(sizeof(double) * m->states);
    if (!m->w) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The death rate out of state k >= 1, computed where it is needed (each evaluation reads a few
 * hundred states of a chain of ~3 x agents; a table of them all cost more than the walks). */
static inline double death_rate(const ErlangA *m, long k) {
    return k <= m->agents ? (double)k * m->service : m->queue_base + (double)(k - m->agents) * m->gamma;
}

static void erlang_free(ErlangA *m) {
    free(m->w);
}

/* The steady state at lambda = e^u. The weights are walked from the mode (the largest k whose
 * death rate is at most lambda: the chain is unimodal) outwards, relative to the mode's weight;
 * the queue is followed up to its first weight that is negligible (1e-12) against the mode. */
static int erlang_evaluate(ErlangA *m, double u, Steady *out) {
    double lambda = exp(u);
    long n = m->agents, last_state = m->states - 1;
    double *w = m->w;
    /* death rates increase with k: bisect for the last k whose rate is <= lambda */
    long lo = 0, hi = last_state;
    while (lo < hi) {
        long mid = (lo + hi + 1) / 2;
        if (death_rate(m, mid) <= lambda) lo = mid; else hi = mid - 1;
    }
    long mode = lo;
    w[mode] = 1.0;
    /* Each walk runs in two stretches, the queue's states and the agents' (death_rate's two
       formulas without its test per state). */
    const double service = m->service, queue_base = m->queue_base, gamma = m->gamma;
    long first = 0, k = mode;
    for (; k > n; k--) {
        w[k - 1] = w[k] * (queue_base + (double)(k - n) * gamma) / lambda;
        if (w[k - 1] < (k - 1 <= n ? NEGLIGIBLE_BELOW_MODE : 1e-300)) { first = k - 1; w[first] = 0.0; goto upwards; }
    }
    for (; k > 0; k--) {
        w[k - 1] = w[k] * ((double)k * service) / lambda;
        /* below the agents, the walk stops at weights below 1e-20 of the mode's (they decrease
           from there down: nothing below moves the sums, which are at least 1, past rounding) */
        if (w[k - 1] < NEGLIGIBLE_BELOW_MODE) { first = k - 1; w[first] = 0.0; break; }
    }
upwards:
    /* upwards: through the agents' states, then the queue until a negligible weight */
    ;
    long end = last_state;
    for (k = mode + 1; k <= n && k <= last_state; k++) w[k] = w[k - 1] * lambda / ((double)k * service);
    if (mode < n && w[n] <= NEGLIGIBLE_WEIGHT) {
        end = n;
    } else {
        for (k = mode + 1 > n + 1 ? mode + 1 : n + 1; k <= last_state; k++) {
            w[k] = w[k - 1] * lambda / (queue_base + (double)(k - n) * gamma);
            if (w[k] <= NEGLIGIBLE_WEIGHT) { end = k; break; }
        }
    }
    long queued = end - n;
    if (table_price(m->table, queued + 1) < 0) return -1;
    const Table *t = m->table;
    long cap = t->capacity;
    double total = 0, k_total = 0, k2_total = 0;
    for (long k = first; k <= end; k++) {
        double wk = w[k], kk = (double)k;
        total += wk;
        k_total += kk * wk;
        k2_total += kk * kk * wk;
    }
    double s[6] = {0, 0, 0, 0, 0, 0};
    for (long j = 0; j <= queued; j++) {
        double wk = w[n + j], kk = (double)(n + j);
        for (int r = 0; r < 3; r++) {
            double f = wk * t->inc[r * cap + j];
            s[r] += f;
            s[3 + r] += kk * f;
        }
    }
    for (int r = 0; r < 6; r++) s[r] /= total;
    double abandon = s[0], late = s[1], lost = s[2];
    double mean_k = k_total / total;
    double in_system_d = k2_total / total - mean_k * mean_k;
    double abandon_d = s[3] - abandon * mean_k, late_d = s[4] - late * mean_k, lost_d = s[5] - lost * mean_k;
    double counted = 1 - (lost - abandon), counted_d;
    if (counted <= 1e-12) {
        counted = 1e-12;
        counted_d = 0.0;
    } else {
        counted_d = abandon_d - lost_d;
    }
    double served = 1 - lost - late;
    out->rate = lambda;
    out->in_system = mean_k;
    out->abandonment = abandon / counted;
    out->abandon_d = (abandon_d * counted - abandon * counted_d) / (counted * counted);
    out->service_level = fmax(0.0, served) / counted;
    out->level_d = served > 0 ? ((-lost_d - late_d) * counted - served * counted_d) / (counted * counted) : 0.0;
    out->in_system_d = in_system_d;
    return 0;
}

static PyObject *steady_tuple(double rate, double in_system, double abandonment, double level) {
    return Py_BuildValue("(dddd)", rate, in_system, abandonment, level);
}

PyDoc_STRVAR(steady_state_doc,
             "steady_state(agents, rate, handle_s, patience_s, short_s, sl_s, positions)\n"
             "-> (rate, in_system, abandonment, service_level)\n\n"
             "Erlang A at one Poisson arrival rate; the queue's costs from the position table of\n"
             "(agents, handle_s, patience_s, short_s, sl_s, positions).");

static PyObject *steady_state(PyObject *self, PyObject *args) {
    long agents, positions;
    double rate, handle_s, patience_s, short_s, sl_s;
    if (!PyArg_ParseTuple(args, "ldddddl", &agents, &rate, &handle_s, &patience_s, &short_s, &sl_s, &positions))
        return NULL;
    if (agents < 1 || positions < 1 || !(handle_s > 0) || !(patience_s > 0)) {
        PyErr_SetString(PyExc_ValueError, "steady_state needs agents >= 1, positions >= 1, handle and patience > 0");
        return NULL;
    }
    if (!(rate > 0)) return steady_tuple(rate, 0.0, 0.0, 1.0);
    ErlangA m;
    Table *t = table_for(agents, handle_s, patience_s, short_s, sl_s, positions);
    if (erlang_init(&m, agents, handle_s, patience_s, t) < 0) return NULL;
    Steady s;
    int failed = erlang_evaluate(&m, log(rate), &s);
    erlang_free(&m);
    if (failed) return NULL;
    return steady_tuple(s.rate, s.in_system, s.abandonment, s.service_level);
}

/* How far the binding condition is past its target (> 0: broken), and its derivative in u. */
static void excess(const Steady *s, double log_goal, int has_miss, double log_miss, double *value, double *slope) {
    double a = s->abandonment;
    *value = a > 0 ? log(a) - log_goal : -INFINITY;
    *slope = a > 0 ? s->abandon_d / a : 1.0;
    if (has_miss) {
        double miss = 1 - s->service_level;
        double value_s = miss > 0 ? log(miss) - log_miss : -INFINITY;
        if (value_s > *value) {
            *value = value_s;
            *slope = miss > 0 ? -s->level_d / miss : 1.0;
        }
    }
}

PyDoc_STRVAR(erlang_a_rate_doc,
             "erlang_a_rate(agents, handle_s, patience_s, short_s, sl_s, max_abandonment, min_service_level)\n"
             "-> (rate, in_system, abandonment, service_level)\n\n"
             "The largest Poisson arrival rate (up to twice the group's service rate) whose Erlang A steady\n"
             "state keeps both targets: safeguarded Newton on log(rate) (see queueing.erlang_a_rate).");

static PyObject *erlang_a_rate(PyObject *self, PyObject *args) {
    long agents;
    double handle_s, patience_s, short_s, sl_s, max_abandonment, min_service_level;
    if (!PyArg_ParseTuple(args, "ldddddd", &agents, &handle_s, &patience_s, &short_s, &sl_s, &max_abandonment,
                          &min_service_level))
        return NULL;
    if (agents < 1 || !(handle_s > 0) || !(patience_s > 0) || !(max_abandonment > 0)) {
        PyErr_SetString(PyExc_ValueError, "erlang_a_rate needs agents >= 1, handle, patience and the goal > 0");
        return NULL;
    }
    if (min_service_level >= 1) return steady_tuple(0.0, 0.0, 0.0, 1.0);
    Table *t = table_for(agents, handle_s, patience_s, short_s, sl_s, 2 * agents + 60);
    ErlangA m;
    if (erlang_init(&m, agents, handle_s, patience_s, t) < 0) return NULL;
    double upper = log(2.0 * (double)agents / handle_s);
    double log_goal = log(max_abandonment);
    int has_miss = min_service_level > 0;
    double log_miss = has_miss ? log(1 - min_service_level) : 0.0;
    double good_u = -INFINITY;
    Steady good = {0.0, 0.0, 0.0, 1.0, 0, 0, 0}, state;
    double bad_u = upper + 1e-9;
    double a0 = (double)agents;
    double u = fmin(upper, log(a0 * a0 / (a0 + 3) / handle_s));
    PyObject *result = NULL;
    for (int iteration = 0; iteration < 100; iteration++) {
        double value, slope;
        if (erlang_evaluate(&m, u, &state) < 0) goto done;
        excess(&state, log_goal, has_miss, log_miss, &value, &slope);
        if (value <= 0) {
            good_u = u;
            good = state;
            if (u >= upper) {
                result = steady_tuple(state.rate, state.in_system, state.abandonment, state.service_level);
                goto done;
            }
        } else {
            bad_u = u;
        }
        if (bad_u - good_u < 1e-10) break;
        double step = slope > 0 && isfinite(value) ? -value / slope : NAN;
        if (value <= 0 && step >= 0 && step < 1e-10) {
            result = steady_tuple(state.rate, state.in_system, state.abandonment, state.service_level);
            goto done;
        }
        if (value <= 0 && step >= 0 && step < EXTRAPOLATED_STEP && u + step < fmin(bad_u, upper)) {
            /* The last Newton step is tiny: the state there follows to first order (an error of
               ~step^2), a hair short of the root so that the rate keeps the goal. */
            double delta = step * (1 - 1e-3);
            result = steady_tuple(exp(u + delta), state.in_system + delta * state.in_system_d,
                                  state.abandonment + delta * state.abandon_d,
                                  state.service_level + delta * state.level_d);
            goto done;
        }
        double target = (value > 0 && step > -1e-10 && step <= 0) ? u - 1e-10 : u + step;
        double low = isfinite(good_u) ? good_u : bad_u - 40.0;
        if (u < upper && upper <= target && bad_u > upper) {
            target = upper;
        } else if (!(low < target && target < bad_u)) {
            target = isfinite(good_u) ? (low + bad_u) / 2 : bad_u - fmax(1.0, 2 * (bad_u - u));
        }
        u = fmin(target, upper);
    }
    result = steady_tuple(good.rate, good.in_system, good.abandonment, good.service_level);
done:
    erlang_free(&m);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Horizon costs                                                                                */

enum { BINOMIAL = 0, POISSON = 1 };

typedef struct {
    int kind;
    long trials;
    double q;
    int sign;
} Term;

typedef struct {
    Term terms[MAX_TERMS];
    int n_terms;
    double fixed[MAX_ROWS][MAX_TERMS]; /* how often row r counts term t (signed by the term) */
    int rows;
    int selects[MAX_ROWS]; /* the last slice whose new accepts row r has seen (-1: none) */
} Layout;

static int term(Layout *l, int kind, long trials, double q, int sign) {
    if (!(q > 0) || (kind == BINOMIAL && trials <= 0)) return -1;
    for (int i = 0; i < l->n_terms; i++) {
        Term *t = &l->terms[i];
        if (t->kind == kind && t->trials == trials && t->q == q && t->sign == sign) return i;
    }
    Term *t = &l->terms[l->n_terms];
    t->kind = kind;
    t->trials = trials;
    t->q = q;
    t->sign = sign;
    return l->n_terms++;
}

static void add(Layout *l, int row, int t, double times) {
    if (t >= 0) l->fixed[row][t] += times;
}

/* log(x) of a positive x to about 1.5e-4: the exponent's part exactly, the mantissa's (m in [1, 2))
 * as 2 atanh((m - 1) / (m + 1)) to its third term. Only compared with the e^-45 threshold of
 * the horizon's negligible products, where 1.5e-4 moves nothing that matters. */
static inline double rough_log(double x) {
    union {
        double d;
        uint64_t u;
    } v = {x};
    int exponent = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double t = (v.d - 1) / (v.d + 1), t2 = t * t;
    return (double)exponent * M_LN2 + 2 * t * (1 + t2 * (1.0 / 3 + t2 * 0.2));
}

/* z^power by repeated squaring: a few complex products instead of a complex log and exp
 * (|z| <= 1 here, so the rounding error grows only with log2(power)). */
static inline double complex power(double complex z, long power) {
    if (power <= 0) return 1.0;
    /* square by square up to the lowest set bit, whose square starts the product (not 1 x it:
       the same number), then the further set bits' squares multiplied in, low to high */
    while (!(power & 1)) {
        power >>= 1;
        z *= z;
    }
    double complex out = z;
    power >>= 1;
    while (power > 0) {
        z *= z;
        if (power & 1) out *= z;
        power >>= 1;
    }
    return out;
}

/* E[e^(-i theta sign B)] of one Bernoulli(q): 1 - q + q e^(-i theta sign). */
static inline double complex bernoulli(double q, double sin_t, double cos_t, double sign) {
    return (1 - q + q * cos_t) - I * (sign * q * sin_t);
}

/* Which terms row r multiplies into the previous row's product (rows follow the horizon's events
 * in order, each holding the previous one's terms), and how often: the rows' transforms are then
 * one running product. A row that does not grow from the previous one (none of this layout's
 * but row 0) starts afresh. */
typedef struct {
    int count[MAX_ROWS], term[MAX_ROWS][MAX_TERMS], from_previous[MAX_ROWS];
    long times[MAX_ROWS][MAX_TERMS];
} Steps;

/* Each row's mean and variance: of its fixed part, and (non-exact) what one new offer adds. */
typedef struct {
    double mean0[MAX_ROWS], var0[MAX_ROWS];
    double per_offer_q[SLICES], mean_n[MAX_ROWS], var_n[MAX_ROWS];
} Moments;

/* The transforms of one layout on one window size: per frequency, the signed sum of the fixed
 * rows' transforms per offer column, and (non-exact) one offer's transform by the end of each
 * slice. They depend on the horizon and the size, not on the offer counts or the window's
 * position, so the calls of one decision share them: a size prepared before is reused while it
 * is at most twice what is needed (as the numpy version did). The offer columns are computed only
 * each up to the frequency the smallest count evaluated so far needs (`done`, see
 * frequencies_needed), and extended when a call brings a smaller one. */
typedef struct {
    int used, exact;
    long busy, outstanding, agents, size;
    long capacity; /* frequencies the buffers hold */
    double p, slice_s, tail_s, tail_finish, reactive_rate;
    double finish_share[SLICES], new_share[SLICES], pending_share[SLICES];
    Layout layout; /* the horizon's rows, their steps and moments: to extend the offer columns */
    Steps steps;
    Moments moments;
    double complex *signed_fixed; /* (SLICES + 1) x frequencies */
    double complex *per_offer;    /* (SLICES + 1) x frequencies */
    double *log_fixed;            /* (SLICES + 1) x frequencies: log |signed_fixed| (-inf: 0) */
    double *offer_limit;          /* (SLICES + 1) x frequencies: the largest count not skipped (-1: none) */
    const double *sines, *cosines; /* frequencies each: the size's twiddles (not owned) */
    long offer_done;              /* per_offer is computed below this frequency */
    long done[SLICES + 1];        /* offer column c is computed below done[c] (0 beyond) */
    long end[SLICES + 1];         /* beyond end[c], column c is negligible (log_fixed < e^-45) */
    long f_end;                   /* the largest end[c] */
    /* The queue's cost over the last window used at this size, transformed and weighted but not
       yet shifted to a start (the calls of one decision mostly fit the first call's window). */
    int cost_valid;
    long cost_low, cost_agents, cost_positions;
    double cost_handle, cost_patience, cost_short, cost_sl;
    double complex *cost_a, *cost_b; /* frequencies each */
    /* The cost window shifted to the last start and times each offer column's fixed part. */
    int weighted_valid;
    long weighted_shift;
    double complex *weighted; /* 2 x SLICES x frequencies: (abandons), (abandons + late) */
    /* Non-exact: one offer's transform to the powers 2^j (j < levels) per offer column and
       frequency, squared as power() squares, so that products of them are power()'s results. */
    int levels;
    double complex *squares; /* SLICES x LEVELS x f_end (each row f_end long: the frequencies the
                                offer columns reach, so the pages touched are the buffers' first) */
    /* Non-exact: the powers of one offer's transform of the counts evaluated in this epoch (NaN
       where skipped as negligible): a later call's count starts from the nearest one below. */
    unsigned long epoch;
    int memo_count;
    long memo_n[MEMO];
    double complex *memo; /* MEMO x SLICES x f_end, after the squares */
} Prepared;

/* sin and cos of 2 pi f / size for f <= size / 2, per power-of-two size (index log2(size)): the
   FFT's twiddles and the prepared transforms' angles, computed once per process rather than per
   prepared window (the same numbers: sin and cos of the same angle). */
#define TWIDDLE_SIZES 48
static double *twiddle_tables[TWIDDLE_SIZES];

static const double *twiddles(long size) {
    int index = 0;
    while ((1L << index) < size) index++;
    if (index >= TWIDDLE_SIZES) return NULL;
    if (!twiddle_tables[index]) {
        long frequencies = size / 2 + 1;
        double *table = malloc(sizeof(double) * 2 * frequencies);
        if (!table) return NULL;
        for (long f = 0; f < frequencies; f++) {
            double theta = 2 * M_PI * (double)f / (double)size;
            table[f] = sin(theta);
            table[frequencies + f] = cos(theta);
        }
        twiddle_tables[index] = table;
    }
    return twiddle_tables[index];
}

/* The FFT's twiddles stage by stage, per power-of-two size (index log2(size), built once per
   process): stage `half` (butterflies half apart) holds w_k = e^(-2 pi i k / (2 half)) for
   k < half at [half - 1, 2 half - 1), real parts then (from `size` on) imaginary parts, so the
   butterflies read them contiguously. Each is cos - i sin of the angle, the expression the FFT
   evaluated per butterfly before: the same numbers, so the transforms are bit for bit the same. */
static double *stage_tables[TWIDDLE_SIZES];

static const double *stage_twiddles(long size, const double *cosines, const double *sines) {
    int index = 0;
    while ((1L << index) < size) index++;
    if (index >= TWIDDLE_SIZES) return NULL;
    if (!stage_tables[index]) {
        double *table = malloc(sizeof(double) * 2 * size);
        if (!table) return NULL;
        for (long len = 2; len <= size; len <<= 1) {
            long half = len / 2, stride = size / len;
            for (long k = 0; k < half; k++) {
                double complex w = cosines[k * stride] - I * sines[k * stride];
                table[half - 1 + k] = creal(w);
                table[size + half - 1 + k] = cimag(w);
            }
        }
        stage_tables[index] = table;
    }
    return stage_tables[index];
}

/* One FFT stage's butterflies of one block: lo[k], hi[k] = lo[k] +- hi[k] w_k over split complex
   numbers (the products and sums C's complex arithmetic makes, in a loop the compiler vectorises). */
static inline void butterflies(double *restrict lo_r, double *restrict lo_i, double *restrict hi_r,
                               double *restrict hi_i, const double *restrict w_r, const double *restrict w_i,
                               long half) {
    for (long k = 0; k < half; k++) {
        double x = hi_r[k], y = hi_i[k], even_r = lo_r[k], even_i = lo_i[k];
        double odd_r = x * w_r[k] - y * w_i[k], odd_i = x * w_i[k] + y * w_r[k];
        lo_r[k] = even_r + odd_r;
        lo_i[k] = even_i + odd_i;
        hi_r[k] = even_r - odd_r;
        hi_i[k] = even_i - odd_i;
    }
}

/* In-place radix-2 FFT (forward: e^(-2 pi i k m / size)) of split complex numbers (re, im), size a
 * power of two; the twiddles are the size's cos and sin of 2 pi k / size for k <= size / 2.
 * -1 when the stage twiddles cannot be allocated. */
VECTOR_CLONES static int fft(double *re, double *im, long size, const double *cosines, const double *sines) {
    const double *stages = stage_twiddles(size, cosines, sines);
    if (!stages) return -1;
    for (long i = 1, j = 0; i < size; i++) {
        long bit = size >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double tmp = re[i];
            re[i] = re[j];
            re[j] = tmp;
            tmp = im[i];
            im[i] = im[j];
            im[j] = tmp;
        }
    }
    for (long len = 2; len <= size; len <<= 1) {
        long half = len / 2;
        const double *w_r = stages + half - 1, *w_i = stages + size + half - 1;
        for (long i = 0; i < size; i += len)
            butterflies(re + i, im + i, re + i + half, im + i + half, w_r, w_i, half);
    }
    return 0;
}

/* Four: a search's base (no offers, a narrow window of its own when the counts are wide), its
   batches' window, a narrower one for its last batches, and the costs from the actual start. */
#define PREPARED 4
#define MIN_SLOT_SIZE 2048
static Prepared prepared[PREPARED];
static int next_prepared = 0;
/* One top-level call (a search, or horizon_costs): the cost window and the offers' powers its
   horizon calls keep are not used past it, so its results do not depend on the calls before it
   (beyond the prepared window size, reused while at most about twice what is needed). */
static unsigned long epoch = 0;

static int same_shares(const double a[SLICES], const double b[SLICES]) {
    for (int s = 0; s < SLICES; s++)
        if (a[s] != b[s]) return 0;
    return 1;
}

static int read_shares(PyObject *seq, double out[SLICES], const char *name) {
    PyObject *fast = PySequence_Fast(seq, name);
    if (!fast) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != SLICES) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s must hold %d slice shares", name, SLICES);
        return -1;
    }
    for (int s = 0; s < SLICES; s++) {
        out[s] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, s));
        if (out[s] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* One horizon of horizon.py (everything but its start): the model its costs are computed for. */
typedef struct {
    double reactive_rate, p, slice_s, tail_s, tail_finish;
    long busy, outstanding, agents;
    int exact;
    double finish_share[SLICES], new_share[SLICES], pending_share[SLICES];
    long t_agents, t_positions; /* the position table's arguments */
    double t_handle, t_patience, t_short, t_sl;
} Model;

static int parse_model(PyObject *model, Model *h) {
    PyObject *finish_seq, *new_seq, *pending_seq;
    if (!PyArg_ParseTuple(model, "dllldpdddOOO(lddddl);model must be the horizon's tuple (see Horizon.model)",
                          &h->reactive_rate, &h->busy, &h->outstanding, &h->agents, &h->p, &h->exact, &h->slice_s,
                          &h->tail_s, &h->tail_finish, &finish_seq, &new_seq, &pending_seq, &h->t_agents, &h->t_handle,
                          &h->t_patience, &h->t_short, &h->t_sl, &h->t_positions))
        return -1;
    if (read_shares(finish_seq, h->finish_share, "finish_share") < 0 ||
        read_shares(new_seq, h->new_share, "new_share") < 0 ||
        read_shares(pending_seq, h->pending_share, "pending_share") < 0)
        return -1;
    if (!(h->p > 0) || h->p > 1 || h->t_agents < 1 || h->t_positions < 1 || !(h->t_handle > 0) ||
        !(h->t_patience > 0) || h->busy < 0 || h->outstanding < 0 || !(h->reactive_rate >= 0)) {
        PyErr_SetString(PyExc_ValueError, "a horizon needs 0 < p <= 1, counts and the reactive rate >= 0 and a valid "
                                          "position table");
        return -1;
    }
    return 0;
}

/* How one call computes one count's powers of one offer's transform (see plan_powers). */
typedef struct {
    int from, keep, nbits, large;
    int bits[LEVELS];
} Plan;

/* ---- horizon_eval's steps, in the order it takes them ---- */

/* The layout: rows before and after each slice's arrivals, then around the reactive tail. */
static void layout_rows(const Model *h, Layout *l) {
    memset(l, 0, sizeof(*l));
    double reactive = h->reactive_rate * h->slice_s;
    int finishing[SLICES];
    for (int s = 0; s < SLICES; s++) finishing[s] = term(l, BINOMIAL, h->busy, h->finish_share[s], 1);
    if (h->exact) {
        int one_slice = term(l, POISSON, 0, reactive, -1);
        for (int s = 0; s < SLICES; s++) {
            for (int f = 0; f <= s; f++) {
                add(l, 2 * s, finishing[f], 1);
                add(l, 2 * s + 1, finishing[f], 1);
            }
            add(l, 2 * s, one_slice, s);
            add(l, 2 * s + 1, one_slice, s + 1);
            l->selects[2 * s] = s - 1;
            l->selects[2 * s + 1] = s;
        }
    } else {
        for (int s = 0; s < SLICES; s++) {
            for (int f = 0; f <= s; f++) {
                add(l, 2 * s, finishing[f], 1);
                add(l, 2 * s + 1, finishing[f], 1);
            }
            for (int e = 0; e < s; e++) { /* the arrivals of earlier slices */
                int pending = term(l, BINOMIAL, h->outstanding, h->p * h->pending_share[e], -1);
                int poisson = term(l, POISSON, 0, reactive, -1);
                add(l, 2 * s, pending, 1);
                add(l, 2 * s, poisson, 1);
                add(l, 2 * s + 1, pending, 1);
                add(l, 2 * s + 1, poisson, 1);
            }
            add(l, 2 * s + 1, term(l, BINOMIAL, h->outstanding, h->p * h->pending_share[s], -1), 1);
            add(l, 2 * s + 1, term(l, POISSON, 0, reactive, -1), 1);
            l->selects[2 * s] = s - 1;
            l->selects[2 * s + 1] = s;
        }
    }
    l->rows = 2 * SLICES;
    if (h->reactive_rate > 0) {
        int tail_finishing = term(l, BINOMIAL, h->agents, h->tail_finish, 1);
        int tail_arrivals = term(l, POISSON, 0, h->reactive_rate * h->tail_s, -1);
        for (int t = 0; t < l->n_terms; t++) l->fixed[l->rows][t] = l->fixed[l->rows - 1][t];
        add(l, l->rows, tail_finishing, 1);
        for (int t = 0; t < l->n_terms; t++) l->fixed[l->rows + 1][t] = l->fixed[l->rows][t];
        add(l, l->rows + 1, tail_arrivals, 1);
        l->selects[l->rows] = l->selects[l->rows + 1] = SLICES - 1;
        l->rows += 2;
    }
}

/* Each row's fixed mean and variance, and what one new offer adds to them (non-exact: row r
   subtracts Binomial(n, p new_share[s]) for every slice s <= selects[r]; exact: Binomial(n +
   pending, p (share_0 + ... + share_selects[r])), which count_window works out per count). */
static void row_moments(const Model *h, const Layout *l, Moments *m) {
    for (int r = 0; r < l->rows; r++) {
        m->mean0[r] = m->var0[r] = 0.0;
        for (int t = 0; t < l->n_terms; t++) {
            const Term *term_t = &l->terms[t];
            double times = l->fixed[r][t];
            if (times == 0) continue;
            if (term_t->kind == BINOMIAL) {
                m->mean0[r] += times * term_t->sign * (double)term_t->trials * term_t->q;
                m->var0[r] += times * (double)term_t->trials * term_t->q * (1 - term_t->q);
            } else {
                m->mean0[r] += times * term_t->sign * term_t->q;
                m->var0[r] += times * term_t->q;
            }
        }
    }
    for (int s = 0; s < SLICES; s++) m->per_offer_q[s] = h->p * h->new_share[s];
    for (int r = 0; r < l->rows; r++) {
        m->mean_n[r] = m->var_n[r] = 0.0;
        for (int s = 0; s <= l->selects[r]; s++) {
            m->mean_n[r] -= m->per_offer_q[s];
            m->var_n[r] += m->per_offer_q[s] * (1 - m->per_offer_q[s]);
        }
    }
}

/* The smallest variance of a row of offer column `col` (0: any offer column) with n new offers
   (non-exact). */
static double narrowest_offer_row(const Layout *l, const Moments *m, int col, long n) {
    double narrowest = INFINITY;
    for (int r = 0; r < l->rows; r++)
        if (l->selects[r] >= 0 && (col == 0 || l->selects[r] + 1 == col))
            narrowest = fmin(narrowest, m->var0[r] + (double)n * m->var_n[r]);
    return narrowest;
}

/* The frequencies offer column `col` needs for counts of at least n: a row of variance V has
   |transform| <= e^(-V (1 - cos theta)) (a Bernoulli's squared modulus is 1 - 2 q (1 - q)
   (1 - cos theta), a Poisson's modulus e^(-lambda (1 - cos theta))), so where that is below e^-50
   for every row of the column, its products (at most three rows) are below e^-45 and the offers'
   loop skips them. The later columns hold more of the offers' accepts: wider rows, fewer
   frequencies. Exact layouts (small groups, narrow windows) take every frequency. */
static long frequencies_needed(const Layout *l, const Moments *m, int exact, int col, long n, long size) {
    long frequencies = size / 2 + 1;
    double narrowest = exact ? 0.0 : narrowest_offer_row(l, m, col, n);
    if (!(narrowest > 0) || NEGLIGIBLE_ROW / narrowest >= 2.0) return frequencies;
    double theta = acos(1 - NEGLIGIBLE_ROW / narrowest);
    long needed = (long)ceil(theta * (double)size / (2 * M_PI)) + 1;
    return needed < frequencies ? needed : frequencies;
}

/* The window that holds each row of each count to WINDOW_SIGMAS of its own standard deviations
   (plus WINDOW_PAD values, for the skewed tails of narrow rows) on either side of its mean: its
   lowest value of free minus queue and its length. It was 8 and 16: over the models of 1,029
   searches (5 counts, 2 starts each) pad 4 moves the costs by at most 2.1e-11, and 7 standard
   deviations by at most 9.4e-10 (the mass beyond them, ~1e-12, wraps around the window); none of
   engine_same_decisions' 18,000 decisions (seeds 1 and 2) changes, and more windows fit 128
   values instead of 256 (half the frequencies). Exact: each count's cumulative accept shares by
   the end of each slice go to shares ([0, C0, C1, C2] per count). */
static void count_window(const Model *h, const Layout *l, const Moments *m, long start, const long *offers,
                         Py_ssize_t count, double *shares, long *low, long *needed) {
    double p = h->p, low_edge = INFINITY, high_edge = -INFINITY;
    for (Py_ssize_t k = 0; k < count; k++) {
        double n = (double)offers[k];
        double *c = shares + k * (SLICES + 1);
        c[0] = 0.0;
        if (h->exact) {
            double mean_new = n * p, mean_pending = (double)h->outstanding * p, accepts = mean_new + mean_pending;
            double arrived = 0.0;
            for (int s = 0; s < SLICES; s++) {
                double share =
                    accepts > 0 ? (mean_new * h->new_share[s] + mean_pending * h->pending_share[s]) / accepts : 0.0;
                arrived = s == SLICES - 1 ? 1.0 : fmin(1.0, arrived + share);
                c[s + 1] = arrived;
            }
        }
        for (int r = 0; r < l->rows; r++) {
            double mean, var;
            if (h->exact) {
                double q = p * c[l->selects[r] + 1], trials = n + (double)h->outstanding;
                mean = (double)start + m->mean0[r] - trials * q;
                var = m->var0[r] + trials * q * (1 - q);
            } else {
                mean = (double)start + m->mean0[r] + n * m->mean_n[r];
                var = m->var0[r] + n * m->var_n[r];
            }
            double half = WINDOW_SIGMAS * sqrt(var) + WINDOW_PAD;
            low_edge = fmin(low_edge, mean - half);
            high_edge = fmax(high_edge, mean + half);
        }
    }
    *low = (long)floor(low_edge);
    *needed = (long)ceil(high_edge) - *low + 1;
}

/* Whether a batch whose smallest count is 0 is cheaper as two: the base (no offers) in a window of
   its own, and the other counts in theirs, at least twice as large, where their narrowest offer row
   has a variance of at least 25, so that they need at most two thirds of its frequencies
   (frequencies_needed). Together, the base's narrow rows needed every frequency of a window sized
   for hundreds or thousands of offers. */
static int base_apart(const Model *h, const Layout *l, const Moments *m, long start, const long *offers,
                      Py_ssize_t count) {
    if (h->exact || count < 2 || offers[0] != 0 || offers[1] <= 0 ||
        narrowest_offer_row(l, m, 0, offers[1]) < NEGLIGIBLE_ROW / 2)
        return 0;
    double shares[MAX_BATCH * (SLICES + 1)]; /* (not read: non-exact) */
    long low, base_needed, rest_needed;
    if (count - 1 > MAX_BATCH) return 0;
    count_window(h, l, m, start, offers, 1, shares, &low, &base_needed);
    count_window(h, l, m, start, offers + 1, count - 1, shares, &low, &rest_needed);
    long base_size = 16, rest_size = 16;
    while (base_size < base_needed) base_size <<= 1;
    while (rest_size < rest_needed) rest_size <<= 1;
    return rest_size >= 2 * base_size;
}

static void row_steps(const Layout *l, Steps *s) {
    for (int r = 0; r < l->rows; r++) {
        int grows = r > 0;
        for (int t = 0; grows && t < l->n_terms; t++)
            if (l->fixed[r][t] < l->fixed[r - 1][t]) grows = 0;
        s->from_previous[r] = grows;
        s->count[r] = 0;
        for (int t = 0; t < l->n_terms; t++) {
            long times = (long)(l->fixed[r][t] - (grows ? l->fixed[r - 1][t] : 0.0));
            if (times > 0) {
                s->term[r][s->count[r]] = t;
                s->times[r][s->count[r]++] = times;
            }
        }
    }
}

/* The prepared transforms of this horizon at a window size that holds `needed` values. */
static Prepared *find_prepared(const Model *h, long needed) {
    for (int i = 0; i < PREPARED; i++) {
        Prepared *c = &prepared[i];
        if (c->used && c->size >= needed && (c->size <= 2 * needed + 16 || c->epoch == epoch) && c->exact == h->exact && c->busy == h->busy &&
            c->outstanding == h->outstanding && c->agents == h->agents && c->p == h->p && c->slice_s == h->slice_s &&
            c->tail_s == h->tail_s && c->tail_finish == h->tail_finish && c->reactive_rate == h->reactive_rate &&
            same_shares(c->finish_share, h->finish_share) && same_shares(c->new_share, h->new_share) &&
            same_shares(c->pending_share, h->pending_share))
            return c;
    }
    return NULL;
}

/* Scratch for fixed_rows: each term's transform and the running product over a range of
   frequencies, as separate real and imaginary arrays (kept and grown as the slots' buffers). */
static double *fixed_scratch = NULL;
static long fixed_capacity = 0;

/* z[f] *= w[f] over n frequencies (split complex numbers: the same products as C's complex
   multiply, in a loop the compiler vectorises). */
static inline void multiply_into(double *restrict zr, double *restrict zi, const double *restrict wr,
                                 const double *restrict wi, long n) {
    for (long f = 0; f < n; f++) {
        double a = zr[f], b = zi[f];
        zr[f] = a * wr[f] - b * wi[f];
        zi[f] = a * wi[f] + b * wr[f];
    }
}

/* z[f] *= z[f] over n frequencies (as C's complex z * z). */
static inline void square_into(double *restrict zr, double *restrict zi, long n) {
    for (long f = 0; f < n; f++) {
        double a = zr[f], b = zi[f];
        zr[f] = a * a - b * b;
        zi[f] = a * b + b * a;
    }
}

/* z[f] = z[f]^power over n frequencies, as power() does it for each (the same products in the
   same order: the exponent is the same at every frequency); out_r/out_i are scratch. */
static inline void power_over(double *restrict zr, double *restrict zi, double *restrict out_r, double *restrict out_i,
                              long n, long power) {
    if (power <= 0) {
        for (long f = 0; f < n; f++) zr[f] = 1.0, zi[f] = 0.0;
        return;
    }
    while (!(power & 1)) {
        power >>= 1;
        square_into(zr, zi, n);
    }
    memcpy(out_r, zr, sizeof(double) * n);
    memcpy(out_i, zi, sizeof(double) * n);
    power >>= 1;
    while (power > 0) {
        square_into(zr, zi, n);
        if (power & 1) multiply_into(out_r, out_i, zr, zi, n);
        power >>= 1;
    }
    memcpy(zr, out_r, sizeof(double) * n);
    memcpy(zi, out_i, sizeof(double) * n);
}

/* E[e^(-i theta_f sign X)] of one count of the layout at the frequencies [from, from + n): a
   binomial's is a Bernoulli's to the power of its trials, a Poisson's a closed form. */
static inline void transform_over(const Term *t, const double *sines, const double *cosines, long from, long n,
                                  double *restrict zr, double *restrict zi, double *restrict out_r,
                                  double *restrict out_i) {
    if (t->kind == BINOMIAL) {
        double q = t->q, sign = (double)t->sign;
        for (long f = 0; f < n; f++) {
            zr[f] = 1 - q + q * cosines[from + f];
            zi[f] = -(sign * q * sines[from + f]);
        }
        power_over(zr, zi, out_r, out_i, n, t->trials);
        return;
    }
    for (long f = 0; f < n; f++) {
        double angle = t->q * sines[from + f], size = exp(t->q * (cosines[from + f] - 1));
        zr[f] = size * cos(angle);
        zi[f] = size * -((double)t->sign * sin(angle));
    }
}

/* The offer columns' fixed parts at the frequencies [from, to): the rows' transforms, signed and
   summed per column where the row's column is being computed there (reach) and its fixed part is
   not negligible. Rows are cumulative, each row's product from the previous one's (steps): a row's
   product is computed over the frequencies it or a later row of its chain needs, a term's over
   those its rows need; each step is one loop over the frequencies (the same products as one
   frequency at a time, which cost a scalar complex multiply's latency each). */
VECTOR_CLONES static int fixed_rows(Prepared *ready, const long reach[SLICES + 1], long from, long to) {
    const Layout *l = &ready->layout;
    const Steps *st = &ready->steps;
    long frequencies = ready->size / 2 + 1, n = to - from;
    long need_from[MAX_ROWS], need_to[MAX_ROWS], term_from[MAX_TERMS], term_to[MAX_TERMS];
    if (fixed_capacity < n) {
        long capacity = n > MIN_SLOT_SIZE / 2 + 1 ? n : MIN_SLOT_SIZE / 2 + 1;
        free(fixed_scratch);
        fixed_scratch = malloc(sizeof(double) * 2 * (MAX_TERMS + 2) * capacity);
        fixed_capacity = fixed_scratch ? capacity : 0;
        if (!fixed_scratch) {
            PyErr_NoMemory();
            return -1;
        }
        touch(fixed_scratch, sizeof(double) * 2 * (MAX_TERMS + 2) * capacity);
    }
    double *term_r = fixed_scratch, *term_i = term_r + MAX_TERMS * n;
    double *prod_r = term_i + MAX_TERMS * n, *prod_i = prod_r + n, *tmp_r = prod_i + n, *tmp_i = tmp_r + n;
    /* the frequencies each row's product is needed on, from the last row back */
    long later_from = to, later_to = from;
    for (int r = l->rows - 1; r >= 0; r--) {
        int col = l->selects[r] + 1;
        long own_from = to, own_to = from;
        if (col > 0 && reach[col] > ready->done[col]) {
            own_from = ready->done[col] > from ? ready->done[col] : from;
            own_to = reach[col] < to ? reach[col] : to;
        }
        need_from[r] = own_from < later_from ? own_from : later_from;
        need_to[r] = own_to > later_to ? own_to : later_to;
        if (!st->from_previous[r]) { /* a chain starts here: rows before it do not feed it */
            later_from = to;
            later_to = from;
        } else {
            later_from = need_from[r];
            later_to = need_to[r];
        }
    }
    for (int t = 0; t < l->n_terms; t++) term_from[t] = to, term_to[t] = from;
    for (int r = 0; r < l->rows; r++)
        for (int i = 0; i < st->count[r]; i++) {
            int t = st->term[r][i];
            term_from[t] = need_from[r] < term_from[t] ? need_from[r] : term_from[t];
            term_to[t] = need_to[r] > term_to[t] ? need_to[r] : term_to[t];
        }
    for (int t = 0; t < l->n_terms; t++)
        if (term_to[t] > term_from[t])
            transform_over(&l->terms[t], ready->sines, ready->cosines, term_from[t], term_to[t] - term_from[t],
                           term_r + t * n + (term_from[t] - from), term_i + t * n + (term_from[t] - from), tmp_r,
                           tmp_i);
    for (int r = 0; r < l->rows; r++) {
        long a = need_from[r], b = need_to[r];
        if (b <= a) continue;
        double *pr = prod_r + (a - from), *pi = prod_i + (a - from);
        if (!st->from_previous[r])
            for (long f = 0; f < b - a; f++) pr[f] = 1.0, pi[f] = 0.0;
        for (int i = 0; i < st->count[r]; i++) {
            int t = st->term[r][i];
            const double *wr = term_r + t * n + (a - from), *wi = term_i + t * n + (a - from);
            if (st->times[r][i] == 1) {
                multiply_into(pr, pi, wr, wi, b - a);
            } else { /* a term counted several times in one step (exact layouts): power() of it */
                for (long f = 0; f < b - a; f++) {
                    double complex z = power(wr[f] + I * wi[f], st->times[r][i]);
                    double x = pr[f], y = pi[f];
                    pr[f] = x * creal(z) - y * cimag(z);
                    pi[f] = x * cimag(z) + y * creal(z);
                }
            }
        }
        int col = l->selects[r] + 1;
        if (col == 0 || reach[col] <= ready->done[col]) continue;
        double sign = r % 2 ? 1.0 : -1.0, var0 = ready->moments.var0[r];
        long lo = ready->done[col] > from ? ready->done[col] : from, hi = reach[col] < to ? reach[col] : to;
        double complex *column = ready->signed_fixed + col * frequencies;
        for (long f = lo; f < hi; f++)
            if ((1 - ready->cosines[f]) * var0 <= NEGLIGIBLE_ROW)
                column[f] += sign * (prod_r[f - from] + I * prod_i[f - from]);
    }
    return 0;
}

/* Each offer column c over the frequencies [done[c], reach[c]) not computed yet: the rows' fixed
   transforms, signed and summed per column (row 0, the only row no new accept reaches, is summed
   directly: see row0_costs); their rough log moduli; and each column's largest count n whose
   product is not below e^-45, n log|offer| + log|fixed| >= -45 (non-exact; exact: any count, or
   none). (Non-exact) one offer's transform by the end of each slice, a product of Bernoullis, too.
   The rows' transforms: fixed_rows. */
static int offer_columns(Prepared *ready, const long reach[SLICES + 1]) {
    long frequencies = ready->size / 2 + 1, from = frequencies, to = 0;
    double complex *signed_fixed = ready->signed_fixed;
    for (int col = 1; col <= SLICES; col++) {
        if (reach[col] <= ready->done[col]) continue;
        from = ready->done[col] < from ? ready->done[col] : from;
        to = reach[col] > to ? reach[col] : to;
        for (long f = ready->done[col]; f < reach[col]; f++) signed_fixed[col * frequencies + f] = 0.0;
    }
    if (!ready->exact) {
        for (long f = ready->offer_done; f < to; f++) {
            double complex running = 1.0;
            for (int s = 0; s < SLICES; s++) {
                running *= bernoulli(ready->moments.per_offer_q[s], ready->sines[f], ready->cosines[f], -1.0);
                ready->per_offer[(s + 1) * frequencies + f] = running;
            }
        }
        ready->offer_done = to > ready->offer_done ? to : ready->offer_done;
    }
    if (to > from && fixed_rows(ready, reach, from, to) < 0) return -1;
    for (int col = 1; col <= SLICES; col++) {
        for (long f = ready->done[col]; f < reach[col]; f++) {
            long i = col * frequencies + f;
            double norm = creal(signed_fixed[i]) * creal(signed_fixed[i]) + cimag(signed_fixed[i]) * cimag(signed_fixed[i]);
            double log_fixed = norm > 0 ? 0.5 * rough_log(norm) : -INFINITY;
            ready->log_fixed[i] = log_fixed;
            norm = ready->exact ? 1.0
                                : creal(ready->per_offer[i]) * creal(ready->per_offer[i]) +
                                      cimag(ready->per_offer[i]) * cimag(ready->per_offer[i]);
            double log_offer = norm > 0 ? 0.5 * rough_log(norm) : -INFINITY;
            ready->offer_limit[i] = log_fixed < NEGLIGIBLE_LOG_PRODUCT ? -1.0
                                    : log_offer < 0 ? (NEGLIGIBLE_LOG_PRODUCT - log_fixed) / log_offer
                                                    : INFINITY;
        }
        if (reach[col] > ready->done[col]) ready->done[col] = reach[col];
        ready->end[col] = 0;
        for (long f = ready->done[col] - 1; f >= 0; f--)
            if (ready->log_fixed[col * frequencies + f] >= NEGLIGIBLE_LOG_PRODUCT) {
                ready->end[col] = f + 1;
                break;
            }
    }
    ready->f_end = 0;
    for (int col = 1; col <= SLICES; col++) ready->f_end = ready->end[col] > ready->f_end ? ready->end[col] : ready->f_end;
    ready->memo = ready->squares + SLICES * LEVELS * ready->f_end;
    /* what was computed from the offer columns' old extent */
    ready->weighted_valid = 0;
    ready->levels = 0;
    ready->memo_count = 0;
    return 0;
}

/* A slot's buffers for `frequencies`. They are the process's, like the twiddles: every slot gets
   them at once, for windows of up to MIN_SLOT_SIZE values (~1.9 MB a slot), touched at once, and
   keeps them (grown, rarely, for a larger window). Freed and allocated afresh for each window, the
   large ones came back from the system as new pages, and a cold decision paid up to 190 page
   faults (~300 us) for them. */
static int reserve_slot(Prepared *slot, long frequencies) {
    if (slot->capacity >= frequencies) return 0;
    long capacity = frequencies > MIN_SLOT_SIZE / 2 + 1 ? frequencies : MIN_SLOT_SIZE / 2 + 1;
    size_t weighted = sizeof(double complex) * 2 * SLICES * capacity;
    size_t squares = sizeof(double complex) * SLICES * (LEVELS + MEMO) * capacity;
    size_t fixed = sizeof(double complex) * (2 * (SLICES + 1) + 2) * capacity + sizeof(double) * (2 * SLICES + 2) * capacity;
    free(slot->signed_fixed);
    free(slot->squares);
    free(slot->weighted);
    slot->weighted = malloc(weighted);
    slot->squares = malloc(squares);
    slot->signed_fixed = malloc(fixed);
    slot->capacity = slot->signed_fixed && slot->weighted && slot->squares ? capacity : 0;
    if (!slot->capacity) {
        PyErr_NoMemory();
        return -1;
    }
    touch(slot->weighted, weighted);
    touch(slot->squares, squares);
    touch(slot->signed_fixed, fixed);
    return 0;
}

/* The slot to prepare a window of `frequencies` in: one this search has not used (its windows may
   serve its later batches), the smallest whose buffers hold it already, else the largest (grown),
   else the next in turn. */
static Prepared *slot_for(long frequencies) {
    Prepared *fits = NULL, *largest = NULL;
    for (int i = 0; i < PREPARED; i++) /* the first window: every slot's buffers */
        if (prepared[i].capacity == 0 && reserve_slot(&prepared[i], 1) < 0) return NULL;
    for (int i = 0; i < PREPARED; i++) {
        Prepared *c = &prepared[i];
        if (c->used && c->epoch == epoch) continue;
        if (c->capacity >= frequencies && (!fits || c->capacity < fits->capacity)) fits = c;
        if (!largest || c->capacity > largest->capacity) largest = c;
    }
    if (fits) return fits;
    if (largest) return largest;
    Prepared *next = &prepared[next_prepared];
    next_prepared = (next_prepared + 1) % PREPARED;
    return next;
}

/* A slot for this horizon at a window size of at least `needed` values: the layout's steps and
   moments kept; its transforms are left to offer_columns. */
static Prepared *prepare(const Model *h, const Layout *l, const Moments *m, long needed) {
    long size = 16;
    while (size < needed) size <<= 1;
    long frequencies = size / 2 + 1;
    Prepared *ready = slot_for(frequencies);
    if (!ready) return NULL;
    ready->used = 0;
    if (reserve_slot(ready, frequencies) < 0) return NULL;
    const double *twiddle = twiddles(size);
    if (!twiddle) {
        PyErr_NoMemory();
        return NULL;
    }
    ready->per_offer = ready->signed_fixed + (SLICES + 1) * frequencies;
    ready->sines = twiddle;
    ready->cosines = twiddle + frequencies;
    ready->log_fixed = (double *)(ready->per_offer + (SLICES + 1) * frequencies);
    ready->offer_limit = ready->log_fixed + (SLICES + 1) * frequencies;
    ready->cost_a = (double complex *)(ready->offer_limit + (SLICES + 1) * frequencies);
    ready->cost_b = ready->cost_a + frequencies;
    ready->cost_valid = ready->weighted_valid = 0;
    ready->levels = ready->memo_count = 0;
    ready->layout = *l;
    ready->moments = *m;
    row_steps(l, &ready->steps);
    ready->offer_done = ready->f_end = 0;
    for (int col = 0; col <= SLICES; col++) ready->done[col] = ready->end[col] = 0;
    ready->exact = h->exact;
    ready->busy = h->busy;
    ready->outstanding = h->outstanding;
    ready->agents = h->agents;
    ready->size = size;
    ready->p = h->p;
    ready->slice_s = h->slice_s;
    ready->tail_s = h->tail_s;
    ready->tail_finish = h->tail_finish;
    ready->reactive_rate = h->reactive_rate;
    memcpy(ready->finish_share, h->finish_share, sizeof(double) * SLICES);
    memcpy(ready->new_share, h->new_share, sizeof(double) * SLICES);
    memcpy(ready->pending_share, h->pending_share, sizeof(double) * SLICES);
    ready->used = 1;
    return ready;
}

/* The queue's costs over the window, transformed: one complex FFT of (abandons) + i (abandons +
   late answers), then split by symmetry. A window of this size that holds every row of every count
   (the previous call's, usually) is reused: only its shift to this call's start is new. *low moves
   to the window's lowest value. */
static int cost_window(Prepared *ready, const Model *h, long *low, long needed) {
    long size = ready->size, frequencies = size / 2 + 1;
    Table *table = table_for(h->t_agents, h->t_handle, h->t_patience, h->t_short, h->t_sl, h->t_positions);
    if (ready->cost_valid && ready->cost_low <= *low && ready->cost_low + size >= *low + needed &&
        ready->cost_agents == h->t_agents && ready->cost_positions == h->t_positions &&
        ready->cost_handle == h->t_handle && ready->cost_patience == h->t_patience &&
        ready->cost_short == h->t_short && ready->cost_sl == h->t_sl) {
        *low = ready->cost_low;
        return 0;
    }
    long longest = -*low;
    if (table_price(table, longest > 0 ? longest : 0) < 0) return -1;
    /* scratch, kept (and grown) between calls as the slots' buffers: split complex numbers */
    static double *cost = NULL;
    static long cost_capacity = 0;
    if (cost_capacity < size) {
        long capacity = size > MIN_SLOT_SIZE ? size : MIN_SLOT_SIZE;
        free(cost);
        cost = malloc(sizeof(double) * 2 * capacity);
        cost_capacity = cost ? capacity : 0;
        if (!cost) {
            PyErr_NoMemory();
            return -1;
        }
        touch(cost, sizeof(double) * 2 * capacity);
    }
    double *cost_r = cost, *cost_i = cost + size;
    for (long m = 0; m < size; m++) {
        long length = -(*low + m);
        double a = table_at(table, 0, length);
        double complex z = a + I * (a + table_at(table, 1, length));
        cost_r[m] = creal(z);
        cost_i[m] = cimag(z);
    }
    if (fft(cost_r, cost_i, size, ready->cosines, ready->sines) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    for (long f = 0; f < frequencies; f++) {
        long g = (size - f) & (size - 1); /* (size - f) % size: size is a power of two */
        double complex z = CMPLX(cost_r[f], cost_i[f]), mirror = conj(CMPLX(cost_r[g], cost_i[g]));
        /* conj(transform) times Parseval's weight (a power of two: exact) */
        double weight = (f == 0 || f == size / 2) ? 1.0 / (double)size : 2.0 / (double)size;
        ready->cost_a[f] = conj((z + mirror) / 2) * weight;
        ready->cost_b[f] = conj((z - mirror) / (2 * I)) * weight;
    }
    ready->cost_valid = 1;
    ready->weighted_valid = 0;
    ready->cost_low = *low;
    ready->cost_agents = h->t_agents;
    ready->cost_positions = h->t_positions;
    ready->cost_handle = h->t_handle;
    ready->cost_patience = h->t_patience;
    ready->cost_short = h->t_short;
    ready->cost_sl = h->t_sl;
    return 0;
}

/* Row 0's expected costs, directly: before any arrival, free minus queue is the start plus the
   busy agents finishing in the first half slice, Binomial(busy, finish_share[0]) (layout_rows),
   summed from its mode outwards until the weights fall below 1e-17 of the mode's. In the window's
   sums a row this narrow needed every frequency of a window sized for thousands of offers. */
static int row0_costs(const Model *h, long start, double *a, double *b) {
    Table *table = table_for(h->t_agents, h->t_handle, h->t_patience, h->t_short, h->t_sl, h->t_positions);
    if (table_price(table, start < 0 ? -start : 0) < 0) return -1;
    long n = h->busy;
    double q = h->finish_share[0];
    if (n <= 0 || !(q > 0)) {
        *a = table_at(table, 0, -start);
        *b = *a + table_at(table, 1, -start);
        return 0;
    }
    if (q > 1) q = 1;
    long mode = (long)floor((double)(n + 1) * q);
    mode = mode > n ? n : mode;
    double odds = q / (1 - q), total = 0.0, sum_a = 0.0, sum_b = 0.0, w = 1.0;
    for (long k = mode; k >= 0 && w >= 1e-17; k--) { /* downwards from the mode, the mode included */
        double late, abandon = table_at(table, 0, -(start + k));
        late = table_at(table, 1, -(start + k));
        total += w;
        sum_a += w * abandon;
        sum_b += w * (abandon + late);
        if (k > 0) w *= (double)k / ((double)(n - k + 1) * odds);
    }
    w = 1.0;
    for (long k = mode; k < n && q < 1; k++) { /* upwards from the mode */
        w *= (double)(n - k) / (double)(k + 1) * odds;
        if (w < 1e-17) break;
        double abandon = table_at(table, 0, -(start + k + 1)), late = table_at(table, 1, -(start + k + 1));
        total += w;
        sum_a += w * abandon;
        sum_b += w * (abandon + late);
    }
    *a = sum_a / total;
    *b = sum_b / total;
    return 0;
}

/* The cost's transform shifted by e^(-i theta_f shift) to this call's start, times each offer
   column's fixed part (the batches of one search share their start). */
VECTOR_CLONES static void weight_by_start(Prepared *ready, long shift) {
    if (ready->weighted_valid && ready->weighted_shift == shift) return;
    long size = ready->size, frequencies = size / 2 + 1;
    const double *cosines = ready->cosines, *sines = ready->sines;
    const double complex *signed_fixed = ready->signed_fixed;
    double complex *out_a = ready->weighted, *out_b = ready->weighted + SLICES * frequencies;
    for (long f = 0; f < ready->f_end; f++) {
        long turns = (shift * f) & (size - 1); /* shift * f % size (a power of two) */
        double complex root = turns <= size / 2 ? cosines[turns] - I * sines[turns]
                                                : cosines[size - turns] + I * sines[size - turns];
        double complex ca = ready->cost_a[f] * root, cb = ready->cost_b[f] * root;
        for (int col = 1; col <= SLICES; col++) {
            if (f >= ready->end[col]) continue;
            out_a[(col - 1) * frequencies + f] = signed_fixed[col * frequencies + f] * ca;
            out_b[(col - 1) * frequencies + f] = signed_fixed[col * frequencies + f] * cb;
        }
    }
    ready->weighted_valid = 1;
    ready->weighted_shift = shift;
}

/* Non-exact: the squares of one offer's transform up to the largest count's top bit (over the
   frequencies the offer columns reach). */
VECTOR_CLONES static void offer_squares(Prepared *ready, long largest) {
    long frequencies = ready->size / 2 + 1;
    int levels = 0;
    while (levels < LEVELS && (largest >> levels) > 0) levels++;
    for (; ready->levels < levels; ready->levels++) {
        int j = ready->levels;
        for (int col = 1; col <= SLICES; col++) {
            long f_end = ready->end[col];
            double complex *level = ready->squares + ((col - 1) * LEVELS + j) * ready->f_end;
            if (j == 0) {
                memcpy(level, ready->per_offer + col * frequencies, sizeof(double complex) * f_end);
            } else {
                const double complex *below = level - ready->f_end;
                for (long f = 0; f < f_end; f++) level[f] = below[f] * below[f];
            }
        }
    }
}

/* Non-exact, each count's powers: those of the largest count below it that this epoch kept
   (`from`, -1: none) times the squares of the difference's set bits (`bits`, `nbits`), kept in
   memo slot `keep` (the last slot is scratch when the memo is full; -2: kept already). */
static void plan_powers(Prepared *ready, const long *offers, Py_ssize_t count, Plan *plans) {
    for (Py_ssize_t k = 0; k < count; k++) {
        long n = offers[k], below = 0;
        int from = -1, keep = -1;
        for (int i = 0; i < ready->memo_count; i++) {
            if (ready->memo_n[i] == n) keep = i;
            else if (ready->memo_n[i] < n && ready->memo_n[i] > below) {
                below = ready->memo_n[i];
                from = i;
            }
        }
        if (keep >= 0) {
            plans[k].from = keep;
            plans[k].keep = -2;
            continue;
        }
        if (n > 0 && ready->memo_count < MEMO - 1) {
            keep = ready->memo_count++;
            ready->memo_n[keep] = n;
        } else {
            keep = MEMO - 1;
        }
        plans[k].from = from;
        plans[k].keep = keep;
        plans[k].nbits = 0;
        for (int j = 0; j < LEVELS && (n - below) >> j; j++)
            if (((n - below) >> j) & 1) plans[k].bits[plans[k].nbits++] = j;
        plans[k].large = n >= (1L << LEVELS);
    }
}

/* Exact: one column's sums for one count, whose accepts (with the pending offers') have arrived by
   the column's slice with probability q each. */
static void exact_column(const Prepared *ready, int col, const double *limit, const double complex *wa,
                         const double complex *wb, double q, long trials, double *sum_a, double *sum_b) {
    for (long f = 0; f < ready->end[col]; f++) {
        if (limit[f] < 0) continue;
        double complex offer = power(bernoulli(q, ready->sines[f], ready->cosines[f], -1.0), trials);
        *sum_a += creal(offer * wa[f]);
        *sum_b += creal(offer * wb[f]);
    }
}

#define OFFER_BLOCK 32 /* frequencies whose products offer_products computes before their sums */

/* One block of offer_column's general case: the m products at the frequencies [base, base + m),
   each the plan's squares multiplied in order and then from[f] times that (offer_column's products
   and order; split real and imaginary parts, a loop the compiler vectorises). 0 where the product
   is skipped, so that no product there underflows into slow subnormal numbers. */
static inline void offer_products(const double *const *bits, int nbits, const double *from, const double *limit,
                                  double count_n, long base, long m, double *restrict zr, double *restrict zi) {
    for (long j = 0; j < m; j++) {
        long f = base + j;
        int skipped = count_n > limit[f];
        zr[j] = skipped ? 0.0 : nbits ? bits[0][2 * f] : 1.0;
        zi[j] = skipped || !nbits ? 0.0 : bits[0][2 * f + 1];
    }
    for (int i = 1; i < nbits; i++) {
        const double *w = bits[i] + 2 * base;
        for (long j = 0; j < m; j++) {
            double x = zr[j], y = zi[j];
            zr[j] = x * w[2 * j] - y * w[2 * j + 1];
            zi[j] = x * w[2 * j + 1] + y * w[2 * j];
        }
    }
    if (!from) return;
    from += 2 * base;
    for (long j = 0; j < m; j++) {
        double x = zr[j], y = zi[j];
        zr[j] = from[2 * j] * x - from[2 * j + 1] * y;
        zi[j] = from[2 * j] * y + from[2 * j + 1] * x;
    }
}

/* Non-exact: one column's sums for one count n, its power of one offer's transform built as
   `plan` says and kept for later counts. The same products in the same order in loops of one kind
   each: a count kept already, a count one set bit above a kept one (neighbouring pairs), any other.
   A product is skipped where it is below e^-45 in modulus (the offers' transform, at most 1, times
   the fixed rows'): the window's costs are at most a few hundred, so all skipped products together
   move a cost by < 1e-14, well below the FFT's own rounding; wide distributions (large groups, many
   offers) have transforms that vanish over most of the frequencies. */
VECTOR_CLONES static void offer_column(const Prepared *ready, int col, const Plan *plan, long n,
                                       const double *limit, const double complex *wa, const double complex *wb,
                                       double *sum_a, double *sum_b) {
    long frequencies = ready->size / 2 + 1, f_end = ready->end[col], row = ready->f_end;
    long stride = (long)SLICES * row, at = (long)(col - 1) * row;
    const double complex *squares = ready->squares + (col - 1) * LEVELS * row;
    const double complex *per_offer = ready->per_offer + col * frequencies;
    const double complex *from = plan->from >= 0 ? ready->memo + plan->from * stride + at : NULL;
    double complex *keep = plan->keep >= 0 ? ready->memo + plan->keep * stride + at : NULL;
    double count_n = (double)n, a = 0.0, b = 0.0;
    if (!keep) {
        for (long f = 0; f < f_end; f++) {
            if (count_n > limit[f]) continue;
            double complex offer = from[f];
            a += creal(offer * wa[f]);
            b += creal(offer * wb[f]);
        }
    } else if (!plan->large && from && plan->nbits == 1) {
        const double complex *bit = squares + plan->bits[0] * row;
        for (long f = 0; f < f_end; f++) {
            if (count_n > limit[f]) {
                keep[f] = NAN;
                continue;
            }
            double complex offer = isnan(creal(from[f])) ? power(per_offer[f], n) : from[f] * bit[f];
            keep[f] = offer;
            a += creal(offer * wa[f]);
            b += creal(offer * wb[f]);
        }
    } else if (plan->large) {
        for (long f = 0; f < f_end; f++) {
            if (count_n > limit[f]) {
                keep[f] = NAN;
                continue;
            }
            double complex offer = power(per_offer[f], n);
            keep[f] = offer;
            a += creal(offer * wa[f]);
            b += creal(offer * wb[f]);
        }
    } else {
        /* a block's products first (vectorised), then its sums in order: close enough together that
           the products of the next block overlap the sums' chain of additions */
        const double *bits[LEVELS];
        for (int i = 0; i < plan->nbits; i++) bits[i] = (const double *)(squares + plan->bits[i] * row);
        double zr[OFFER_BLOCK], zi[OFFER_BLOCK];
        for (long base = 0; base < f_end; base += OFFER_BLOCK) {
            long m = f_end - base < OFFER_BLOCK ? f_end - base : OFFER_BLOCK;
            offer_products(bits, plan->nbits, (const double *)from, limit, count_n, base, m, zr, zi);
            for (long j = 0; j < m; j++) {
                long f = base + j;
                if (count_n > limit[f]) {
                    keep[f] = NAN;
                    continue;
                }
                double complex offer = from && isnan(creal(from[f])) ? power(per_offer[f], n) : CMPLX(zr[j], zi[j]);
                keep[f] = offer;
                a += creal(offer * wa[f]);
                b += creal(offer * wb[f]);
            }
        }
    }
    *sum_a += a;
    *sum_b += b;
}

/* Expected (abandons, abandons + late answers) of the horizon starting from `start` free agents
 * minus queue, for each of `count` offer counts, into total_a and total_b: E[cost(free minus
 * queue)] summed with signs over the layout's rows, by Parseval over one window (see the file's
 * head and horizon.py). */
static int horizon_eval(const Model *h, long start, const long *offers, Py_ssize_t count, double *total_a,
                        double *total_b) {
    if (count == 0) return 0;
    Layout l;
    Moments m;
    layout_rows(h, &l);
    row_moments(h, &l, &m);
    if (base_apart(h, &l, &m, start, offers, count)) {
        if (horizon_eval(h, start, offers, 1, total_a, total_b) < 0) return -1;
        return horizon_eval(h, start, offers + 1, count - 1, total_a + 1, total_b + 1);
    }
    int failed = 0;
    double *shares = malloc(sizeof(double) * count * (SLICES + 1)); /* exact: [0, C0, C1, C2] per count */
    Plan *plans = malloc(sizeof(Plan) * count);
    if (!shares || !plans) {
        PyErr_NoMemory();
        goto fail;
    }
    long low, needed;
    count_window(h, &l, &m, start, offers, count, shares, &low, &needed);
    Prepared *ready = find_prepared(h, needed);
    if (!ready && !(ready = prepare(h, &l, &m, needed))) goto fail;
    long smallest = offers[0];
    for (Py_ssize_t k = 1; k < count; k++) smallest = offers[k] < smallest ? offers[k] : smallest;
    long reach[SLICES + 1] = {0};
    int extend = 0;
    for (int col = 1; col <= SLICES; col++) {
        reach[col] = frequencies_needed(&l, &m, h->exact, col, smallest, ready->size);
        extend |= reach[col] > ready->done[col];
    }
    if (extend && offer_columns(ready, reach) < 0) goto fail;
    if (ready->epoch != epoch) { /* a new search (or horizon_costs call): its own window and powers */
        ready->epoch = epoch;
        ready->cost_valid = ready->weighted_valid = 0;
        ready->memo_count = 0;
    }
    if (cost_window(ready, h, &low, needed) < 0) goto fail;
    long size = ready->size, frequencies = size / 2 + 1;
    weight_by_start(ready, (start - low) & (size - 1)); /* start - low mod size, a power of two */
    double row0_a, row0_b;
    if (row0_costs(h, start, &row0_a, &row0_b) < 0) goto fail;
    for (Py_ssize_t k = 0; k < count; k++) {
        total_a[k] = -row0_a; /* row 0 is an even row: it counts with a minus sign */
        total_b[k] = -row0_b;
    }
    if (!h->exact) {
        long largest = 0;
        for (Py_ssize_t k = 0; k < count; k++) largest = offers[k] > largest ? offers[k] : largest;
        offer_squares(ready, largest);
        plan_powers(ready, offers, count, plans);
    }
    /* Each offer count, column by column: its transform times the weighted fixed part, summed over
       the frequencies. */
    const double complex *weighted_a = ready->weighted, *weighted_b = ready->weighted + SLICES * frequencies;
    for (int col = 1; col <= SLICES; col++) {
        const double complex *wa = weighted_a + (col - 1) * frequencies, *wb = weighted_b + (col - 1) * frequencies;
        const double *limit = ready->offer_limit + col * frequencies;
        for (Py_ssize_t k = 0; k < count; k++) {
            double sum_a = 0.0, sum_b = 0.0;
            if (h->exact)
                exact_column(ready, col, limit, wa, wb, h->p * shares[k * (SLICES + 1) + col], offers[k] + h->outstanding,
                             &sum_a, &sum_b);
            else
                offer_column(ready, col, &plans[k], offers[k], limit, wa, wb, &sum_a, &sum_b);
            total_a[k] += sum_a;
            total_b[k] += sum_b;
        }
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        /* Costs only grow with arrivals: FFT noise must not make a zero cost -1e-17. */
        total_a[k] = fmax(0.0, total_a[k]);
        total_b[k] = fmax(0.0, total_b[k]);
    }
    goto done;
fail:
    failed = 1;
done:
    free(shares);
    free(plans);
    return failed ? -1 : 0;
}

static int read_offers(PyObject *seq, long **out, Py_ssize_t *count) {
    PyObject *fast = PySequence_Fast(seq, "offers must be a sequence of counts");
    if (!fast) return -1;
    *count = PySequence_Fast_GET_SIZE(fast);
    long *offers = malloc(sizeof(long) * (*count ? *count : 1));
    if (!offers) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < *count; k++) {
        offers[k] = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, k));
        if ((offers[k] == -1 && PyErr_Occurred()) || offers[k] < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "offer counts must be >= 0");
            free(offers);
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    *out = offers;
    return 0;
}

PyDoc_STRVAR(horizon_costs_doc,
             "horizon_costs(offers, start, model) -> list of (abandons, abandons + late answers)\n\n"
             "The horizon's expected queue costs for each offer count, from `start` free agents minus queue\n"
             "(see horizon.py; `model` is Horizon.model).");

static PyObject *horizon_costs(PyObject *self, PyObject *args) {
    PyObject *offers_seq, *model;
    long start;
    Model h;
    if (!PyArg_ParseTuple(args, "OlO!", &offers_seq, &start, &PyTuple_Type, &model) || parse_model(model, &h) < 0)
        return NULL;
    epoch++;
    long *offers;
    Py_ssize_t count;
    if (read_offers(offers_seq, &offers, &count) < 0) return NULL;
    double *totals = malloc(sizeof(double) * 2 * (count ? count : 1));
    PyObject *result = NULL;
    if (!totals) {
        PyErr_NoMemory();
    } else if (horizon_eval(&h, start, offers, count, totals, totals + count) == 0 && (result = PyList_New(count))) {
        for (Py_ssize_t k = 0; k < count; k++) {
            PyObject *pair = Py_BuildValue("(dd)", totals[k], totals[count + k]);
            if (!pair) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, k, pair);
        }
    }
    free(totals);
    free(offers);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* The progressive plan's search over offer counts                                              */

#define MAX_KNOWN 512

typedef struct {
    long n[MAX_KNOWN];
    double margin[MAX_KNOWN], abandon[MAX_KNOWN], bad[MAX_KNOWN];
    int count;
} Known;

static int known_index(const Known *k, long n) {
    for (int i = 0; i < k->count; i++)
        if (k->n[i] == n) return i;
    return -1;
}

static int compare_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

PyDoc_STRVAR(progressive_search_doc,
             "progressive_search(model, planning_start, actual_start, p, goal, service_level, cap, guess)\n"
             "-> (offers, abandons, abandons + late answers)\n\n"
             "The largest n <= cap whose added abandons (and, with service_level >= 0, abandons + late answers)\n"
             "over the horizon `model` from `planning_start` stay within the goal share of its own expected\n"
             "accepts n p, and the horizon's costs with those offers from `actual_start` (see\n"
             "progressive.py: a gallop and bisection over n in 2-3 batches, each one horizon evaluation).");

static PyObject *progressive_search(PyObject *self, PyObject *args) {
    PyObject *model;
    long planning_start, actual_start, cap;
    double p, goal, service_level, guess;
    Model h;
    if (!PyArg_ParseTuple(args, "O!lldddld", &PyTuple_Type, &model, &planning_start, &actual_start, &p, &goal,
                          &service_level, &cap, &guess) ||
        parse_model(model, &h) < 0)
        return NULL;
    if (cap > 100000000L) {
        PyErr_SetString(PyExc_ValueError, "progressive_search: cap out of range");
        return NULL;
    }
    epoch++;
    Known known;
    known.count = 1;
    known.n[0] = 0;
    known.margin[0] = 0.0; /* no offers keep the goal by definition; its costs come with the first batch */
    int have_base = 0;
    long result = 0;
    if (cap > 0) {
        long g = (long)fmin((double)cap, fmax(1.0, rint(guess)));
        long batch[MAX_BATCH];
        int batch_size = 0;
        batch[batch_size++] = (long)fmax(1.0, rint(0.7 * (double)g));
        batch[batch_size++] = g;
        batch[batch_size++] = g + 1;
        batch[batch_size++] = (long)rint(1.4 * (double)g) + 1;
        batch[batch_size++] = 2 * g + 2;
        long good = 0;
        for (int iteration = 0; iteration < 64; iteration++) {
            /* the new counts of the batch, sorted, each once; the base (no offers) with the first */
            long todo[MAX_BATCH + 1];
            int todo_size = 0;
            if (!have_base) todo[todo_size++] = 0;
            qsort(batch, batch_size, sizeof(long), compare_long);
            for (int i = 0; i < batch_size; i++) {
                long n = batch[i];
                if (n <= 0 || n > cap || known_index(&known, n) >= 0) continue;
                if (todo_size && todo[todo_size - 1] == n) continue;
                todo[todo_size++] = n;
            }
            if (todo_size > 0) {
                if (known.count + todo_size > MAX_KNOWN) break;
                double a[MAX_BATCH + 1], b[MAX_BATCH + 1];
                if (horizon_eval(&h, planning_start, todo, todo_size, a, b) < 0) return NULL;
                int first = 0;
                if (!have_base) {
                    known.abandon[0] = a[0];
                    known.bad[0] = b[0];
                    have_base = 1;
                    first = 1;
                }
                for (int i = first; i < todo_size; i++) {
                    double n = (double)todo[i];
                    double margin = goal * n * p + 1e-12 - (a[i] - known.abandon[0]);
                    if (service_level >= 0)
                        margin = fmin(margin, (1 - service_level) * n * p + 1e-12 - (b[i] - known.bad[0]));
                    int at = known.count++;
                    known.n[at] = todo[i];
                    known.margin[at] = margin;
                    known.abandon[at] = a[i];
                    known.bad[at] = b[i];
                }
            }
            long bad = cap + 1;
            for (int i = 0; i < known.count; i++)
                if (known.margin[i] < 0 && known.n[i] < bad) bad = known.n[i];
            good = 0;
            for (int i = 0; i < known.count; i++)
                if (known.margin[i] >= 0 && known.n[i] < bad && known.n[i] > good) good = known.n[i];
            if (good >= cap || bad == good + 1) break;
            batch_size = 0;
            if (bad > cap) { /* nothing bad seen yet: double */
                batch[batch_size++] = good * 2 + 2 < cap ? good * 2 + 2 : cap;
                batch[batch_size++] = good * 4 + 4 < cap ? good * 4 + 4 : cap;
                continue;
            }
            int good_at = known_index(&known, good), bad_at = known_index(&known, bad);
            if (good_at < 0 || bad_at < 0) break; /* both are known: found above */
            double m_good = known.margin[good_at], m_bad = known.margin[bad_at];
            double estimates[4];
            int estimate_count = 0;
            estimates[estimate_count++] = good + m_good * (double)(bad - good) / (m_good - m_bad); /* the chord */
            long pairs[3] = {good, bad - 1, bad};
            for (int i = 0; i < 3; i++) { /* the tangents at known neighbouring pairs */
                int at = known_index(&known, pairs[i]), next = known_index(&known, pairs[i] + 1);
                if (at >= 0 && next >= 0 && known.margin[next] < known.margin[at])
                    estimates[estimate_count++] =
                        pairs[i] + known.margin[at] / (known.margin[at] - known.margin[next]);
            }
            for (int i = 0; i < estimate_count; i++) {
                if (good < estimates[i] && estimates[i] < bad) {
                    long n = (long)floor(estimates[i]);
                    batch[batch_size++] = n;
                    batch[batch_size++] = n + 1;
                }
            }
            long middle = (good + bad) / 2; /* bisection too: at worst the bracket halves each batch */
            batch[batch_size++] = middle;
            batch[batch_size++] = middle + 1;
        }
        result = good;
    }
    /* The costs with those offers, from where the group actually starts. */
    double abandon, bad_cost;
    int at = known_index(&known, result);
    if (actual_start == planning_start && at >= 0 && (at > 0 || have_base)) {
        abandon = known.abandon[at];
        bad_cost = known.bad[at];
    } else if (horizon_eval(&h, actual_start, &result, 1, &abandon, &bad_cost) < 0) {
        return NULL;
    }
    return Py_BuildValue("(ldd)", result, abandon, bad_cost);
}

/* ------------------------------------------------------------------------------------------ */
/* The progressive plan, whole: progressive._plan's body                                        */

/* P(an offer made uniformly in the period and answered after an exponential delay is answered by
 * t): horizon._uniform_plus_exponential_cdf, operation for operation. */
static double plan_new_cdf(double t, double period_s, double response_s) {
    if (t <= 0) return 0.0;
    if (t <= period_s) return (t - response_s * (1 - exp(-t / response_s))) / period_s;
    return 1 - response_s / period_s * (exp(-(t - period_s) / response_s) - exp(-t / response_s));
}

/* A tuple of `count` new references (stolen); NULL, all released, when any is NULL. */
static PyObject *plan_tuple(int count, ...) {
    va_list items;
    va_start(items, count);
    PyObject *tuple = PyTuple_New(count);
    for (int i = 0; i < count; i++) {
        PyObject *item = va_arg(items, PyObject *);
        if (tuple && item) {
            PyTuple_SET_ITEM(tuple, i, item);
        } else {
            Py_XDECREF(item);
            Py_CLEAR(tuple);
        }
    }
    va_end(items);
    return tuple;
}

_Static_assert(SLICES == 3, "plan_shares builds three shares");

static PyObject *plan_shares(const double share[SLICES]) {
    return plan_tuple(SLICES, PyFloat_FromDouble(share[0]), PyFloat_FromDouble(share[1]), PyFloat_FromDouble(share[2]));
}

PyDoc_STRVAR(progressive_plan_doc,
             "progressive_plan(ready, busy, waiting, outstanding, p, handle_s, patience_s, reactive_per_hour,\n"
             "                 period_s, response_s, short_s, sl_s, goal, service_level, cap, exact)\n"
             "-> (offers, predicted_abandonment, predicted_service_level)\n\n"
             "progressive._plan in one call (service_level < 0: not enforced): the position table, the reactive\n"
             "reserve (progressive.reactive_reserve), the horizon's parameters (horizon.Horizon), the\n"
             "lines-per-agent guess, progressive_search, and the predicted figures. The Python classes stay\n"
             "the reference; tests/unit/engine/test_engine_reference.py checks this against them.");

static PyObject *progressive_plan(PyObject *self, PyObject *args) {
    long ready, busy, waiting, outstanding, cap;
    double p, handle_s, patience_s, reactive_per_hour, period_s, response_s, short_s, sl_s, goal, service_level;
    int exact;
    if (!PyArg_ParseTuple(args, "llllddddddddddlp", &ready, &busy, &waiting, &outstanding, &p, &handle_s,
                          &patience_s, &reactive_per_hour, &period_s, &response_s, &short_s, &sl_s, &goal,
                          &service_level, &cap, &exact))
        return NULL;
    long agents = ready + busy;
    if (ready < 0 || busy < 0 || waiting < 0 || outstanding < 0 || agents < 1 || agents > 100000000L) {
        PyErr_SetString(PyExc_ValueError, "progressive_plan needs ready, busy, waiting, outstanding >= 0 and at least "
                                          "one agent");
        return NULL;
    }
    if (!(handle_s > 0) || !(patience_s > 0) || !(short_s >= 0) || !(sl_s >= 0) || !(period_s > 0) ||
        !(response_s > 0) || !(reactive_per_hour >= 0)) {
        PyErr_SetString(PyExc_ValueError, "progressive_plan needs handle, patience, period and response > 0, "
                                          "thresholds and the reactive rate >= 0");
        return NULL;
    }
    long positions = 2 * agents + 60;
    double reactive = reactive_per_hour / 3600;

    /* The reactive reserve (progressive.reactive_reserve): the fewest agents kept free whose
     * exhaustion, times the first queue position's abandon chance, stays within the goal. */
    long reserve = 0;
    if (reactive > 0) {
        Table *table = table_for(agents, handle_s, patience_s, short_s, sl_s, positions);
        if (table_price(table, 1) < 0) return NULL;
        double queued_abandon = table_at(table, 0, 1);
        if (queued_abandon > goal) {
            double weight = 1.0, total = 1.0;
            reserve = agents;
            for (long k = 1; k <= agents; k++) {
                weight *= (double)(agents - k + 1) / handle_s / reactive;
                total += weight;
                if (queued_abandon / total <= goal) {
                    reserve = k;
                    break;
                }
            }
        }
    }

    /* The horizon's parameters (horizon.Horizon and _accept_shares). */
    long start = ready - waiting;
    double length_s = period_s + response_s, slice_s = length_s / SLICES;
    double finish_share[SLICES], new_share[SLICES], pending_share[SLICES];
    for (int s = 0; s < SLICES; s++) {
        double begin = s - 0.5 > 0.0 ? s - 0.5 : 0.0, end = s + 0.5;
        finish_share[s] = exp(-begin * slice_s / handle_s) - exp(-end * slice_s / handle_s);
    }
    double new_before = 0.0, pending_before = 0.0;
    for (int s = 1; s < SLICES; s++) {
        double t = slice_s * s;
        double new_edge = plan_new_cdf(t, period_s, response_s), pending_edge = 1 - exp(-t / response_s);
        new_share[s - 1] = new_edge - new_before;
        pending_share[s - 1] = pending_edge - pending_before;
        new_before = new_edge;
        pending_before = pending_edge;
    }
    new_share[SLICES - 1] = 1 - new_before;
    pending_share[SLICES - 1] = 1 - pending_before;
    double tail_s = handle_s / (double)(agents > 1 ? agents : 1);
    tail_s = length_s > tail_s ? length_s : tail_s;
    double tail_finish = 1 - exp(-(slice_s / 2 + tail_s / 2) / handle_s);
    double reactive_span_s = length_s + tail_s;
    double guess = ((double)(ready - reserve - waiting) + (double)busy * (1 - exp(-length_s / handle_s)) -
                    (double)outstanding * p - reactive * length_s) / p;

    /* The search (progressive_search, called as it is: its model is Horizon.model's tuple), its
     * arguments built item by item (Py_BuildValue's format walk cost more than the items). */
    PyObject *search_args = plan_tuple(
        8, plan_tuple(13, PyFloat_FromDouble(reactive), PyLong_FromLong(busy), PyLong_FromLong(outstanding),
                      PyLong_FromLong(agents), PyFloat_FromDouble(p), PyBool_FromLong(exact),
                      PyFloat_FromDouble(slice_s), PyFloat_FromDouble(tail_s), PyFloat_FromDouble(tail_finish),
                      plan_shares(finish_share), plan_shares(new_share), plan_shares(pending_share),
                      plan_tuple(6, PyLong_FromLong(agents), PyFloat_FromDouble(handle_s),
                                 PyFloat_FromDouble(patience_s), PyFloat_FromDouble(short_s),
                                 PyFloat_FromDouble(sl_s), PyLong_FromLong(positions))),
        PyLong_FromLong(start - reserve), PyLong_FromLong(start), PyFloat_FromDouble(p), PyFloat_FromDouble(goal),
        PyFloat_FromDouble(service_level), PyLong_FromLong(cap), PyFloat_FromDouble(guess));
    if (!search_args) return NULL;
    PyObject *found = progressive_search(self, search_args);
    Py_DECREF(search_args);
    if (!found) return NULL;
    long offers;
    double abandon, bad;
    int parsed = PyArg_ParseTuple(found, "ldd", &offers, &abandon, &bad);
    Py_DECREF(found);
    if (!parsed) return NULL;
    double arriving = (double)(offers + outstanding) * p + reactive * reactive_span_s;
    return Py_BuildValue("(ldd)", offers, arriving > 0 ? abandon / arriving : 0.0,
                         arriving > 0 ? 1 - bad / arriving : 1.0);
}

static PyMethodDef methods[] = {
    {"position_table", position_table, METH_VARARGS, position_table_doc},
    {"position_at", position_at, METH_VARARGS, position_at_doc},
    {"steady_state", steady_state, METH_VARARGS, steady_state_doc},
    {"erlang_a_rate", erlang_a_rate, METH_VARARGS, erlang_a_rate_doc},
    {"horizon_costs", horizon_costs, METH_VARARGS, horizon_costs_doc},
    {"progressive_search", progressive_search, METH_VARARGS, progressive_search_doc},
    {"progressive_plan", progressive_plan, METH_VARARGS, progressive_plan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "The pacing engine's compiled numeric kernels (queueing.py and horizon.py call them).", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
