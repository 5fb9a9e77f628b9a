/*
 * call_svc.c - what every impl of "sage-bench call" calls: a method that
 * echoes its first argument, and the 64-byte payload it is called with.
 *
 * The work itself (call_echo) is on plain values, so the direct impl can
 * call it without a sage_call, and the zmq server can run exactly what the
 * service's method runs after decoding.
 */
#include <string.h>

#include "call.h"

sage_err call_echo(const sage_value *args, sage_value *out)
{
    if (args->type != SAGE_ARRAY || args->as.array.len < 1)
        return SAGE_EBADARGS;
    *out = args->as.array.items[0];
    return SAGE_OK;
}

static sage_err echo_method(void *state, sage_call *call)
{
    sage_value out;

    (void)state;
    if (call_echo(sage_call_args(call), &out) != SAGE_OK)
        return sage_call_error(call, SAGE_EBADARGS, "echo takes at least one argument");
    /* out views the request's args, which live in the call's arena */
    return sage_call_result(call, &out);
}

static const sage_method methods[] = {{CALL_METHOD, echo_method, 0}, {0}};

const sage_service call_echo_service = {
    .abi = SAGE_SERVICE_ABI, .name = CALL_SERVICE, .methods = methods};

/* 52 printable bytes, a different one at each end so a truncation shows */
static const char text[CALL_STR_LEN + 1] = "<sage-bench call payload: 52 bytes of text, echoed!>";

void call_payload(sage_value args[2])
{
    _Static_assert(sizeof text == CALL_STR_LEN + 1, "payload text length");
    args[0] = sage_strn(text, CALL_STR_LEN);
    args[1] = sage_int(CALL_INT_ARG);
}

bool call_check_result(const sage_value *v)
{
    return v->type == SAGE_STR && v->as.str.len == CALL_STR_LEN &&
           memcmp(v->as.str.ptr, text, CALL_STR_LEN) == 0;
}
