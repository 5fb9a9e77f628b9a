/*
 * gil.c - taking the GIL on whatever thread the library calls us on.
 *
 * Design notes
 * - Python services are called on the task's listener and worker threads,
 *   futures complete on the manager's completion thread, and a direct call
 *   runs a method on the calling Python thread, which released the GIL
 *   around the call. PyGILState_Ensure handles all of them, but on a
 *   thread Python has never seen it creates a thread state and the
 *   matching Release destroys it again: per call, that is an allocation,
 *   a list insertion under the runtime's lock, and a clear.
 * - So a library thread is adopted the first time: its thread state is
 *   created once (a second Ensure keeps the counter above zero, so
 *   Release never deletes it), and a thread-specific key's destructor
 *   deletes it when the thread ends - provided the interpreter still runs;
 *   after finalization it is left alone (the runtime is gone).
 * - Every task and manager is stopped and freed before finalization (the
 *   package's atexit hook), so library threads end while Python lives.
 */
#include "pysage.h"

#include <pthread.h>

static pthread_key_t adopted_key;

static void adopted_end(void *p)
{
    PyThreadState *ts = p;
    PyGILState_STATE g;

    if (ts == NULL || !pysage_alive())
        return;
    /* Thread keys end in any order: the interpreter's own may be gone
     * already, and with it what says ts is this thread's (a debug
     * interpreter then refuses to free its objects). Ensure finds ts, or
     * makes a thread state for the moment that holds the GIL while ts is
     * cleared. */
    g = PyGILState_Ensure();
    PyThreadState_Clear(ts);
    if (PyThreadState_Get() == ts) {
        PyThreadState_DeleteCurrent(); /* and the GIL goes */
    } else {
        PyThreadState_Delete(ts);
        PyGILState_Release(g);
    }
}

int pysage_gil_init(void)
{
    return pthread_key_create(&adopted_key, adopted_end) == 0 ? 0 : -1;
}

bool pysage_alive(void)
{
    return Py_IsInitialized() && !_Py_IsFinalizing();
}

PyGILState_STATE pysage_gil_take(void)
{
    PyGILState_STATE st;

    if (PyGILState_GetThisThreadState() == NULL) {
        /* a library thread, first time: a thread state for good */
        st = PyGILState_Ensure();
        (void)PyGILState_Ensure();
        pthread_setspecific(adopted_key, PyGILState_GetThisThreadState());
        return st;
    }
    return PyGILState_Ensure();
}

void pysage_gil_give(PyGILState_STATE st)
{
    PyGILState_Release(st);
}
