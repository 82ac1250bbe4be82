/* SPDX-License-Identifier: MIT */
/* The monotonic clock (lib/internal/clock.h). */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "internal/clock.h"

int64_t am_mono_ns(int coarse)
{
        struct timespec ts;
        int64_t ns;

        if (clock_gettime(coarse ? CLOCK_MONOTONIC_COARSE : CLOCK_MONOTONIC, &ts) < 0)
                return 1;
        ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        return ns ? ns : 1;
}

long long am_mono_ms(void)
{
        return am_mono_ns(0) / 1000000;
}

int am_wait_fd(int fd, short events, long long deadline)
{
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                long long left = deadline - am_mono_ms();
                int r;

                if (left <= 0)
                        return -ETIMEDOUT;
                r = poll(&p, 1, left > 0x7fffffff ? 0x7fffffff : (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                return r == 0 ? -ETIMEDOUT : 0;
        }
}
