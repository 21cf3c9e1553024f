/**
 * ONE conformance suite for every Store: run unchanged against MemoryStore, RedisStore on a
 * standalone Redis and RedisStore on a Redis Cluster (test/store-*.test.ts). It uses the real clock,
 * so timing expectations are tolerant; exact arithmetic is pinned by test/memory.test.ts (injected
 * clock) and test/memory-redis-differential.test.ts (same clock on both stores).
 */
import { uniquePrefix } from '@sluice/test-redis'
import type { Test } from 'tap'
import {
  ALGORITHMS,
  type Algorithm,
  compilePolicy,
  counterKey,
  type LimitSpec,
  type Store,
} from '../../src/index.js'

/** A backend under test: several stores sharing one backend, each on its own connection. */
export interface ConformanceTarget {
  /** At least 4 stores on separate connections to the same backend (the same store for memory). */
  readonly stores: readonly Store[]
  /** The key prefix the stores use. */
  readonly prefix: string
  /** PTTL of a key in the backend (-2 missing, -1 no TTL). */
  pttl(key: string): Promise<number>
  close(): Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function lim(name: string, algorithm: Algorithm, limit: number, windowMs: number): LimitSpec {
  return { name, algorithm, limit, windowMs }
}

export function conformance(t: Test, makeTarget: () => Promise<ConformanceTarget>): void {
  let target: ConformanceTarget
  t.before(async () => {
    target = await makeTarget()
  })
  t.teardown(() => target?.close())
  const store = () => target.stores[0] as Store

  for (const alg of ALGORITHMS) {
    t.test(`${alg}: admits exactly limit, then rejects with a retryAfter`, async (t) => {
      const subject = uniquePrefix('app')
      const policy = compilePolicy([lim('main', alg, 5, 60_000)])
      for (let i = 0; i < 5; i++) {
        const d = await store().decide(subject, policy, 1)
        t.equal(d.allowed, true, `request ${i + 1} admitted`)
        t.equal(d.limits[0]?.remaining, 4 - i, 'remaining counts down')
        t.equal(d.retryAfterMs, 0)
        t.equal(d.blockedBy, null)
        t.ok(
          (d.limits[0]?.resetMs ?? 0) > 0 && (d.limits[0]?.resetMs ?? 0) <= 120_000,
          'resetMs within 2 windows',
        )
        t.ok(Math.abs(d.nowMs - Date.now()) < 5_000, 'nowMs is a current epoch time in ms')
      }
      const d = await store().decide(subject, policy, 1)
      t.equal(d.allowed, false, '6th rejected')
      t.equal(d.blockedBy, 'main')
      t.equal(d.limits[0]?.allowed, false)
      t.equal(d.limits[0]?.remaining, 0)
      t.ok(d.retryAfterMs >= 1 && d.retryAfterMs <= 120_000, `retryAfterMs ${d.retryAfterMs} in [1, 2W]`)
      t.equal(d.limits[0]?.retryAfterMs, d.retryAfterMs)
    })

    t.test(
      `${alg}: cost is counted, an unaffordable cost consumes nothing, cost > limit waits windowMs`,
      async (t) => {
        const subject = uniquePrefix('app')
        const policy = compilePolicy([lim('c', alg, 10, 60_000)])
        let d = await store().decide(subject, policy, 4)
        t.equal(d.allowed, true)
        t.equal(d.limits[0]?.remaining, 6)
        d = await store().decide(subject, policy, 7)
        t.equal(d.allowed, false, 'cost 7 > remaining 6')
        t.equal(d.limits[0]?.remaining, 6, 'a rejection consumes nothing')
        d = await store().decide(subject, policy, 6)
        t.equal(d.allowed, true, 'cost 6 fits exactly')
        t.equal(d.limits[0]?.remaining, 0)
        const fresh = uniquePrefix('app')
        d = await store().decide(fresh, policy, 11)
        t.equal(d.allowed, false, 'cost > limit is never admitted')
        t.equal(d.retryAfterMs, 60_000, 'and answers retryAfter = windowMs')
        t.equal(d.limits[0]?.remaining, 10, 'even on an empty counter, consuming nothing')
        t.equal(d.limits[0]?.resetMs, 0, 'an untouched counter is already reset')
      },
    )

    t.test(`${alg}: a short window slides / refills`, async (t) => {
      const subject = uniquePrefix('app')
      const W = 200
      const policy = compilePolicy([lim('short', alg, 3, W)])
      let admitted = 0
      for (let i = 0; i < 3; i++) if ((await store().decide(subject, policy, 1)).allowed) admitted++
      // fixed/sliding-window may straddle a window boundary and admit a little more
      const d = await store().decide(subject, policy, 1)
      if (admitted === 3 && !d.allowed) {
        t.ok(d.retryAfterMs >= 1 && d.retryAfterMs <= 2 * W, `retryAfterMs ${d.retryAfterMs} <= 2W`)
        await sleep(d.retryAfterMs + 15)
        t.equal((await store().decide(subject, policy, 1)).allowed, true, 'admitted again after retryAfterMs')
      } else {
        t.ok(alg === 'fixed-window' || alg === 'sliding-window', 'only window algorithms may straddle')
      }
      await sleep(2 * W + 30)
      let again = 0
      for (let i = 0; i < 4; i++) if ((await store().decide(subject, policy, 1)).allowed) again++
      t.ok(again >= 3, `after 2 windows the full limit is back (admitted ${again})`)
    })
  }

  t.test('sliding-log: retryAfter is when the oldest entry leaves the window', async (t) => {
    const subject = uniquePrefix('app')
    const W = 300
    const policy = compilePolicy([lim('log', 'sliding-log', 2, W)])
    t.equal((await store().decide(subject, policy, 1)).allowed, true)
    await sleep(100)
    t.equal((await store().decide(subject, policy, 1)).allowed, true)
    const d = await store().decide(subject, policy, 1)
    t.equal(d.allowed, false)
    t.ok(d.retryAfterMs <= W - 90 && d.retryAfterMs >= 1, `retryAfterMs ${d.retryAfterMs} ~ W - 100`)
    await sleep(d.retryAfterMs + 10)
    t.equal((await store().decide(subject, policy, 1)).allowed, true, 'one slot freed')
    t.equal((await store().decide(subject, policy, 1)).allowed, false, 'only one slot freed')
  })

  t.test('token-bucket: a burst of capacity, then refill at limit per windowMs', async (t) => {
    const subject = uniquePrefix('app')
    const W = 300
    const policy = compilePolicy([lim('tb', 'token-bucket', 10, W)])
    let burst = 0
    for (let i = 0; i < 12; i++) if ((await store().decide(subject, policy, 1)).allowed) burst++
    t.ok(burst >= 10 && burst <= 11, `burst of capacity 10 (admitted ${burst})`)
    await sleep(150)
    let refill = 0
    for (let i = 0; i < 10; i++) if ((await store().decide(subject, policy, 1)).allowed) refill++
    t.ok(refill >= 4 && refill <= 8, `about half refilled after W/2 (admitted ${refill})`)
  })

  t.test('all-or-nothing: a request rejected by one limit consumes no other', async (t) => {
    for (const tight of ALGORITHMS) {
      const subject = uniquePrefix('app')
      const loose = ALGORITHMS.map((a, i) => lim(`l${i}`, a, 10, 60_000))
      const limits = [...loose, lim('tight', tight, 2, 60_000)]
      const policy = compilePolicy(limits)
      t.equal((await store().decide(subject, policy, 1)).allowed, true)
      t.equal((await store().decide(subject, policy, 1)).allowed, true)
      for (let i = 0; i < 3; i++) {
        const d = await store().decide(subject, policy, 1)
        t.equal(d.allowed, false, `${tight} tight limit rejects`)
        t.equal(d.blockedBy, 'tight')
        t.same(
          d.limits.slice(0, 4).map((l) => [l.allowed, l.remaining, l.retryAfterMs]),
          ALGORITHMS.map(() => [true, 8, 0]),
          'the loose limits admit and report their unconsumed remaining',
        )
      }
      const only = compilePolicy(loose)
      const d = await store().decide(subject, only, 1)
      t.same(
        d.limits.map((l) => l.remaining),
        [7, 7, 7, 7],
        `${tight}: the rejected requests consumed nothing in the other limits`,
      )
    }
  })

  t.test('every key has a TTL and the {subject} hash tag', async (t) => {
    const subject = uniquePrefix('app')
    const W = 60_000
    const limits = ALGORITHMS.map((a) => lim(a.replace('-', ''), a, 5, W))
    const policy = compilePolicy(limits)
    await store().decide(subject, policy, 2)
    for (const [i, suffix] of policy.keySuffixes.entries()) {
      const key = counterKey(target.prefix, subject, suffix)
      t.match(key, new RegExp(`^${target.prefix}:\\{${subject}\\}:`), 'key layout <prefix>:{<subject>}:…')
      const pttl = await target.pttl(key)
      t.ok(pttl > 0 && pttl <= 2 * W + 1, `${limits[i]?.algorithm} key ${key} PTTL ${pttl} in (0, 2W]`)
    }
    // a rejected decision writes nothing, so it creates no key either
    const other = uniquePrefix('app')
    const d = await store().decide(other, compilePolicy([lim('big', 'sliding-log', 1, W)]), 2)
    t.equal(d.allowed, false)
    t.equal(await target.pttl(counterKey(target.prefix, other, 'big:sl:60000')), -2, 'no key for a rejection')
  })

  t.test('subject and cost are validated', async (t) => {
    const policy = compilePolicy([lim('v', 'fixed-window', 5, 1000)])
    await t.rejects(store().decide('', policy, 1), { code: 'SLUICE_ERR_STORE_OPTIONS' })
    await t.rejects(store().decide('a}b', policy, 1), { code: 'SLUICE_ERR_STORE_OPTIONS' })
    await t.rejects(store().decide('a', policy, 0), { code: 'SLUICE_ERR_STORE_OPTIONS' })
    await t.rejects(store().decide('a', policy, 1.5), { code: 'SLUICE_ERR_STORE_OPTIONS' })
  })

  for (const alg of ALGORITHMS) {
    t.test(`${alg}: 1000 concurrent decisions over ${'>='}4 connections admit exactly limit`, async (t) => {
      t.ok(target.stores.length >= 4, 'at least 4 connections')
      const subject = uniquePrefix('app')
      const policy = compilePolicy([lim('conc', alg, 100, 3_600_000)])
      const all = await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          (target.stores[i % target.stores.length] as Store).decide(subject, policy, 1),
        ),
      )
      t.equal(all.filter((d) => d.allowed).length, 100, 'exactly limit admitted')
      const after = await store().decide(subject, policy, 1)
      t.equal(after.allowed, false)
      t.equal(after.limits[0]?.remaining, 0)
    })
  }
}
