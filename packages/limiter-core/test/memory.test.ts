import t from 'tap'
import { type Algorithm, compilePolicy, counterKey, type Decision, MemoryStore } from '../src/index.js'

const T0 = 1_700_000_000_000 // a multiple of every window below: windows start at T0

function setup(algorithm: Algorithm, limit: number, windowMs: number) {
  let now = T0
  const store = new MemoryStore({ now: () => now, sweepIntervalMs: 0 })
  const policy = compilePolicy([{ name: 'x', algorithm, limit, windowMs }])
  return {
    store,
    at(ms: number, cost = 1): Decision {
      now = T0 + ms
      return store.decideSync('s', policy, cost)
    },
    summary(d: Decision) {
      const l = d.limits[0]!
      return [d.allowed, l.remaining, l.resetMs, l.retryAfterMs]
    },
  }
}

t.test('the clock is injected: nowMs is the given clock', async (t) => {
  const s = setup('fixed-window', 1, 1000)
  t.equal(s.at(42).nowMs, T0 + 42)
  t.equal((await s.store.decide('s', compilePolicy([]), 1)).nowMs, T0 + 42)
})

t.test('sliding-log: exact, retryAfter from the entry that frees room', async (t) => {
  const s = setup('sliding-log', 3, 1000)
  t.same(s.summary(s.at(0)), [true, 2, 1000, 0])
  t.same(s.summary(s.at(100)), [true, 1, 1000, 0])
  t.same(s.summary(s.at(200)), [true, 0, 1000, 0])
  t.same(s.summary(s.at(300)), [false, 0, 900, 700], 'the entry at 0 leaves at 1000')
  t.same(s.summary(s.at(999)), [false, 0, 201, 1])
  t.same(s.summary(s.at(1000)), [true, 0, 1000, 0], 'room again at 1000')
  t.same(s.summary(s.at(1001, 2)), [false, 0, 999, 199], 'cost 2 needs the entries at 100 and 200 gone')
  t.same(s.summary(s.at(1200, 2)), [true, 0, 1000, 0])
})

t.test('sliding-window: the weighted two-counter estimate, retryAfter from the formula', async (t) => {
  const s = setup('sliding-window', 10, 1000)
  t.same(s.summary(s.at(500, 10)), [true, 0, 1500, 0])
  t.same(
    s.summary(s.at(999)),
    [false, 0, 1001, 101],
    'the current window is full: in the next one, 10 * 900/1000 + 1 <= 10 at 1100',
  )
  // next window, 250 ms in: prev 10 weighs 10 * 750/1000 = 7.5
  t.same(s.summary(s.at(1250)), [true, 1, 1750, 0], '7.5 + 1 <= 10, remaining floor(1.5)')
  t.same(s.summary(s.at(1250)), [true, 0, 1750, 0], '9.5')
  t.same(s.summary(s.at(1250)), [false, 0, 1750, 50], '10.5 > 10; at 1300 prev weighs 7: 7 + 2 + 1 = 10')
  t.same(s.summary(s.at(1299)), [false, 0, 1701, 1])
  t.same(s.summary(s.at(1300)), [true, 0, 1700, 0])
  t.same(s.summary(s.at(3000, 10)), [true, 0, 2000, 0], 'two windows later both counters are stale')
})

t.test('token-bucket (GCRA): burst of capacity, refill at limit per window', async (t) => {
  const s = setup('token-bucket', 4, 1000)
  t.same(s.summary(s.at(0, 4)), [true, 0, 1000, 0])
  t.same(s.summary(s.at(0)), [false, 0, 1000, 250], 'one token per 250 ms')
  t.same(s.summary(s.at(249)), [false, 0, 751, 1])
  t.same(s.summary(s.at(250)), [true, 0, 1000, 0])
  t.same(s.summary(s.at(2000)), [true, 3, 250, 0], 'full again after a window, minus this one')
})

