/* SPDX-License-Identifier: MIT */
/* Code points that look like something else (lib/internal/unicode.h). */
#include <stddef.h>

#include "internal/unicode.h"

int am_look_alike(unsigned cp)
{
        static const unsigned ranges[][2] = {
                { 0x00a0, 0x00a0 }, { 0x00ad, 0x00ad }, { 0x034f, 0x034f },
                { 0x061c, 0x061c }, { 0x115f, 0x1160 }, { 0x1680, 0x1680 },
                { 0x17b4, 0x17b5 }, { 0x180b, 0x180f }, { 0x2000, 0x200f },
                { 0x2028, 0x202f }, { 0x205f, 0x206f }, { 0x2800, 0x2800 },
                { 0x3000, 0x3000 }, { 0x3164, 0x3164 }, { 0xfe00, 0xfe0f },
                { 0xfeff, 0xfeff }, { 0xffa0, 0xffa0 }, { 0xfff0, 0xfffb },
                { 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a }, { 0xe0000, 0xe0fff },
        };

        if (cp < 0xa0)
                return 0;
        for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
                if (cp >= ranges[i][0] && cp <= ranges[i][1])
                        return 1;
        return 0;
}
