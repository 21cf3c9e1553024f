import { type ChildProcess, spawnSync } from 'node:child_process'
import { availableParallelism } from 'node:os'

export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))
  return s[i]!
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** True when `taskset` exists and there are at least two cores to split between server and load. */
export const CAN_PIN = availableParallelism() >= 2 && spawnSync('taskset', ['-V']).status === 0
/** The server under test runs alone on this core... */
export const SERVER_CPU = 0
/** ...and the load generator, Redis and the orchestrator share this one. */
export const LOAD_CPU = 1

/** Pin every thread of `pid` to `cpu` (no-op without taskset). */
export function pin(pid: number | undefined, cpu: number): void {
  if (!CAN_PIN || pid === undefined) return
  spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' })
}

/** Wait for the first IPC message of `type` from `child`; reject on exit or after `timeoutMs`. */
export function waitMessage<T>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${type}`)),
      timeoutMs,
    )
    const onMessage = (msg: { type: string; message?: string }): void => {
      if (msg.type === type) done(undefined, msg as T)
      else if (msg.type === 'error') done(new Error(msg.message ?? 'child error'))
    }
    const onExit = (code: number | null): void => done(new Error(`child exited (${code}) before ${type}`))
    function done(err: Error | undefined, value?: T): void {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (err) reject(err)
      else resolve(value as T)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

/** Resolve when `child` has exited; SIGKILL it after `timeoutMs`. */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
