/**
 * The in-process twin of src/lua/lib/algorithms.lua + decide.lua: the same arithmetic, in the same
 * order, on the same IEEE doubles, so the memory store gives the Redis store's answers for the same
 * clock (test/memory-redis-differential.test.ts checks it). Change both together.
 */

/** Sliding-log state: runs of admitted units, sorted by admission time (ms). */
export interface SlState {
  readonly kind: 'sl'
  /** Admission times (ms), ascending. */
  readonly t: number[]
  /** Units admitted at t[i]. */
  readonly n: number[]
  /** Sum of n. */
  total: number
}
/** Sliding-window / fixed-window state: window index, count in it, count in the previous one. */
export interface WinState {
  readonly kind: 'win'
  w: number
  c: number
  p: number
}
/** Token-bucket state: TAT in integer microseconds plus a remainder in 1/limit microseconds. */
export interface TbState {
  readonly kind: 'tb'
  tat: number
  frac: number
}
export type CounterState = SlState | WinState | TbState

/** Where the algorithms read and write state; `get` returns only live (unexpired) state. */
export interface StateAccess {
  get(key: string): CounterState | undefined
  /** Store `state` under `key` until `ttlMs` after the decision's now (expired when now > now + ttl). */
  set(key: string, state: CounterState, ttlMs: number): void
}

interface Eval {
  ok: boolean
  remYes: number
  resetYes: number
  remNo: number
  resetNo: number
  retry: number
  commit(): void
}

type EvalFn = (s: StateAccess, key: string, L: number, W: number, n: number, u: number, c: number) => Eval

const slEval: EvalFn = (s, key, L, W, n, _u, c) => {
  const floor = n - W
  const st = s.get(key)
  const runs = st?.kind === 'sl' ? st : undefined
  // ZCOUNT key (floor +inf: the expired runs are a prefix (runs are sorted)
  let first = 0
  let expired = 0
  let count = 0
  if (runs) {
    while (first < runs.t.length && (runs.t[first] as number) <= floor) {
      expired += runs.n[first] as number
      first++
    }
    count = runs.total - expired
  }
  const newest = count > 0 && runs ? (runs.t[runs.t.length - 1] as number) : undefined
  const remNo = Math.max(0, L - count)
  const resetNo = newest === undefined ? 0 : newest + W - n
  if (c <= L && count + c <= L) {
    const last = newest !== undefined && newest > n ? newest : n
    const resetYes = last + W - n
    return {
      ok: true,
      remYes: L - count - c,
      resetYes,
      remNo,
      resetNo,
      retry: 0,
      commit() {
        // ZREMRANGEBYSCORE -inf floor, then ZADD c units at n
        const next: SlState = runs ?? { kind: 'sl', t: [], n: [], total: 0 }
        if (first > 0) {
          next.t.splice(0, first)
          next.n.splice(0, first)
          next.total -= expired
        }
        const t = next.t
        let at = t.length
        while (at > 0 && (t[at - 1] as number) > n) at--
        if (at > 0 && t[at - 1] === n) next.n[at - 1] = (next.n[at - 1] as number) + c
        else {
          t.splice(at, 0, n)
          next.n.splice(at, 0, c)
        }
        next.total += c
        s.set(key, next, resetYes)
      },
    }
  }
  let retry: number
  if (c > L) retry = W
  else {
    // the need-th oldest live unit is the one whose expiry frees enough room
    const need = count + c - L
    let seen = 0
    let score = n
    for (let i = first; runs && i < runs.t.length; i++) {
      seen += runs.n[i] as number
      if (seen >= need) {
        score = runs.t[i] as number
        break
      }
    }
    retry = score + W - n
  }
  return { ok: false, remYes: 0, resetYes: 0, remNo, resetNo, retry, commit() {} }
}

const swEval: EvalFn = (s, key, L, W, n, _u, c) => {
  let idx = Math.floor(n / W)
  const st = s.get(key)
  const h = st?.kind === 'win' ? st : undefined
  const w = h?.w
  let cur = h?.c ?? 0
  let prev = h?.p ?? 0
  if (w === undefined) {
    cur = 0
    prev = 0
  } else if (w > idx) {
    idx = w
  } else if (w === idx - 1) {
    prev = cur
    cur = 0
  } else if (w < idx - 1) {
    cur = 0
    prev = 0
  }
  let elapsed = n - idx * W
  if (elapsed < 0) elapsed = 0
  const left = W - elapsed
  const weighted = prev * left
  const cap = L * W
  const remNo = Math.max(0, Math.floor((cap - weighted - cur * W) / W))
  const resetNo = cur > 0 ? W + left : prev > 0 ? left : 0
  if (c <= L && weighted + (cur + c) * W <= cap) {
    const ncur = cur + c
    const resetYes = W + left
    const win = idx
    const p = prev
    return {
      ok: true,
      remYes: Math.max(0, Math.floor((cap - weighted - ncur * W) / W)),
      resetYes,
      remNo,
      resetNo,
      retry: 0,
      commit() {
        s.set(key, { kind: 'win', w: win, c: ncur, p }, resetYes)
      },
    }
  }
  let retry: number
  if (c > L) retry = W
  else if (cur + c <= L) retry = left - Math.floor(((L - cur - c) * W) / prev)
  else retry = left + W - Math.floor(((L - c) * W) / cur)
  return { ok: false, remYes: 0, resetYes: 0, remNo, resetNo, retry, commit() {} }
}

