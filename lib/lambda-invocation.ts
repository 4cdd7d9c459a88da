/**
 * Middy's options for every handler here: no early timeout. By default Middy answers 5 ms before
 * the function's timeout with a TimeoutError while the handler's work goes on. Lambda then freezes
 * the environment with that work pending, and it resumes in whatever invocation thaws it next
 * (Lambda's execution environment lifecycle), long after its records were retried by another
 * attempt. Work that outlives its invocation breaks what the pipeline's retries rely on: an
 * attempt ends with its invocation (a stock marker's `until`, lib/inventory.ts). Without the early
 * timeout, an invocation that runs out of time is stopped by Lambda, which resets its environment;
 * the local runtime terminates its worker the same way (local/lambda-environment.ts).
 */
export const invocationEndsWithItsWork = { timeoutEarlyInMillis: 0 };
