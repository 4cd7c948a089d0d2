/* clock.h — the two clocks: monotonic for timers and wall for timestamps users see. */
#ifndef COAPHUB_CORE_CLOCK_H
#define COAPHUB_CORE_CLOCK_H

#include <stdint.h>

/* Milliseconds since an arbitrary point; never goes backwards. Any thread. */
int64_t clock_mono_ms(void);
/* The same clock in microseconds, for short time budgets. Any thread. */
int64_t clock_mono_us(void);
/* Milliseconds since the Unix epoch (ThingsBoard's `ts`). Any thread. */
int64_t clock_wall_ms(void);

#endif
