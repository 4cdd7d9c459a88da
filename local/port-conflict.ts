// What `npm start` says when one of its ports is taken: the port, the variable that moves it, what
// holds it as far as it is known (an npm start only when the state file lists it on that very
// port), and the command that starts it elsewhere, with the other port variables the user set.

import type { LocalRuntimeState } from './runtime-state.js';

/** The port variables, what listens on each, and their defaults. */
export const PORTS = [
  { variable: 'PORT', what: 'HTTP API', fallback: 3000 },
  { variable: 'SQS_PORT', what: 'SNS and SQS', fallback: 4566 },
  { variable: 'DYNAMODB_PORT', what: 'DynamoDB', fallback: 4567 },
] as const;
export type PortVariable = (typeof PORTS)[number]['variable'];

/**
 * Ports to suggest instead of `port`, nearest first (10 apart, so that they are easy to read and
 * type), never one of `inUse` (the other ports this start wants) and never outside 1-65535.
 */
export function alternativePorts(port: number, inUse: readonly number[], count = 10): number[] {
  const candidates: number[] = [];
  for (let step = 10; candidates.length < count && step < 65535; step += 10) {
    const candidate = port + step <= 65535 ? port + step : port - step;
    if (candidate >= 1 && !inUse.includes(candidate)) candidates.push(candidate);
  }
  return candidates;
}

/**
 * `npm start` with `variable` set to `port`, keeping every other port variable the user set (in
 * the order of PORTS), so that the command moves one port and nothing else.
 */
export function suggestedCommand(variable: PortVariable, port: number, env: NodeJS.ProcessEnv): string {
  const assignments = PORTS.flatMap(({ variable: name }) => {
    if (name === variable) return [`${name}=${port}`];
    const value = env[name];
    return value === undefined || value === '' ? [] : [`${name}=${value}`];
  });
  return `${assignments.join(' ')} npm start`;
}

/**
 * One line: the port taken, its variable, what holds it and how to start elsewhere. `holder` is
 * the running npm start the state file lists on that port, if any: only then is one named.
 */
export function portInUseMessage(input: {
  variable: PortVariable;
  port: number;
  holder: LocalRuntimeState | undefined;
  alternative: number;
  env: NodeJS.ProcessEnv;
}): string {
  const { variable, port, holder, alternative, env } = input;
  const { what } = PORTS.find((entry) => entry.variable === variable)!;
  const by = holder ? `another npm start (pid ${holder.pid}, running since ${holder.startedAt})` : 'another process';
  return `port ${port} (${variable}, ${what}) is already in use by ${by}. Stop it, or set ${variable} to another port: ${suggestedCommand(variable, alternative, env)}`;
}
