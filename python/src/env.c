/*
 * env.c - sagesvc._core.Env: an in-process registry of services (a
 * sage_env). It holds a reference to every task registered, so a task
 * lives at least as long as its registration; a manager built on the
 * environment holds the environment.
 */
#include "pysage.h"

static int env_init(PySage_Env *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"namespace", NULL};
    const char *ns = NULL;
    sage_err r;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z:Env", names, &ns))
        return -1;
    if (self->env != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Env: already initialised");
        return -1;
    }
    if ((r = sage_env_new(&self->env, ns)) != SAGE_OK) {
        pysage_raise_as(SAGE_EINVAL, r, sage_errdetail());
        return -1;
    }
    if ((self->tasks = PyDict_New()) == NULL)
        return -1;
    return 0;
}

static int env_traverse(PySage_Env *self, visitproc visit, void *arg)
{
    Py_VISIT(self->tasks);
    return 0;
}

static int env_clear(PySage_Env *self)
{
    /* tasks stay referred to by the C registry until it goes: unregister
     * them first */
    if (self->env && self->tasks) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;

        while (PyDict_Next(self->tasks, &pos, &k, &v))
            sage_env_unregister(self->env, PyUnicode_AsUTF8(k));
    }
    Py_CLEAR(self->tasks);
    return 0;
}

static void env_dealloc(PySage_Env *self)
{
    PyObject_GC_UnTrack(self);
    env_clear(self);
    sage_env_free(self->env);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check(PySage_Env *self)
{
    if (self->env == NULL || self->tasks == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Env: not initialised");
        return -1;
    }
    return 0;
}

static PyObject *env_register(PySage_Env *self, PyObject *args)
{
    PyObject *name_obj, *task;
    const char *name;
    sage_task *t;
    sage_err r;

    if (check(self) < 0 || !PyArg_ParseTuple(args, "OO:register", &name_obj, &task))
        return NULL;
    if ((t = pysage_task_ptr(task)) == NULL)
        return NULL;
    if (name_obj == Py_None)
        name = sage_task_name(t);
    else if (!PyUnicode_Check(name_obj) || (name = PyUnicode_AsUTF8(name_obj)) == NULL)
        return PyErr_Occurred() ? NULL
                                : PyErr_Format(PyExc_TypeError, "register: name must be a str");
    if ((r = sage_env_register(self->env, name, t)) != SAGE_OK)
        return pysage_raise_as(SAGE_EINVAL, r, sage_errdetail());
    if (PyDict_SetItemString(self->tasks, name, task) < 0) {
        sage_env_unregister(self->env, name);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *env_unregister(PySage_Env *self, PyObject *arg)
{
    const char *name;
    sage_err r;

    if (check(self) < 0)
        return NULL;
    if (!PyUnicode_Check(arg) || (name = PyUnicode_AsUTF8(arg)) == NULL)
        return PyErr_Occurred() ? NULL
                                : PyErr_Format(PyExc_TypeError, "unregister: name must be a str");
    if ((r = sage_env_unregister(self->env, name)) != SAGE_OK)
        return pysage_raise(SAGE_ENOSERVICE, sage_errdetail());
    if (PyDict_DelItem(self->tasks, arg) < 0)
        PyErr_Clear();
    Py_RETURN_NONE;
}

static PyObject *env_find(PySage_Env *self, PyObject *arg)
{
    PyObject *t;

    if (check(self) < 0)
        return NULL;
    t = PyDict_GetItemWithError(self->tasks, arg);
    if (t == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    Py_XINCREF(t);
    return t;
}

static PyObject *env_names(PySage_Env *self, PyObject *unused)
{
    if (check(self) < 0)
        return NULL;
    return PyDict_Keys(self->tasks);
}

static PyObject *env_ns(PySage_Env *self, void *closure)
{
    if (check(self) < 0)
        return NULL;
    return PyUnicode_FromString(sage_env_ns(self->env));
}

static PyMethodDef env_methods[] = {
    {"register", (PyCFunction)env_register, METH_VARARGS,
     "register(name, task): map name (None: the task's) to task."},
    {"unregister", (PyCFunction)env_unregister, METH_O, "unregister(name)"},
    {"find", (PyCFunction)env_find, METH_O, "find(name) -> the task registered as name, or None"},
    {"names", (PyCFunction)env_names, METH_NOARGS, "names() -> registered names"},
    {NULL},
};

static PyGetSetDef env_getset[] = {
    {"namespace", (getter)env_ns, NULL, "the environment's namespace", NULL},
    {NULL},
};

PyTypeObject PySage_EnvType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sagesvc._core.Env",
    .tp_basicsize = sizeof(PySage_Env),
    .tp_dealloc = (destructor)env_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Env(namespace=None): the in-process registry of services.",
    .tp_traverse = (traverseproc)env_traverse,
    .tp_clear = (inquiry)env_clear,
    .tp_methods = env_methods,
    .tp_getset = env_getset,
    .tp_init = (initproc)env_init,
    .tp_new = PyType_GenericNew,
};
