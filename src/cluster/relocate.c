/* relocate.c - placeholder, filled in below */
#include "cluster/host.h"

void sage__host_relocate(struct sage__host *h)
{
    (void)h;
}
