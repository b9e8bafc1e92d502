/* hexspec.c: see hexspec.h. */
#include "hexspec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

void spro_test_hex(const char *s, size_t n, struct spro_buf *b)
{
    const char *end = s + n;
    while (s < end) {
        if (*s == ' ' || *s == '\n') {
            s++;
            continue;
        }
        struct spro_buf item = {0};
        if (*s == '(') {
            const char *close = memchr(s, ')', (size_t)(end - s));
            if (close == NULL)
                SPRO_BUG("unclosed group in test input");
            spro_test_hex(s + 1, (size_t)(close - s - 1), &item);
            s = close + 1;
        } else {
            int hi = check_hexval(s[0]), lo = hi < 0 || s + 1 >= end ? -1 : check_hexval(s[1]);
            if (hi < 0 || lo < 0)
                SPRO_BUG("bad hex in test input");
            uint8_t byte = (uint8_t)(hi << 4 | lo);
            spro_buf_append(&item, &byte, 1);
            s += 2;
        }
        unsigned long count = 1;
        if (s < end && *s == '*') {
            char *after;
            count = strtoul(s + 1, &after, 10);
            s = after;
        }
        for (unsigned long k = 0; k < count; k++)
            spro_buf_append(b, item.data, item.len);
        spro_buf_free(&item);
    }
}
