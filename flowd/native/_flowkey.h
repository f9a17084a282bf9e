/* flowd/native/_flowkey.h: facts about flowd's 40-byte flow keys (flowd.model.flowkey) that more than one
 * extension uses. */
#ifndef FLOWD_FLOWKEY_H
#define FLOWD_FLOWKEY_H

#include <stdint.h>
#include <string.h>

/* flowd.model.flowkey.is_ipv4: both addresses of a 40-byte key IPv4-mapped (::ffff:a.b.c.d), compared
 * as words, without a call. */
static inline int is_v4(const uint8_t *k)
{
    static const uint8_t marker[4] = {0, 0, 0xff, 0xff};
    uint64_t src_high, dst_high;
    uint32_t src_mark, dst_mark, mark;
    memcpy(&src_high, k, 8);
    memcpy(&src_mark, k + 8, 4);
    memcpy(&dst_high, k + 16, 8);
    memcpy(&dst_mark, k + 24, 4);
    memcpy(&mark, marker, 4);
    return (src_high | dst_high) == 0 && src_mark == mark && dst_mark == mark;
}

#endif