t.test('token-bucket: fractional emission intervals are exact (no rounding drift)', async (t) => {
  for (const [limit, windowMs, retry] of [
    [3, 1000, 334],
    [3, 2000, 667],
    [7, 1000, 143],
    [1000, 999, 1],
  ] as const) {
    const s = setup('token-bucket', limit, windowMs)
    let admitted = 0
    for (let i = 0; i < limit + 2; i++) if (s.at(0).allowed) admitted++
    t.equal(admitted, limit, `limit ${limit} per ${windowMs} ms: a burst of exactly ${limit}`)
    const d = s.at(0)
    t.equal(d.retryAfterMs, retry, `retryAfter ceil(T) = ${retry}`)
    t.equal(s.at(retry - 1).allowed, false, 'not before')
    t.equal(s.at(retry).allowed, true, 'then one token')
    const full = setup('token-bucket', limit, windowMs)
    let n = 0
    for (let k = 0; k < 5; k++) for (let i = 0; i < limit + 1; i++) if (full.at(k * windowMs).allowed) n++
    t.equal(n, 5 * limit, 'exactly limit per window over 5 windows')
  }
})

t.test('fixed-window: aligned to the epoch, resets at the window end', async (t) => {
  const s = setup('fixed-window', 2, 1000)
  t.same(s.summary(s.at(900)), [true, 1, 100, 0])
  t.same(s.summary(s.at(950)), [true, 0, 50, 0])
  t.same(s.summary(s.at(960)), [false, 0, 40, 40])
  t.same(s.summary(s.at(1000)), [true, 1, 1000, 0], 'a new window')
  t.same(s.summary(s.at(1000, 3)), [false, 1, 1000, 1000], 'cost > limit: windowMs')
})

t.test('a clock that steps back does not throw or go negative', async (t) => {
  for (const alg of ['sliding-log', 'sliding-window', 'token-bucket', 'fixed-window'] as const) {
    const s = setup(alg, 3, 1000)
    s.at(5000)
    s.at(5000)
    const d = s.at(3000)
    t.ok(d.limits[0]!.remaining >= 0 && d.limits[0]!.resetMs >= 0, alg)
  }
})

t.test('memory is bounded: maxKeys evicts the least recently written keys', async (t) => {
  let now = T0
  const store = new MemoryStore({ now: () => now, maxKeys: 100, sweepIntervalMs: 0 })
  const policy = compilePolicy([{ name: 'x', algorithm: 'fixed-window', limit: 1, windowMs: 1000 }])
  for (let i = 0; i < 1000; i++) store.decideSync(`s${i}`, policy, 1)
  t.equal(store.size, 100)
  t.equal(store.evictions, 900)
  t.equal(store.pttl(counterKey('rl', 's999', policy.keySuffixes[0]!)), 1000, 'the newest key is kept')
  t.equal(store.pttl(counterKey('rl', 's0', policy.keySuffixes[0]!)), -2, 'the oldest one was evicted')
  t.equal(store.decideSync('s0', policy, 1).allowed, true, 'an evicted subject starts afresh')
  now += 61_000
  store.sweep()
  t.equal(store.size, 0, 'sweep drops expired keys')
  await store.close()
})

t.test('expired keys read as absent, as in Redis (expired when now > expiry)', async (t) => {
  let now = T0
  const store = new MemoryStore({ now: () => now, sweepIntervalMs: 0 })
  const policy = compilePolicy([{ name: 'x', algorithm: 'fixed-window', limit: 1, windowMs: 1000 }])
  const key = counterKey('rl', 's', policy.keySuffixes[0]!)
  store.decideSync('s', policy, 1)
  t.equal(store.pttl(key), 1000)
  now = T0 + 1000
  t.equal(store.pttl(key), 0)
  now = T0 + 1001
  t.equal(store.pttl(key), -2)
})

t.test('options are validated', async (t) => {
  t.throws(() => new MemoryStore({ maxKeys: 0 }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
  t.throws(() => new MemoryStore({ sweepIntervalMs: -1 }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
  t.throws(() => new MemoryStore({ prefix: '' }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
  const store = new MemoryStore()
  t.equal(store.kind, 'memory')
  await store.close()
})