function tbCeilMs(t: number, f: number, u: number): number {
  let d = t - u
  if (f > 0) d = d + 1
  if (d <= 0) return 0
  return Math.ceil(d / 1000)
}

const tbEval: EvalFn = (s, key, L, W, _n, u, c) => {
  const wus = W * 1000
  let tat = u
  let frac = 0
  const st = s.get(key)
  if (st?.kind === 'tb' && st.tat >= u) {
    tat = st.tat
    frac = st.frac
  }
  const add = frac + c * wus
  const q = Math.floor(add / L)
  const ntat = tat + q
  const nfrac = add - q * L
  const remNo = Math.min(L, Math.max(0, Math.floor(((u + wus - tat) * L - frac) / wus)))
  const resetNo = tbCeilMs(tat, frac, u)
  let over = ntat - u - wus
  if (c <= L && (over < 0 || (over === 0 && nfrac === 0))) {
    const resetYes = tbCeilMs(ntat, nfrac, u)
    return {
      ok: true,
      remYes: Math.min(L, Math.max(0, Math.floor(((u + wus - ntat) * L - nfrac) / wus))),
      resetYes,
      remNo,
      resetNo,
      retry: 0,
      commit() {
        s.set(key, { kind: 'tb', tat: ntat, frac: nfrac }, resetYes + 1)
      },
    }
  }
  let retry: number
  if (c > L) retry = W
  else {
    if (nfrac > 0) over = over + 1
    retry = Math.ceil(over / 1000)
  }
  return { ok: false, remYes: 0, resetYes: 0, remNo, resetNo, retry, commit() {} }
}

const fwEval: EvalFn = (s, key, L, W, n, _u, c) => {
  let idx = Math.floor(n / W)
  const st = s.get(key)
  const h = st?.kind === 'win' ? st : undefined
  const w = h?.w
  let count = h?.c ?? 0
  if (w === undefined || w < idx) count = 0
  else if (w > idx) idx = w
  const reset = (idx + 1) * W - n
  const remNo = Math.max(0, L - count)
  const resetNo = count > 0 ? reset : 0
  if (c <= L && count + c <= L) {
    const ncount = count + c
    const win = idx
    return {
      ok: true,
      remYes: L - ncount,
      resetYes: reset,
      remNo,
      resetNo,
      retry: 0,
      commit() {
        s.set(key, { kind: 'win', w: win, c: ncount, p: 0 }, reset)
      },
    }
  }
  return { ok: false, remYes: 0, resetYes: 0, remNo, resetNo, retry: c > L ? W : reset, commit() {} }
}

const ALGORITHMS: Readonly<Record<string, EvalFn>> = { sl: slEval, sw: swEval, tb: tbEval, fw: fwEval }

/**
 * decide.lua's `decide_all` in TS. `nowUs`: the clock in integer microseconds; `argv`: the policy's
 * argv (alg-code, limit, windowMs per key). Returns the script's flat reply.
 */
export function decideAll(
  s: StateAccess,
  keys: readonly string[],
  argv: readonly (string | number)[],
  nowUs: number,
  cost: number,
): number[] {
  const nowMs = Math.floor(nowUs / 1000)
  const evals: Eval[] = []
  let all = true
  for (let i = 0; i < keys.length; i++) {
    const a = i * 3
    const alg = ALGORITHMS[String(argv[a])]
    const limit = Number(argv[a + 1])
    const window = Number(argv[a + 2])
    if (alg === undefined) throw new Error(`unknown algorithm code ${String(argv[a])}`)
    const r = alg(s, keys[i] as string, limit, window, nowMs, nowUs, cost)
    evals.push(r)
    if (!r.ok) all = false
  }
  const out = [nowMs]
  for (const r of evals) {
    if (all) {
      r.commit()
      out.push(1, r.remYes, r.resetYes, 0)
    } else {
      out.push(r.ok ? 1 : 0, r.remNo, r.resetNo, r.ok ? 0 : r.retry)
    }
  }
  return out
}
