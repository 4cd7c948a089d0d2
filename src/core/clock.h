/* clock.h — the two clocks: monotonic for timers and wall for timestamps users see. */
#ifndef COAPHUB_CORE_CLOCK_H
#define COAPHUB_CORE_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since an arbitrary point; never goes backwards. Any thread. */
int64_t clock_mono_ms(void);
/* The same clock in microseconds, for short time budgets. Any thread. */
int64_t clock_mono_us(void);
/* Milliseconds since the Unix epoch (ThingsBoard's `ts`). Any thread. */
int64_t clock_wall_ms(void);

/* Condition variables that threads wait on with a timeout use the monotonic clock (a wall
 * clock step must not stretch or cut a wait): clock_cond_init makes one, clock_mono_deadline
 * gives the absolute time ms from now that pthread_cond_timedwait takes for it. */
void clock_cond_init(pthread_cond_t *cv);
void clock_mono_deadline(struct timespec *out, int64_t ms);

#endif
